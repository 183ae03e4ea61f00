"""Graph figures of a simulated overlay: connectivity, degrees, clustering, hop counts."""

from __future__ import annotations

import heapq
import math
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import Simulator

__all__ = [
    "bfs_levels",
    "flood_ldh",
    "graph_metrics",
    "lowest_latency_parents",
    "undirected",
]


def graph_metrics(graph: dict[int, list[int]]) -> dict[str, Any]:
    """Connectivity, degrees, clustering and asymmetry of an active-view graph.

    ``graph`` maps each live node to its live active peers (directed). Connectivity and
    clustering use the undirected graph; ``asymmetric`` counts directed edges whose
    reverse is missing.
    """
    und = undirected(graph)
    asym = sum(1 for i, peers in graph.items() for j in peers if i not in graph.get(j, ()))
    components = 0
    largest = 0
    seen: set[int] = set()
    for s in graph:
        if s in seen:
            continue
        components += 1
        seen.add(s)
        q = deque([s])
        size = 0
        while q:
            u = q.popleft()
            size += 1
            for v in und[u]:
                if v not in seen:
                    seen.add(v)
                    q.append(v)
        largest = max(largest, size)
    degrees = [len(p) for p in graph.values()]
    cc_sum = 0.0
    for nb in und.values():
        k = len(nb)
        if k < 2:
            continue
        links = 0
        for u in nb:
            links += len(und[u] & nb)
        cc_sum += links / (k * (k - 1))  # each triangle edge counted twice over 2*C(k,2)
    n = len(graph)
    return {
        "live": n,
        "connected": components == 1,
        "components": components,
        "largest_component": largest,
        "degree_min": min(degrees) if degrees else 0,
        "degree_mean": (sum(degrees) / n) if n else 0.0,
        "degree_max": max(degrees) if degrees else 0,
        "isolated": sum(1 for d in degrees if d == 0),
        "clustering": cc_sum / n if n else 0.0,
        "asymmetric": asym,
    }


def flood_ldh(sim: Simulator, graph: dict[int, list[int]], source: int) -> tuple[int, int]:
    """LDH of an eager flood from ``source`` over ``graph``, and the BFS eccentricity.

    An eager flood forwards every new message to every active peer, so each node gets
    the copy that arrives first: its hop count is that of the lowest-latency path
    (Dijkstra over the links' latencies). The BFS eccentricity (fewest hops) is a lower
    bound of any LDH.
    """
    und = undirected(graph)
    parent = lowest_latency_parents(sim, und, source)
    hops = {source: 0}
    for v in parent:  # parents come before their children
        p = parent[v]
        if p is not None:
            hops[v] = hops[p] + 1
    flood = max(hops.values()) if hops else 0
    level = bfs_levels(und, source)
    return flood, max(level.values()) if level else 0


def lowest_latency_parents(
    sim: Simulator, adj: dict[int, set[int]], source: int
) -> dict[int, int | None]:
    """Parent of each node reached from ``source`` on its lowest-latency path (Dijkstra
    over the links' latencies), in the order the nodes are settled; ``source``'s is None.
    """
    dist = {source: 0.0}
    best: dict[int, int | None] = {source: None}
    parent: dict[int, int | None] = {}
    heap = [(0.0, source)]
    while heap:
        d, u = heapq.heappop(heap)
        if u in parent:
            continue
        parent[u] = best[u]
        for v in adj[u]:
            nd = d + sim.link_latency(u, v)
            if nd < dist.get(v, math.inf):
                dist[v] = nd
                best[v] = u
                heapq.heappush(heap, (nd, v))
    return parent


def undirected(graph: dict[int, list[int]]) -> dict[int, set[int]]:
    """The undirected graph of a directed one (edges to nodes outside it dropped)."""
    und: dict[int, set[int]] = {i: set() for i in graph}
    for i, peers in graph.items():
        for j in peers:
            if j in und:
                und[i].add(j)
                und[j].add(i)
    return und


def bfs_levels(adj: dict[int, set[int]], source: int) -> dict[int, int]:
    """Fewest hops from ``source`` to every node it reaches in ``adj``."""
    level = {source: 0}
    q = deque([source])
    while q:
        u = q.popleft()
        for v in adj[u]:
            if v not in level:
                level[v] = level[u] + 1
                q.append(v)
    return level
