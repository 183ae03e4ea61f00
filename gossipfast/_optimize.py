# cython: annotation_typing=False
"""Plumtree's tree optimisation: a shorter or faster path replaces the eager parent.

An announcement over a path at least ``optimization_threshold`` hops shorter than the
parent's (the paper's rule, also when it comes after the payload) or, with the anchored
tree, a lazy announcer faster than the parent in a young own tree makes the announcer the
parent: ``Graft(o, 0)`` to it, ``Prune(o)`` to the old one. docs/internals.md ("Plumtree
choices beyond the paper") tells why.

Hot module (compiled by Cython with ``_optimize.pxd``; nothing here imports Cython).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._intake import _Missing
    from ._plumtree import Plumtree

#: optimize_lag moves the parent to a faster announcer only over a path at most this many
#: hops longer (unbounded, young trees grew far deeper than their settled depth).
_LAG_HOPS = 2


class TreeOptimizer:
    """The tree optimisation of one node's :class:`~gossipfast._plumtree.Plumtree`
    (``pt``): it reshapes ``pt``'s trees through its tree and batch methods and counts
    in ``pt.optimizations``."""

    def __init__(self, pt: Plumtree, config: Any) -> None:
        """Optimise with the threshold of ``config``."""
        self.pt = pt
        self.threshold = int(config.optimization_threshold)

    def optimize(self, sender: str, o: int, m: _Missing, hops: int) -> None:
        """Replace the eager parent ``sender`` by a lazy announcer with a shorter path."""
        pt = self.pt
        t = pt.tree(o)
        if sender in t.lazy_t or not pt.is_active(sender):
            return
        if pt.anchored and t.lazy is None:
            return  # the shared tree is the anchor's fewest-hops tree already
        best = -1
        best_hops = hops - self.threshold
        packed = m.hops
        for i in range(len(m.peers)):
            p = m.peers[i]
            h = (packed >> (16 * i)) & 0xFFFF
            if h <= best_hops and p != sender and p in t.lazy_t:
                best = i
                best_hops = h
        if best < 0:
            return
        self.swap_parent(o, sender, m.peers[best])

    def swap_parent(self, o: int, old: str | None, new: str) -> None:
        """In ``o``'s own tree: ``new`` becomes eager (``Graft(o, 0)``), ``old`` lazy
        (``Prune(o)``)."""
        pt = self.pt
        if pt.to_eager(o, new):
            pt.control.queue_graft(new, o, 0)
        t = pt.trees.get(o)
        if t is not None and t.lazy is not None:
            t.up = new
        if old is not None and old != new and pt.to_lazy(o, old):
            pt.control.queue_prune(old, o)
        pt.optimizations += 1

    def optimize_lag(self, sender: str, o: int, m: _Missing, hops: int, now: float) -> None:
        """The payload came from the eager parent well after a lazy peer announced it:
        make the first announcer the parent in the origin's own tree (``hops``: the
        parent's hop count; the announcer's path may be up to ``_LAG_HOPS`` longer).

        Only with the anchored tree: an origin's own tree then starts as the anchor's
        fewest-hops tree, not as the latency tree of a first flood, and without this
        it would reach its latency shape only through grafts that raced the parent's
        push (one duplicate each). The margin (half the graft delay) keeps two nearly
        equal paths from trading places.
        """
        pt = self.pt
        t = pt.trees.get(o)
        if t is None or t.lazy is None or now - m.since < 0.5 * pt.graft_delay.value:
            return
        p = m.peers[0] if m.peers else None
        if p is None or p == sender or (m.hops & 0xFFFF) > hops + _LAG_HOPS:
            return
        t = pt.tree(o)
        if p not in t.lazy_t or sender not in t.eager:
            return  # replaced already (optimize), or no longer a neighbour
        self.swap_parent(o, sender, p)

    def optimize_late(self, announcer: str, o: int, s: int, h: int) -> None:
        """An announcement of (o, s), ``h`` hops from the origin, came after the payload:
        if it is ``o``'s latest message and the path is at least ``threshold`` hops
        shorter than our parent's, make the announcer the parent for ``o`` (the paper
        optimises only with announcements that came first; with many one-shot origins on
        one tree most shorter paths are announced late)."""
        pt = self.pt
        t = pt.trees.get(o)
        if t is None or t.pseq != s or h + 1 + self.threshold > t.phops:
            return
        if pt.anchored and t.lazy is None:
            return
        parent = t.parent
        if parent is None or parent == announcer:
            return
        t = pt.tree(o)  # shaped for use: current eager/lazy tuples
        if announcer not in t.lazy_t or parent not in t.eager:
            return  # not a lazy link of ours, or the parent was replaced or is gone
        t.parent = announcer
        t.phops = h + 1
        self.swap_parent(o, parent, announcer)
