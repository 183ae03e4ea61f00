"""How deep can one shared broadcast tree be for random senders? An offline bound.

Builds the simulator's overlay (the real engines, seeded), takes its active-view graph
and compares, for 30 random roots, the LDH (hops of the last delivery) of:

- an eager flood: first-arrival paths (Dijkstra over the link latencies);
- one spanning tree used by every root, as Plumtree's shared tree is for one-shot
  origins: a fewest-hops (BFS) tree or a lowest-latency tree, grown from a graph
  centre or from a random node. A root's LDH over a tree is its eccentricity in it.

Usage: ``python bench/tree_bound.py [--nodes 1000] [--seed 11]``. Figures and what they
mean for the random-sender target: ``bench/README.md`` → Simulator.
"""

from __future__ import annotations

import argparse
import random
from collections import deque

from gossipfast.sim import (
    SIM_CONFIG,
    Simulator,
    bfs_levels,
    build_overlay,
    cyclic_gc_paused,
    flood_ldh,
    lowest_latency_parents,
    undirected,
)

Adj = dict[int, set[int]]


def _tree(parent: dict[int, int | None]) -> Adj:
    t: Adj = {i: set() for i in parent}
    for v, p in parent.items():
        if p is not None:
            t[v].add(p)
            t[p].add(v)
    return t


def bfs_tree(adj: Adj, root: int) -> Adj:
    """Fewest-hops spanning tree from ``root``."""
    parent: dict[int, int | None] = {root: None}
    q = deque([root])
    while q:
        u = q.popleft()
        for v in sorted(adj[u]):
            if v not in parent:
                parent[v] = u
                q.append(v)
    return _tree(parent)


def latency_tree(sim: Simulator, adj: Adj, root: int) -> Adj:
    """Lowest-latency spanning tree from ``root`` (what a first push from it prunes to)."""
    parent = lowest_latency_parents(sim, adj, root)
    return _tree(parent)


def main() -> None:
    """Print the flood's and each shared tree's LDH over the same random roots."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--roots", type=int, default=30)
    args = ap.parse_args()
    with cyclic_gc_paused():
        sim = Simulator(SIM_CONFIG, seed=args.seed, latency=(0.010, 0.100))
        build_overlay(sim, args.nodes, join_rate=500.0, settle=20.0)
    graph = sim.active_graph()
    adj = undirected(graph)
    rng = random.Random(1)
    nodes = sorted(adj)
    roots = rng.sample(nodes, args.roots)
    floods = [flood_ldh(sim, graph, r) for r in roots]
    fl = [f for f, _ in floods]
    print(
        f"{args.nodes} nodes, seed {args.seed}, {args.roots} random roots\n"
        f"  eager flood                  LDH mean {sum(fl) / len(fl):5.1f}  max {max(fl):3d}"
        f"  (BFS eccentricity mean {sum(e for _, e in floods) / len(floods):.1f})"
    )
    ecc = {v: max(bfs_levels(adj, v).values()) for v in rng.sample(nodes, min(200, len(nodes)))}
    centre = min(ecc, key=lambda v: ecc[v])
    for name, tree in (
        ("fewest-hops tree, centre", bfs_tree(adj, centre)),
        ("fewest-hops tree, random", bfs_tree(adj, roots[0])),
        ("lowest-latency tree, random", latency_tree(sim, adj, roots[0])),
        ("lowest-latency tree, centre", latency_tree(sim, adj, centre)),
    ):
        e = [max(bfs_levels(tree, r).values()) for r in roots]
        print(f"  {name:<29}LDH mean {sum(e) / len(e):5.1f}  max {max(e):3d}")


if __name__ == "__main__":
    main()
