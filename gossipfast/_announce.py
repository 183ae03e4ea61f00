# cython: annotation_typing=False
"""Plumtree's outgoing announcements: the ``IHave`` queue of each lazy peer.

Each new message is announced to the lazy peers of its tree. The announcements wait in
one queue per peer until ``ihave_interval`` passes or ``ihave_batch_max`` ids are queued,
and leave as one ``IHave`` of runs ``[origin, first, last, hops, ...]``: a relay
delivers each origin's messages mostly in order, so most announcements extend the run of
their origin (one run on the wire for a stream of ids).

Hot module (compiled by Cython with ``_announce.pxd``; nothing here imports Cython).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .wire import IHave

if TYPE_CHECKING:
    from ._plumtree import Plumtree


class _Lazy:
    """Announcements queued for one lazy peer: runs ``[origin, first, last, hops, ...]``."""

    __slots__ = ("at", "ids", "last", "lh", "lo", "ls", "runs")

    def __init__(self) -> None:
        self.runs: list[int] = []
        self.ids = 0  # ids the runs name
        self.at: dict[int, int] = {}  # origin -> index of its latest run
        # the run extended last (index, origin, last seq, hops) as C numbers in the
        # compiled build: most announcements extend it, without a compare of int objects
        self.last = -1
        self.lo = 0
        self.ls = 0
        self.lh = 0


class IHaveQueues:
    """The queued announcements of one node's :class:`~gossipfast._plumtree.Plumtree`
    (``pt``): sent through ``pt.send``, counted in ``pt.s_ihave``.

    ``queues`` maps a lazy peer to its :class:`_Lazy`; one timer on ``timers``
    (:meth:`timer_flush`) sends them all every ``interval`` seconds (an interval of 0:
    the owner flushes after each input).
    """

    def __init__(self, pt: Plumtree, config: Any, timers: Any) -> None:
        """Empty queues with the interval and batch size of ``config``."""
        self.pt = pt
        self.timers = timers
        # bound once: a bound method per timer would be one more object for the cyclic GC
        self.t_flush = self.timer_flush
        self.interval = float(config.ihave_interval)
        self.batch = int(config.ihave_batch_max)
        self.queues: dict[str, _Lazy] = {}
        self.armed = False

    def announce(self, peer: str, o: int, s: int, h: int, now: float) -> None:
        """Queue an IHave entry for a lazy peer (sent in batches): the run of ``o``
        grows when ``s`` follows it at the same hop count."""
        a = self.queues.get(peer)
        if a is None:
            a = _Lazy()
            self.queues[peer] = a
            if self.interval > 0.0 and not self.armed:
                self.armed = True
                self.timers.schedule(now + self.interval, (self.t_flush,))
        runs = a.runs
        oc = o
        sc = s
        hc = h
        i = a.last
        if i < 0 or a.lo != oc:
            # another origin's run was extended last (several streams interleave)
            j = a.at.get(o)
            i = -1 if j is None else j
            if i >= 0:
                a.ls = runs[i + 2]
                a.lh = runs[i + 3]
        if i >= 0 and a.ls + 1 == sc and a.lh == hc:
            runs[i + 2] = s
        else:
            i = len(runs)
            a.at[o] = i
            runs.append(o)
            runs.append(s)
            runs.append(s)
            runs.append(h)
            a.lh = hc
        a.last = i
        a.lo = oc
        a.ls = sc
        a.ids += 1
        if a.ids >= self.batch:
            del self.queues[peer]
            self.pt.send(peer, IHave(runs))
            self.pt.s_ihave += 1

    def flush(self) -> None:
        """Send every queued IHave batch (at its timer or immediately)."""
        self.armed = False
        if not self.queues:
            return
        q = self.queues
        self.queues = {}
        pt = self.pt
        for peer, a in q.items():
            if a.runs:
                pt.send(peer, IHave(a.runs))
                pt.s_ihave += 1

    def timer_flush(self, item: tuple, now: float) -> None:
        """Timer ``(handler,)``: send the queued IHave batches."""
        self.flush()
