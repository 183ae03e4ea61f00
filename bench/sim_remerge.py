"""Partition re-merge figures: splits of any length heal into one overlay.

Each run is ``gossipfast sim``'s (``run_default``): an overlay of N nodes built and
settled, 10 broadcasts, then the live nodes split into groups for the given simulated
time and healed; the overlay is checked every simulated second for 60 s after the heal.
One JSON line per run goes to ``--out`` (appended, so a long sweep can be read while it
runs), then a table of every (nodes, split, length): runs merged, merge time
min/median/max in seconds after the heal, components after, failed-peer probes and all
membership messages per node per second of the split.

Usage::

    python bench/sim_remerge.py --nodes 100 --lengths 60,600,3600,86400 --seeds 1-10
    python bench/sim_remerge.py --nodes 1000 --lengths 60,600,3600 --seeds 1,2 --jobs 2
    python bench/sim_remerge.py --splits 0.1/0.9,0.34/0.33/0.33 --lengths 600 --seeds 1-5
    python bench/sim_remerge.py --table runs.jsonl          # the table of earlier runs

Figures and what they mean: ``bench/README.md`` -> Partition re-merge.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from gossipfast.sim import cyclic_gc_paused, run_default


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out


def run_one(job: tuple[int, float, tuple[float, ...], int]) -> dict[str, Any]:
    """One simulated split and heal; the figures of the re-merge."""
    nodes, length, shares, seed = job
    t0 = time.perf_counter()
    with cyclic_gc_paused():
        r = run_default(nodes, seed=seed, partition=length, split=shares)
    p = r["partition"]
    return {
        "nodes": nodes,
        "length": length,
        "split": "/".join(f"{x:g}" for x in shares),
        "seed": seed,
        "groups": p["groups"],
        "components_during": p["components_during"],
        "merged": p["merged"],
        "merge_time": p["merge_time"],
        "components": p["components"],
        "after_reliability": p["after_reliability"],
        "probes_per_node_s": p["probes_per_node_s"],
        "control_per_node_s": p["control_per_node_s"],
        "compiled": r["compiled"],
        "wall": time.perf_counter() - t0,
    }


def _spread(xs: list[float]) -> str:
    if not xs:
        return "-"
    return f"{min(xs):g} / {statistics.median(xs):g} / {max(xs):g}"


def table(rows: Iterable[dict[str, Any]]) -> str:
    """A Markdown table: one line per (nodes, split, length)."""
    groups: dict[tuple[int, str, float], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["nodes"], r["split"], r["length"]), []).append(r)
    out = [
        "| nodes | split | length (s) | runs merged | merge time after heal, s "
        "(min / median / max) | components after | probes / node / s | membership msgs "
        "/ node / s | reliability after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (nodes, split, length), rs in sorted(groups.items()):
        merged = [r for r in rs if r["merged"]]
        times = [r["merge_time"] for r in merged]
        probes = statistics.median(r["probes_per_node_s"] for r in rs)
        control = statistics.median(r["control_per_node_s"] for r in rs)
        comps = sorted({r["components"] for r in rs})
        rel = min(r["after_reliability"] for r in rs)
        out.append(
            f"| {nodes} | {split} | {length:g} | {len(merged)} of {len(rs)} | "
            f"{_spread(times)} | {', '.join(map(str, comps))} | {probes:.3f} | "
            f"{control:.2f} | {rel:g} |"
        )
    return "\n".join(out)


def main() -> None:
    """Run the sweep (or print the table of a saved one)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", default="100", help="comma-separated sizes")
    ap.add_argument("--lengths", default="60,600,3600,86400", help="split lengths, seconds")
    ap.add_argument("--splits", default="0.5/0.5", help="comma-separated shares, e.g. 0.1/0.9")
    ap.add_argument("--seeds", default="1-10", help="e.g. 1-10 or 1,3,5")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", default="remerge.jsonl")
    ap.add_argument("--table", metavar="JSONL", help="only print the table of saved runs")
    args = ap.parse_args()
    if args.table:
        with open(args.table) as f:
            print(table(json.loads(line) for line in f if line.strip()))
        return
    jobs = [
        (n, float(length), tuple(float(x) for x in split.split("/")), seed)
        for n in (int(x) for x in args.nodes.split(","))
        for split in args.splits.split(",")
        for length in args.lengths.split(",")
        for seed in _seeds(args.seeds)
    ]
    rows = []
    with ProcessPoolExecutor(args.jobs) as pool, open(args.out, "a") as out:
        for r in pool.map(run_one, jobs):
            rows.append(r)
            out.write(json.dumps(r) + "\n")
            out.flush()
            print(json.dumps(r), flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
