# cython: annotation_typing=False
"""Plumtree's announcement intake: ``IHave`` from lazy peers, and the graft timers.

Each unseen id an ``IHave`` names gets a missing-message entry (:class:`_Missing`) and a
timer, due the graft delay after the announcement came: if the push has not come by
then, the announcer is grafted (or asked with a ``Want``), and the next announcer after
``graft_timeout_2``. An announcement of many ids is held for half the graft delay first,
as most of them are pushed meanwhile. docs/internals.md ("Plumtree choices beyond the
paper") tells why.

Hot module (compiled by Cython with ``_intake.pxd``; nothing here imports Cython).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._plumtree import Plumtree
    from ._requests import _Budget

#: Bounds that reject forged ids and hop counts.
_U64 = (1 << 64) - 1
_SEQ_MAX = (1 << 63) - 1
_HOPS_MAX = 1 << 16
#: A missing message remembers at most this many announcers (first come first asked).
_MAX_ANNOUNCERS = 8
#: An announcement of at least ``_ANNOUNCE_HOLD_MIN`` ids is looked at this share of the
#: graft delay after it came (most of its ids are pushed meanwhile); smaller ones at once.
_ANNOUNCE_HOLD = 0.5
_ANNOUNCE_HOLD_MIN = 32
#: Announced ids held at once; beyond, the oldest announcements are looked at early.
_MAX_ANN_HELD = 1 << 16
#: Runs of an IHave we look at; the rest is ignored.
_MAX_LIST = 1 << 17
#: With the anchored tree, an origin's own tree is young (waits the longest graft delay)
#: for its first this many messages: it starts as the anchor's tree and still lags.
_YOUNG = 10


class _Missing:
    """A message announced by lazy peers that has not arrived yet.

    Many are made (one per message announced before its push), so it is kept small: one
    list of announcers, their hop counts packed in one int (16 bits each: hops <
    ``_HOPS_MAX``), and usually the timer of its announcement rather than one of its own.
    """

    __slots__ = ("grafted", "hops", "keep", "owner", "peers", "since", "timer")

    def __init__(self, timer: Any, peer: str, hops: int, since: float, owner: _Budget) -> None:
        # the pending timer: its id, or the batch (a list of keys) of the announcement
        # that armed one timer for all its new ids
        self.timer = timer
        self.since = since  # when the first announcement came
        self.peers: list[str] = [peer]  # announcers in arrival order
        self.hops = hops  # announcer i's hop count is (hops >> 16 * i) & 0xFFFF
        self.grafted: list[str] | None = None  # peers we sent a Graft (or Want) for it
        self.keep = False  # asked with a Want that leaves the origin's own tree as it is
        self.owner = owner  # the budget of the announcer that made the entry (its share)
        self.owner.missing += 1


def _run_ids(runs: Any) -> int:
    """How many ids an IHave's runs name (0 for what is not a run; each run counts at
    most ``_MAX_LIST``)."""
    n = len(runs) - 3
    total = 0
    for i in range(0, n, 4):
        first = runs[i + 1]
        last = runs[i + 2]
        if type(first) is int and type(last) is int and last >= first:
            d = last - first
            total += d + 1 if d < _MAX_LIST else _MAX_LIST
    return total


class IHaveIntake:
    """The announcement intake of one node's :class:`~gossipfast._plumtree.Plumtree`
    (``pt``).

    It makes the entries of ``pt.missing``, reads ``pt``'s dedup, trees and graft delay,
    asks through ``pt``'s tree and batch methods, books requests in ``pt.requests`` and
    counts in ``pt``'s counters (the stats keys stay Plumtree's). Its timers on
    ``timers``: :meth:`timer_grafts` (the missing-message timer of one announcement's new
    ids), :meth:`timer_graft` (that of one id) and :meth:`timer_held` (announcements held
    back). ``held`` lists the held IHaves as (due, arrival, peer, runs, ids), in arrival
    order; ``ids`` counts the ids they name.
    """

    def __init__(self, pt: Plumtree, config: Any, timers: Any, missing_max: int) -> None:
        """No announcement held yet; ``config`` gives the limits, ``missing_max`` the
        bound of ``pt.missing`` (further announcements wait for catch-up)."""
        self.pt = pt
        self.missing_max = missing_max
        self.timers = timers
        # timer handlers bound once: a bound method per timer would be one more object for
        # the cyclic GC to count and traverse
        self.t_grafts = self.timer_grafts
        self.t_graft = self.timer_graft
        self.t_held = self.timer_held
        self.batch = int(config.ihave_batch_max)
        self.peer_missing_max = int(config.peer_missing_max)
        self.graft_timeout_2 = float(config.graft_timeout_2)
        self.held: deque[tuple[float, float, str, Any, int]] = deque()
        self.ids = 0
        self.armed = False

    def on_ihave(self, peer: str, runs: Any, now: float) -> None:
        """Lazy announcements: a missing-message timer (due at arrival + the graft delay)
        for each unseen id; a big announcement is held for half the delay first."""
        pt = self.pt
        if not pt.is_active(peer):
            return
        n = _run_ids(runs)
        if pt.requests.budget(peer).missing >= self.peer_missing_max:
            # its whole share of missing-message entries is in use: not looked at (as
            # many ids as one IHave of ours names at most are counted)
            pt.ihave_dropped += n if n < self.batch else self.batch
            return
        if n < _ANNOUNCE_HOLD_MIN:
            self.take_ihave(peer, runs, now)
            return
        self.held.append((now + pt.graft_delay.value * _ANNOUNCE_HOLD, now, peer, runs, n))
        self.ids += n
        while self.ids > _MAX_ANN_HELD:
            self.take_oldest_held()
        self.arm_held()

    def release_held(self, now: float) -> None:
        """The hold of the oldest announcements is over: look at them."""
        self.armed = False
        held = self.held
        while held and held[0][0] <= now:
            self.take_oldest_held()
        self.arm_held()

    def arm_held(self) -> None:
        """Arm the timer of the oldest held announcement, if any and none is armed."""
        if self.held and not self.armed:
            self.armed = True
            self.timers.schedule(self.held[0][0], (self.t_held,))

    def take_oldest_held(self) -> None:
        """Look at the oldest held announcement (as of its arrival), unless its sender
        is gone; hostile content (wrong types) counts as bad input, as in on_frame."""
        _, since, peer, runs, n = self.held.popleft()
        self.ids -= n
        if not self.pt.is_active(peer):
            return
        try:
            self.take_ihave(peer, runs, since)
        except Exception:  # hostile input must never escape (from a timer, here)
            self.pt.bad += 1

    def take_ihave(self, peer: str, runs: Any, now: float) -> None:
        """Look at one announcement that came at ``now``: a missing-message timer for each
        unseen id, due at ``now`` + the graft delay."""
        pt = self.pt
        n = len(runs)
        if n % 4 or n > _MAX_LIST:
            pt.bad += 1
            n = min(n - n % 4, _MAX_LIST)
        # one timer for the ids this announcement is the first of: most are pushed in time
        batch: list | None = None
        young: list | None = None
        # unseen ids looked at: as many as one IHave of ours names (a run is cheap to
        # forge, each unseen id of it costs an entry and a Graft here)
        left = self.batch
        dedup = pt.dedup
        missing = pt.missing
        # new entries this announcer may still make (its share of the missing ids)
        owner = pt.requests.budget(peer)
        room = self.peer_missing_max - owner.missing
        for i in range(0, n, 4):
            o = runs[i]
            first = runs[i + 1]
            last = runs[i + 2]
            h = runs[i + 3]
            # (a valid first seq and first <= last <= the largest seq: every seq is valid)
            if (
                not (0 <= o <= _U64 and 0 < first <= _SEQ_MAX)
                or last < first
                or last > _SEQ_MAX
                or h < 0
                or h >= _HOPS_MAX
            ):
                pt.bad += 1
                continue
            if o == pt.origin:
                continue
            tr = pt.trees.get(o)
            if tr is not None:
                # an announcement of the origin's latest message, delivered already
                p = tr.pseq
                if p is not None and first <= p <= last and dedup.contains(o, p):
                    pt.optimizer.optimize_late(peer, o, p, h)
            # a young own tree still lags like the anchor's tree it was copied from: let
            # the payload come, and move the parent to the faster announcer without a
            # duplicate (optimize_lag)
            slow = pt.anchored and tr is not None and tr.lazy is not None and tr.count < _YOUNG
            s = dedup.first_missing(o, first, last)
            while s != 0:
                if left == 0:
                    pt.bad += 1  # more than an honest peer announces at once
                    break
                left -= 1
                key = (o, s)
                m = missing.get(key)
                if m is None:
                    if room <= 0:
                        pt.ihave_dropped += 1  # over its share: not tracked
                    elif len(missing) < self.missing_max:
                        room -= 1
                        if slow:
                            if young is None:
                                young = []
                            b = young
                        else:
                            if batch is None:
                                batch = []
                            b = batch
                        b.append(key)
                        missing[key] = _Missing(b, peer, h, now, owner)
                elif len(m.peers) < _MAX_ANNOUNCERS and peer not in m.peers:
                    m.hops |= h << (16 * len(m.peers))
                    m.peers.append(peer)
                s = 0 if s == last else dedup.first_missing(o, s + 1, last)
            if s != 0:
                break  # out of unseen ids to look at
        if batch is not None:
            self.timers.schedule(now + pt.graft_delay.value, (self.t_grafts, batch))
        if young is not None:
            self.timers.schedule(now + pt.graft_delay.cap, (self.t_grafts, young))

    def graft_timers(self, batch: list, now: float) -> None:
        """The timer of one announcement's new ids fired: run :meth:`graft_timer` for
        those still missing (and not re-armed on a timer of their own)."""
        missing = self.pt.missing
        for key in batch:
            m = missing.get(key)
            if m is not None and m.timer is batch:
                self.graft_timer(key[0], key[1], now)

    def graft_timer(self, o: int, s: int, now: float) -> None:
        """A missing message did not arrive in time: graft its next announcer."""
        pt = self.pt
        key = (o, s)
        m = pt.missing.get(key)
        if m is None:
            return
        if pt.dedup.contains(o, s):
            del pt.missing[key]
            m.owner.missing -= 1
            return
        tr = pt.trees.get(o)
        own = False
        keep = False
        gd = pt.graft_delay
        if tr is not None and tr.lazy is not None:
            own = True
            # the tree pushed newer messages since: it works, so fetch this one rather
            # than graft a second parent (docs/internals.md)
            keep = tr.push_seq > s
            if not keep and m.grafted is None and now - tr.push_at < gd.value:
                # the tree still delivers, older messages first: wait until it passes
                # this one or stalls for a whole graft delay
                m.timer = self.timers.schedule(tr.push_at + gd.value, (self.t_graft, o, s))
                return
        while m.peers:
            p = m.peers.pop(0)
            m.hops >>= 16
            if pt.is_active(p) and pt.requests.grant(p, now):
                # a first message on the anchored tree: fetch it, keep the tree (the push
                # is late, not lost; the tree has no better link to offer)
                fetch = keep or (pt.anchored and not own)
                m.keep = keep
                if fetch:
                    pt.control.queue_want(p, o, s)
                else:
                    pt.to_eager(o, p)
                    pt.control.queue_graft(p, o, s)
                if m.grafted is None:
                    m.grafted = [p]
                    gd.grafted(key, 2 if fetch else 1)
                else:
                    m.grafted.append(p)
                pt.grafts += 1
                pt.requests.grafted(o, s, p, now)
                m.timer = self.timers.schedule(now + self.graft_timeout_2, (self.t_graft, o, s))
                return
        del pt.missing[key]
        m.owner.missing -= 1

    def timer_grafts(self, item: tuple, now: float) -> None:
        """Timer ``(handler, keys)``: one announcement's new ids are due."""
        self.graft_timers(item[1], now)

    def timer_graft(self, item: tuple, now: float) -> None:
        """Timer ``(handler, origin, seq)``: one missing id is due."""
        self.graft_timer(item[1], item[2], now)

    def timer_held(self, item: tuple, now: float) -> None:
        """Timer: the hold of the oldest announcements is over."""
        self.release_held(now)
