"""``gossipfast sim``: run the simulator's default scenario and report its figures.

A rich table by default, one JSON object with ``--json``, a PNG with ``--plot``
(matplotlib). The simulator itself is :mod:`gossipfast.sim`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import msgspec

from .config import config_overrides
from .sim import MAX_NODES, SIM_CONFIG, cyclic_gc_paused, run_default

__all__ = ["sim_command"]


def _parse_latency(text: str) -> tuple[float, float]:
    try:
        lo_s, hi_s = text.split(",")
        lo, hi = float(lo_s), float(hi_s)
    except ValueError:
        raise click.BadParameter("expected LO,HI in milliseconds, e.g. 10,50") from None
    if not (0 <= lo <= hi):
        raise click.BadParameter("expected 0 <= LO <= HI")
    return lo / 1000.0, hi / 1000.0


def _parse_split(text: str) -> tuple[float, ...]:
    try:
        shares = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise click.BadParameter("expected shares such as 0.5,0.5", param_hint="--split") from None
    if len(shares) < 2 or any(not (x > 0) for x in shares):
        raise click.BadParameter("expected two or more positive shares", param_hint="--split")
    return shares


def _plot(result: dict[str, Any], path: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "--plot needs matplotlib (pip install 'gossipfast[plot]'); no plot written"
    figs = result["_figs"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    xs = list(range(1, len(figs) + 1))
    axes[0].plot(xs, [f["reliability"] for f in figs], marker=".")
    axes[0].set_title("reliability per broadcast")
    axes[0].set_ylim(0, 1.05)
    axes[1].plot(xs, [f["rmr"] for f in figs], marker=".", label="RMR")
    axes[1].plot(xs, [f["ldh"] for f in figs], marker=".", label="LDH")
    axes[1].set_title("RMR and LDH per broadcast")
    axes[1].legend()
    axes[2].plot(xs, [f["lat_p50"] * 1000 for f in figs], label="p50")
    axes[2].plot(xs, [f["lat_p99"] * 1000 for f in figs], label="p99")
    axes[2].set_title("latency (ms, virtual)")
    axes[2].legend()
    for ax in axes:
        ax.set_xlabel("broadcast #")
    fig.suptitle(f"gossipfast sim: {result['nodes']} nodes, seed {result['seed']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def _table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"gossipfast sim — {result['nodes']} nodes, seed {result['seed']}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("build", "compiled" if result["compiled"] else "pure Python"),
        ("broadcasts", str(result["broadcasts"])),
        ("reliability (mean)", f"{result['reliability']:.4f}"),
        ("reliability (min)", f"{result['reliability_min']:.4f}"),
        ("missed deliveries", str(result["missed"])),
        ("RMR (mean / max)", f"{result['rmr']:.3f} / {result['rmr_max']:.3f}"),
        ("LDH (mean / max)", f"{result['ldh']:.2f} / {result['ldh_max']}"),
        (
            "latency p50 / p99 / max (steady)",
            f"{result['lat_p50'] * 1e3:.1f} / {result['lat_p99'] * 1e3:.1f} / "
            f"{result['lat_max'] * 1e3:.1f} ms",
        ),
        ("connected", str(result["connected"])),
        (
            "degree min / mean / max",
            f"{result['degree_min']} / {result['degree_mean']:.2f} / {result['degree_max']}",
        ),
        ("clustering coefficient", f"{result['clustering']:.4f}"),
        ("asymmetric active edges", str(result["asymmetric"])),
    ]
    for name, key in (("crash", "crash"), ("partition", "partition")):
        if key in result:
            for k, v in result[key].items():
                rows.append((f"{name}: {k}", f"{v:.4f}" if isinstance(v, float) else str(v)))
    rows += [
        ("simulated time", f"{result['sim_time']:.1f} s"),
        ("events", f"{result['events']:,}"),
        ("events/s", f"{result['events_per_s']:,.0f}"),
        ("wall time", f"{result['seconds']:.1f} s"),
    ]
    for r in rows:
        table.add_row(*r)
    Console().print(table)


@click.command("sim")
@click.option("--nodes", default=1000, show_default=True, type=click.IntRange(2, MAX_NODES))
@click.option(
    "--fail",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0.0, 0.99),
    help="Fraction of nodes crashed at once after the first broadcasts.",
)
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--broadcasts", default=10, show_default=True, type=click.IntRange(1))
@click.option(
    "--latency",
    default="10,50",
    show_default=True,
    help="Per-link latency range LO,HI in milliseconds (uniform).",
)
@click.option("--loss", default=0.0, show_default=True, type=click.FloatRange(0.0, 0.99))
@click.option(
    "--partition",
    "partition_s",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0.0),
    help="Split the nodes for this many simulated seconds (see --split), then heal.",
)
@click.option(
    "--split",
    "split_text",
    default="0.5,0.5",
    show_default=True,
    help="Shares of the --partition groups: 0.5,0.5 halves; 0.1,0.9 asymmetric; "
    "0.34,0.33,0.33 three-way.",
)
@click.option(
    "--config",
    "config_items",
    multiple=True,
    metavar="FIELD=JSON",
    help="Config override of every simulated node, e.g. tree_beacon_interval=0 (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on the last line.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a PNG (needs matplotlib).")
def sim_command(
    nodes: int,
    fail: float,
    seed: int,
    broadcasts: int,
    latency: str,
    loss: float,
    partition_s: float,
    split_text: str,
    config_items: tuple[str, ...],
    as_json: bool,
    plot: str | None,
) -> None:
    """Simulate a cluster of engines on a virtual network and report the figures."""
    lat = _parse_latency(latency)
    split = _parse_split(split_text)
    try:
        overrides = config_overrides(config_items)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--config") from e
    config = msgspec.structs.replace(SIM_CONFIG, **overrides) if overrides else None
    with cyclic_gc_paused():
        result = run_default(
            nodes,
            seed=seed,
            broadcasts=broadcasts,
            latency=lat,
            loss=loss,
            fail=fail,
            partition=partition_s,
            split=split,
            config=config,
        )
    if plot:
        msg = _plot(result, plot)
        if msg:
            click.echo(msg, err=True)
    result.pop("_figs")
    if as_json:
        sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    else:
        _table(result)
