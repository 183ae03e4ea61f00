"""Figures read off a simulator's state: per broadcast, and of the overlay's views."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._quantile import percentile

if TYPE_CHECKING:
    from .core import BroadcastRecord, Simulator

__all__ = ["active_graph", "broadcast_figures", "view_consistency"]


def active_graph(sim: Simulator) -> dict[int, list[int]]:
    """Live node -> live active peers, read from each engine's ``active_view``."""
    index = sim.index
    alive = sim.alive
    out: dict[int, list[int]] = {}
    for i in sim.live():
        peers = []
        for p in sim.engines[i].active_view:
            j = index.get(p)
            if j is not None and alive[j]:
                peers.append(j)
        out[i] = peers
    return out


def broadcast_figures(
    sim: Simulator, rec: BroadcastRecord, window: float = 2.0, grace: float = 1.0
) -> dict[str, Any]:
    """Reliability, RMR, LDH, latency and control traffic of one broadcast.

    ``reliability`` is the share of the live nodes that delivered it by now; a node
    counts if it is up now and was added at least ``grace`` seconds before the send
    (a join takes a few round trips). ``reliability_window`` counts only deliveries
    within ``window`` seconds of the send.
    """
    alive = sim.alive
    born = sim.born
    seen = rec.seen
    at = rec.at
    limit = rec.t0 + window
    member = rec.t0 - grace
    targets = 0
    got = 0
    fast = 0
    for i in range(rec.n_at_send):
        if alive[i] and born[i] <= member:
            targets += 1
            if seen[i]:
                got += 1
                if at[i] <= limit:
                    fast += 1
    n = sum(seen)  # every node that delivered, incl. the origin and departed ones
    lat = sorted(rec.latency)
    return {
        "origin": rec.origin_index,
        "tag": rec.tag,
        "t": rec.t0,
        "reliability": got / targets if targets else 1.0,
        "reliability_window": fast / targets if targets else 1.0,
        "missed": targets - got,
        "delivered": n,
        "gossip": rec.sent,
        "rmr": (rec.sent / (n - 1) - 1.0) if n > 1 else 0.0,
        "ldh": max(rec.hops) if rec.hops else 0,
        "lat_p50": percentile(lat, 0.50, empty=0.0),
        "lat_p99": percentile(lat, 0.99, empty=0.0),
        "lat_max": lat[-1] if lat else 0.0,
        "ihave": rec.ihave,
        "graft": rec.graft,
        "dup_deliveries": rec.dup,
    }


def view_consistency(sim: Simulator) -> int:
    """Live nodes whose NeighborUp/Down events disagree with their active_view."""
    bad = 0
    index = sim.index
    for i in sim.live():
        view = {index.get(p, -1) for p in sim.engines[i].active_view}
        if view != sim.act[i]:
            bad += 1
    return bad
