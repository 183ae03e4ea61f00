"""The member lists' convergence on the simulator (issue 22).

Builds an overlay of ``--nodes`` simulated nodes (joins at 500/s, 20 s to settle), then
:func:`gossipfast.sim.members_scenario`: seconds until every live node lists exactly the
live nodes after the build, after one join, one graceful leave and a crash of half the
nodes at once; MemberDown events (false downs) and member messages per node per second
over 60 quiet seconds.

Usage::

    python bench/sim_members.py --nodes 1000 --seeds 1,2,3
    python bench/sim_members.py --nodes 10000 --seeds 1

Figures and what they mean: ``bench/README.md`` -> Member lists.
"""

from __future__ import annotations

import argparse
import json
import time

from gossipfast.sim import SIM_CONFIG, Simulator, build_overlay, members_scenario


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--crash", type=float, default=0.5)
    args = ap.parse_args()
    for seed in (int(x) for x in args.seeds.split(",")):
        w0 = time.perf_counter()
        sim = Simulator(SIM_CONFIG, seed=seed, latency=(0.010, 0.050))
        build_overlay(sim, args.nodes)
        out = members_scenario(sim, crash=args.crash)
        out["seed"] = seed
        out["wall_s"] = round(time.perf_counter() - w0, 1)
        print(json.dumps(out))


if __name__ == "__main__":
    main()
