"""Simulator figures at scale: 10,000-node scenarios and a 100,000-node run.

Usage::

    python bench/sim_scale.py                 # every scenario, a table at the end
    python bench/sim_scale.py stable crash50  # only these
    python bench/sim_scale.py --nodes 2000    # smaller, for a quick look

Each scenario runs in its own process (so peak memory is its own) and prints one JSON
line; the parent collects them and prints a table. Scenarios:

- ``stable``: build, 20 single-sender rounds, 30 random-sender broadcasts; reliability,
  settled RMR, LDH against an eager flood over the same overlay (latency-shortest paths
  on the active graph; BFS eccentricity as the lower bound).
- ``crash50``/``crash80``/``crash90``/``crash95``: build, 100 (crash50) or 10
  broadcasts, crash X% at once, probe broadcasts from random survivors every second for
  60 s, 10 more; the first probe's reliability, healing time and reliability after
  healing. ``crash50`` is also the performance run (joins, 100 broadcasts, 50% crash
  and healing).
- ``partition``: two halves for 60 simulated seconds, 5 broadcasts per side, heal;
  merge and catch-up of every message from both sides.
- ``big``: 100,000 nodes, 10 broadcasts; wall time and peak memory.
- ``pure``: ``crash50`` at 2,000 nodes under both builds, for events/s compiled vs pure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

SCENARIOS = ("stable", "crash50", "crash80", "crash90", "crash95", "partition", "big", "pure")
LATENCY = (0.010, 0.100)


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _strip(d: dict[str, Any], *drop: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in drop}


def run_one(name: str, nodes: int, seed: int) -> dict[str, Any]:
    """Run one scenario in this process; returns its figures."""
    import gossipfast
    from gossipfast.sim import (
        SIM_CONFIG,
        Simulator,
        broadcast_rounds,
        build_overlay,
        crash_scenario,
        flood_ldh,
        partition_scenario,
        summarize,
    )

    w0 = time.perf_counter()
    out: dict[str, Any] = {"scenario": name, "nodes": nodes, "compiled": gossipfast.COMPILED}
    sim = Simulator(SIM_CONFIG, seed=seed, latency=LATENCY)
    g = build_overlay(sim, nodes, join_rate=500.0, settle=20.0)
    out["build_wall"] = time.perf_counter() - w0
    out["overlay"] = _strip(g, "live")
    if name == "stable":
        single = broadcast_rounds(sim, 20, mode="single", interval=1.0, drain=5.0)
        s1 = summarize(single, skip_first=1)
        graph = sim.active_graph()
        fl_single = flood_ldh(sim, graph, single[-1]["origin"])
        out["single_ldh_last"] = single[-1]["ldh"]
        out["single_flood_ldh"], out["single_bfs_ecc"] = fl_single
        rnd = broadcast_rounds(sim, 30, mode="random", interval=1.0, drain=5.0)
        s2 = summarize(rnd)
        graph = sim.active_graph()
        floods = [flood_ldh(sim, graph, f["origin"]) for f in rnd]
        out["single_ldh_over_flood"] = out["single_ldh_last"] / out["single_flood_ldh"]
        out["single"] = _strip(s1, "ihave", "graft")
        out["random"] = _strip(s2, "ihave", "graft")
        out["ldh_random"] = sum(f["ldh"] for f in rnd) / len(rnd)
        out["flood_ldh"] = sum(f for f, _ in floods) / len(floods)
        out["bfs_ecc"] = sum(e for _, e in floods) / len(floods)
        out["ldh_over_flood"] = out["ldh_random"] / out["flood_ldh"]
    elif name.startswith("crash"):
        frac = int(name[5:]) / 100.0
        # crash50 is also the performance run: 100 broadcasts before the crash
        pre_n = 100 if name == "crash50" else 10
        pre = broadcast_rounds(sim, pre_n, mode="random", interval=0.2, drain=5.0)
        out["before"] = _strip(summarize(pre), "ihave", "graft")
        r = crash_scenario(sim, frac, heal_time=60.0, final_broadcasts=10)
        out["crash"] = _strip(r, "probes", "final")
        out["probe_reliability"] = [round(p["reliability_window"], 4) for p in r["probes"]]
    elif name == "partition":
        r = partition_scenario(sim, 60.0, per_side=5, merge_time=60.0, drain=30.0)
        out["partition"] = _strip(r, "split", "after")
    elif name == "big":
        rnd = broadcast_rounds(sim, 10, mode="random", interval=0.5, drain=5.0)
        out["random"] = _strip(summarize(rnd), "ihave", "graft")
    else:
        raise SystemExit(f"unknown scenario {name!r}")
    out["view_mismatch"] = sim.view_consistency()
    out["unknown_deliveries"] = sim.unknown_deliveries
    out["messages"] = sim.msg_counts
    out["sim_time"] = sim.now
    out["events"] = sim.event_count
    out["events_per_s"] = sim.event_count / sim.wall if sim.wall else 0.0
    out["wall"] = time.perf_counter() - w0
    out["cpu"] = _cpu_s()  # the wall time is inflated on a shared, loaded machine
    out["peak_mb"] = _peak_mb()
    return out


def _child(name: str, nodes: int, seed: int, pure: bool = False) -> dict[str, Any]:
    env = dict(os.environ)
    if pure:
        env["GOSSIPFAST_NO_EXTENSIONS"] = "1"
    cmd = [sys.executable, __file__, "--one", name, "--nodes", str(nodes), "--seed", str(seed)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        err = p.stderr.strip()[-2000:] or f"exit status {p.returncode}"
        return {"scenario": name, "nodes": nodes, "error": err}
    return json.loads(p.stdout.strip().splitlines()[-1])


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "NO"
    if isinstance(x, float):
        return f"{x:.3f}"
    return str(x)


def _table(results: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="gossipfast simulator at scale")
    t.add_column("scenario")
    t.add_column("nodes", justify="right")
    t.add_column("figures")
    t.add_column("wall s", justify="right")
    t.add_column("cpu s", justify="right")
    t.add_column("events/s", justify="right")
    t.add_column("peak MB", justify="right")
    for r in results:
        if "error" in r:
            t.add_row(r["scenario"], str(r["nodes"]), "ERROR: " + r["error"][-300:], "", "", "", "")
            continue
        name = r["scenario"]
        o = r["overlay"]
        parts = [f"connected={_fmt(o['connected'])} deg={o['degree_mean']:.2f}"]
        if name == "stable":
            s, q = r["single"], r["random"]
            parts.append(
                f"single: rel={q and s['reliability']:.4f} rmr={s['rmr']:.3f} ldh={s['ldh']:.1f}"
            )
            parts.append(
                f"random: rel={q['reliability']:.4f} rmr={q['rmr']:.3f} ldh={q['ldh']:.1f} "
                f"missed={q['missed']}"
            )
            parts.append(
                f"random LDH/flood={r['ldh_over_flood']:.2f} (flood {r['flood_ldh']:.1f}, "
                f"bfs {r['bfs_ecc']:.1f}); single LDH/flood={r['single_ldh_over_flood']:.2f} "
                f"({r['single_ldh_last']} vs {r['single_flood_ldh']})"
            )
        elif name.startswith("crash"):
            c = r["crash"]
            parts.append(
                f"first={_fmt(c['first_reliability'])} healing={_fmt(c['healing_time'])}s "
                f"healed={_fmt(c['healed_reliability'])} (min {_fmt(c['healed_reliability_min'])})"
                f" connected={_fmt(c['connected'])}"
            )
        elif name == "partition":
            p = r["partition"]
            parts.append(
                f"merged={_fmt(p['merged'])} in {_fmt(p['merge_time'])}s "
                f"all_delivered={_fmt(p['all_delivered'])} missed={p['split_missed']}"
            )
        elif name == "big":
            q = r["random"]
            parts.append(f"rel={q['reliability']:.4f} rmr={q['rmr']:.3f} ldh={q['ldh']:.1f}")
        build = "compiled" if r["compiled"] else "pure"
        t.add_row(
            f"{name} ({build})",
            str(r["nodes"]),
            "\n".join(parts),
            f"{r['wall']:.1f}",
            f"{r.get('cpu', 0.0):.1f}",
            f"{r['events_per_s']:,.0f}",
            f"{r['peak_mb']:.0f}",
        )
    Console(width=200).print(t)


def main() -> None:
    """Run the chosen scenarios, each in a child process, and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--big-nodes", type=int, default=100_000)
    ap.add_argument("--pure-nodes", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help="print every result as JSON lines")
    args = ap.parse_args()
    if args.one:
        from gossipfast.sim import cyclic_gc_paused

        with cyclic_gc_paused():
            res = run_one(args.one, args.nodes, args.seed)
        print(json.dumps(res, sort_keys=True))
        return
    results = []
    for name in args.scenarios:
        if name == "big":
            results.append(_child("big", args.big_nodes, args.seed))
        elif name == "pure":
            for pure in (False, True):
                results.append(_child("crash50", args.pure_nodes, args.seed, pure=pure))
        else:
            results.append(_child(name, args.nodes, args.seed))
        if args.json:
            print(json.dumps(results[-1], sort_keys=True), flush=True)
        else:
            r = results[-1]
            print(f"done {name}: wall {r.get('wall', 0):.1f}s", file=sys.stderr, flush=True)
    _table(results)


if __name__ == "__main__":
    main()
