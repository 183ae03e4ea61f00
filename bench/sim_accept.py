"""Issue-3 acceptance figures at 1,000 nodes, with or without the anchored shared tree.

``tests/sim/test_sim.py``'s sequence on one overlay per seed (latency uniform 10-100 ms): 30
single-sender rounds (RMR from round 2), 30 random senders, then every node at once.
``--crash F`` instead runs 10 random broadcasts, crashes a fraction F and prints the share
of survivors each probe (one a second) reached within 2 s.

Usage::

    python bench/sim_accept.py --seeds 11,12,13
    python bench/sim_accept.py --seeds 11,12,13 --tree-beacon-interval 0   # the paper's
    python bench/sim_accept.py --seeds 13 --per-round                      # single sender
    python bench/sim_accept.py --nodes 10000 --seeds 1 --crash 0.5

Figures and what they mean: ``bench/README.md`` -> Simulator.
"""

from __future__ import annotations

import argparse
import time

import msgspec

from gossipfast.sim import (
    SIM_CONFIG,
    Simulator,
    broadcast_rounds,
    build_overlay,
    crash_scenario,
    cyclic_gc_paused,
    summarize,
)


def _line(name: str, s: dict) -> str:
    return (
        f"{name}: rmr {s['rmr']:.3f} ldh {s['ldh']:.1f}/{s['ldh_max']} "
        f"missed {s['missed']} dup {s['dup_deliveries']} p99 {s['lat_p99']:.2f}s"
    )


def main() -> None:
    """Print one line of figures per seed."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--seeds", default="11,12,13")
    ap.add_argument("--tree-beacon-interval", type=float, default=SIM_CONFIG.tree_beacon_interval)
    ap.add_argument("--per-round", action="store_true", help="single sender: RMR per round")
    ap.add_argument("--crash", type=float, default=0.0, help="crash this fraction instead")
    args = ap.parse_args()
    cfg = msgspec.structs.replace(SIM_CONFIG, tree_beacon_interval=args.tree_beacon_interval)
    for seed in (int(x) for x in args.seeds.split(",")):
        t0 = time.process_time()
        with cyclic_gc_paused():
            sim = Simulator(cfg, seed=seed, latency=(0.010, 0.100))
            build_overlay(sim, args.nodes, join_rate=500.0, settle=20.0)
            head = f"interval {cfg.tree_beacon_interval:g} seed {seed}"
            if args.crash:
                broadcast_rounds(sim, 10, mode="random", interval=0.2, drain=5.0)
                r = crash_scenario(sim, args.crash, heal_time=60.0, final_broadcasts=10)
                probes = " ".join(f"{f['reliability_window']:.2f}" for f in r["probes"][:10])
                print(
                    f"{head} | crash {args.crash:g}: probes at 0..9 s {probes} | healed at "
                    f"{r['healing_time']} s, after healing {r['healed_reliability']:.3f}",
                    flush=True,
                )
                continue
            out = []
            single = broadcast_rounds(sim, 30, mode="single", interval=1.0, drain=5.0)
            out.append(_line("single", summarize(single, skip_first=1)))
            if args.per_round:
                out.append("rmr per round " + " ".join(f"{f['rmr']:.3f}" for f in single))
            rnd = broadcast_rounds(sim, 30, mode="random", interval=1.0, drain=5.0)
            out.append(_line("random", summarize(rnd)))
            burst = broadcast_rounds(sim, 1, mode="burst", interval=1.0, drain=10.0)
            out.append(_line("burst", summarize(burst)))
        print(f"{head} | " + " | ".join(out) + f" | {time.process_time() - t0:.0f} CPU s")


if __name__ == "__main__":
    main()
