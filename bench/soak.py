"""Soak: a local cluster of ``gossipfast run`` processes at a fixed broadcast rate.

Not part of CI. Runs ``--nodes`` processes on loopback for ``--duration`` seconds (default
10 minutes), feeding ``--rate`` broadcasts per second (spread over random nodes), and
samples every node's RSS and open file descriptors, and its own stats (payload store,
dedup origins, connections). At the end it prints, per node, the RSS slope after the
warm-up (least squares, KiB per minute), the file-descriptor change, the store against
its bounds, and delivered versus expected messages::

    python bench/soak.py                        # 5 nodes, 1000/s, 600 s
    python bench/soak.py --duration 60 --json   # a short run, one JSON object on stdout

The store bounds are lowered (``--store-age``) so that they are reached during the run:
the point is to see every structure at its bound while memory stays flat.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from typing import Any

from gossipfast._procs import NodeProc, start_nodes, stop_all, wait_for


class Node(NodeProc):
    """One ``gossipfast run`` child, its delivery count and its (t, RSS, fds) samples."""

    def __init__(self, listen: str, seeds: list[str], settings: list[str]) -> None:
        self.delivered = 0
        self.samples: list[tuple[float, int, int]] = []  # (t, rss bytes, fds)
        options = ["--log-level", "WARNING", "--stats-interval", "2"]
        super().__init__(listen, seeds, options=options, settings=settings)

    def on_stdout(self, line: str) -> None:
        self.delivered += 1

    def sample(self, t: float) -> None:
        pid = self.pid
        try:
            with open(f"/proc/{pid}/status") as f:
                rss = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:")) * 1024
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except (OSError, StopIteration):
            return
        self.samples.append((t, rss, fds))


def slope(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of (t, y): y units per second."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / var if var else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--rate", type=float, default=1000.0, help="broadcasts per second")
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    ap.add_argument("--warmup", type=float, default=None, help="seconds (default: 1/4)")
    ap.add_argument("--payload", type=int, default=200, help="payload bytes")
    ap.add_argument("--store-age", type=float, default=30.0, help="Config.store_max_age")
    ap.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    a = ap.parse_args()
    warmup = a.duration / 4 if a.warmup is None else a.warmup
    settings = [f"store_max_age={a.store_age}", "store_max_messages=100000"]
    nodes = start_nodes(a.nodes, lambda i, listen, seeds: Node(listen, seeds, settings))
    rng = random.Random(1)
    sent = 0
    try:
        # joined: every node's stats line shows a neighbour
        if not wait_for(lambda: all(n.stats.get("active_view") for n in nodes), 30):
            print("the nodes did not join within 30 s", file=sys.stderr)
            return 1
        t0 = time.monotonic()
        next_sample = t0
        pad = "x" * max(0, a.payload - 20)
        while True:
            now = time.monotonic()
            el = now - t0
            if el >= a.duration:
                break
            due = int(el * a.rate) - sent
            if due > 0:
                per: dict[int, list[str]] = {}
                for _ in range(due):
                    sent += 1
                    per.setdefault(rng.randrange(a.nodes), []).append(f"s{sent} {pad}\n")
                for i, lines in per.items():
                    nodes[i].send("".join(lines))
            if now >= next_sample:
                for n in nodes:
                    n.sample(el)
                next_sample += a.sample
                if not a.json:
                    rss = " ".join(f"{n.samples[-1][1] >> 20:4d}" for n in nodes if n.samples)
                    print(f"t={el:6.0f}s sent={sent} RSS MiB: {rss}", file=sys.stderr)
            time.sleep(0.01)
        # Let the last messages arrive: until all are delivered or none came for 10 s.
        expected = sent * (a.nodes - 1)
        last, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 10.0:
            got = sum(n.delivered for n in nodes)
            if got >= expected:
                break
            if got != last:
                last, quiet_since = got, time.monotonic()
            time.sleep(0.5)
        report: dict[str, Any] = {"nodes": a.nodes, "rate": a.rate, "seconds": a.duration}
        report["broadcasts"] = sent
        report["expected_deliveries"] = expected
        report["deliveries"] = sum(n.delivered for n in nodes)
        report["missing"] = expected - report["deliveries"]
        per_node = []
        for n in nodes:
            after = [(t, r) for t, r, _ in n.samples if t >= warmup]
            warm = next((x for x in n.samples if x[0] >= warmup), None)
            s = n.stats
            per_node.append(
                {
                    "address": n.address,
                    "rss_mib_end": round(n.samples[-1][1] / 2**20, 1) if n.samples else None,
                    "rss_mib_warm": round(warm[1] / 2**20, 1) if warm else None,
                    "rss_slope_kib_per_min": round(slope(after) * 60 / 1024, 1),
                    "fds_warm": warm[2] if warm else None,
                    "fds_end": n.samples[-1][2] if n.samples else None,
                    "store_messages": s.get("store_messages"),
                    "store_bytes": s.get("store_bytes"),
                    "origins": s.get("origins"),
                    "connections": s.get("connections"),
                    "errors": len(n.errors),
                }
            )
        report["per_node"] = per_node
        if a.json:
            print(json.dumps(report))
        else:
            print(json.dumps(report, indent=1))
        return 0
    finally:
        stop_all(nodes)


if __name__ == "__main__":
    raise SystemExit(main())
