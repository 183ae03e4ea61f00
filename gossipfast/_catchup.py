# cython: annotation_typing=False
"""Plumtree's catch-up: digests, ``Want`` and ``Gone``, the fresh-join baseline and the
anti-entropy digest.

When a neighbour comes up both sides exchange a ``Digest`` of the highest sequence number
seen per origin and pull what they miss with ``Want`` ranges, answered from the
:class:`~gossipfast._cache.PayloadStore` (partitions heal with their messages). Ids the
answerer has seen but no longer stores come back as ``Gone`` ranges: the asker records
them as lost for good (reported, never asked for again) and passes the ``Gone`` on.
Every ``anti_entropy_interval`` one active neighbour in turn gets the digest taken one
interval earlier, so that losses no push repairs are pulled too.

Hot module (compiled by Cython with ``_catchup.pxd``; nothing here imports Cython).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .wire import Digest, Gone, Gossip, Want

if TYPE_CHECKING:
    from ._plumtree import Plumtree

#: Bounds of a valid id on the wire.
_U64 = (1 << 64) - 1
_SEQ_MAX = (1 << 63) - 1
#: Origins listed in one Digest (the most recently active ones when over).
_DIGEST_MAX_ORIGINS = 4096
#: Items of a Want or Gone we look at; the rest is ignored.
_MAX_LIST = 1 << 17


def _valid_id(origin: Any, seq: Any) -> bool:
    """True for an id inside the wire's ranges (origin u64, seq 1..2**63-1)."""
    return 0 <= origin <= _U64 and 0 < seq <= _SEQ_MAX


def _valid_range(origin: Any, first: Any, last: Any) -> bool:
    """True for a range ``first..last`` of valid ids of ``origin``."""
    return _valid_id(origin, first) and _valid_id(origin, last) and last >= first


def _add_id(ranges: list, o: Any, s: Any) -> None:
    """Add id (o, s) to ranges ``[origin, first, last, ...]``, extending the last range
    when ``s`` follows it (ids come in ascending order per origin)."""
    g = len(ranges)
    if g and ranges[g - 3] == o and ranges[g - 1] == s - 1:
        ranges[g - 1] = s
    else:
        ranges.append(o)
        ranges.append(s)
        ranges.append(s)


class CatchUp:
    """The catch-up state of one node's :class:`~gossipfast._plumtree.Plumtree` (``pt``).

    It reads ``pt``'s dedup, store, missing and requested ids, sends through ``pt.send``,
    books requests with ``pt.requests.remember`` and counts in ``pt``'s counters (the
    stats keys stay Plumtree's).
    """

    def __init__(self, pt: Plumtree, config: Any) -> None:
        """Catch-up for ``pt`` with the limits of ``config``."""
        self.pt = pt
        self.catch_up_max = int(config.catch_up_max)
        # fresh-join baseline: the first digest after the first neighbour came up sets the
        # starting point of origins unknown so far (a new node does not pull old history);
        # only the first, as a later one may list origins that started after we joined
        self.first_up = -1.0
        self.baseline_window = max(float(config.neighbor_timeout), float(config.repair_interval))
        self.baseline_open = False
        self.known_before: set[int] = set()
        # origin -> the seq the baseline skipped to: those ids were never seen here, so a
        # Want of them gets no Gone (others may still store them)
        self.skipped: dict[int, int] = {}
        # anti-entropy: the digest taken one interval ago (an id in it is that old: its
        # lack is a loss, not a copy in flight), of origins seen within the retention
        self.ae_interval = float(config.anti_entropy_interval)
        self.retention = float(config.store_max_age)
        self.ae_snapshot: list = []
        self.ae_turn = 0

    # -- digests ---------------------------------------------------------------------------

    def joined(self, now: float) -> None:
        """A neighbour came up: the first one opens the fresh-join baseline."""
        if self.first_up < 0.0:
            self.first_up = now
            self.baseline_open = True
            d = self.pt.dedup.digest()
            self.known_before = {d[i] for i in range(0, len(d), 2)}

    def offer_digest(self, peer: str) -> None:
        """Send ``peer`` our digest (a new neighbour: it pulls what it misses)."""
        d = self.pt.dedup.digest()
        if len(d) > 2 * _DIGEST_MAX_ORIGINS:
            d = _recent_digest(d)
        self.pt.send(peer, Digest(d))
        self.pt.s_digest += 1

    def start(self, now: float) -> None:
        """Arm the anti-entropy timer (nothing when ``anti_entropy_interval`` is 0)."""
        if self.ae_interval > 0.0:
            self.pt.timers.schedule(now + self.ae_interval, (self.timer_anti_entropy,))

    def timer_anti_entropy(self, item: tuple, now: float) -> None:
        """Timer: run :meth:`anti_entropy` and re-arm."""
        self.anti_entropy(now)
        self.pt.timers.schedule(now + self.ae_interval, (self.timer_anti_entropy,))

    def anti_entropy(self, now: float) -> None:
        """Send the previous snapshot of our digest to the next active neighbour in turn
        and take a new one."""
        pt = self.pt
        peers = pt.active
        if peers and self.ae_snapshot:
            self.ae_turn += 1
            pt.send(peers[self.ae_turn % len(peers)], Digest(self.ae_snapshot))
            pt.s_digest += 1
        d = pt.dedup.digest(now - self.retention)
        if len(d) > 2 * _DIGEST_MAX_ORIGINS:
            d = _recent_digest(d)
        self.ae_snapshot = d

    # -- inputs ----------------------------------------------------------------------------

    def on_digest(self, peer: str, entries: Any, now: float) -> None:
        """A neighbour's {origin: highest seq}: ask for what we miss, as ranges."""
        pt = self.pt
        if not pt.is_active(peer):
            return
        n = len(entries)
        if n % 2 or n > 4 * _DIGEST_MAX_ORIGINS:
            pt.bad += 1
            n = min(n - n % 2, 4 * _DIGEST_MAX_ORIGINS)
        fresh = self.baseline_open and now - self.first_up <= self.baseline_window
        self.baseline_open = False
        budget = self.catch_up_max
        ranges: list[int] = []
        for i in range(0, n, 2):
            o = entries[i]
            high = entries[i + 1]
            if not _valid_id(o, high):
                if high != 0:
                    pt.bad += 1
                continue
            if o == pt.origin:
                continue
            if fresh and o not in self.known_before and o not in pt.dedup:
                # a new node starts at the present: no pull of old history
                pt.dedup.advance(o, high)
                self.skipped[o] = high
                continue
            if budget <= 0:
                continue
            miss = pt.dedup.missing(o, high, budget)
            if miss and (pt.missing or pt.requests.requested):
                miss = self.not_pending(o, miss, now)
            if miss and self.flowing(o, now):
                # the origin's stream reaches us now: what is past our highest seq is on
                # its way (asked for, each copy would come twice and prune the link)
                top = pt.dedup.highest(o)
                miss = [q for q in miss if q < top]
            if not miss:
                continue
            budget -= len(miss)
            pt.catch_up_requested += len(miss)
            self.ask(peer, ranges, o, miss, now)
        if ranges:
            pt.send(peer, Want(ranges))
            pt.s_want += 1

    def flowing(self, o: int, now: float) -> bool:
        """True when a push of origin ``o`` came within the last anti-entropy interval
        (with anti-entropy on: the next digest asks for what did not come after all)."""
        if self.ae_interval <= 0.0:
            return False  # no later digest would ask again: ask now
        t = self.pt.trees.get(o)
        return t is not None and t.push_at > now - self.ae_interval

    def ask(self, peer: str, ranges: list, o: int, miss: list, now: float) -> None:
        """Book the request of ``o``'s seqs ``miss`` (ascending) from ``peer`` and add
        them to ``ranges`` as ``[o, first, last]`` runs."""
        pt = self.pt
        first = miss[0]
        last = first
        pt.requests.remember(o, first, peer, now)
        for j in range(1, len(miss)):
            q = miss[j]
            pt.requests.remember(o, q, peer, now)
            if q == last + 1:
                last = q
            else:
                ranges.append(o)
                ranges.append(first)
                ranges.append(last)
                first = q
                last = q
        ranges.append(o)
        ranges.append(first)
        ranges.append(last)

    def not_pending(self, o: int, seqs: list, now: float) -> list:
        """``seqs`` of origin ``o`` less those on their way: announced (a graft timer
        runs for them) or asked for within the last anti-entropy interval."""
        missing = self.pt.missing
        requested = self.pt.requests.requested
        recent = now - (self.ae_interval if self.ae_interval > 0.0 else 1.0)
        out = []
        for q in seqs:
            key = (o, q)
            if key in missing:
                continue
            when = requested.get(key)
            if when is not None and when > recent:
                continue
            out.append(q)
        return out

    def ranges_len(self, ranges: Any) -> int:
        """How much of a ``[origin, first, last, ...]`` list from the wire to read: whole
        triples, at most ``_MAX_LIST`` items (anything else counts as bad input)."""
        n = len(ranges)
        if n % 3 or n > _MAX_LIST:
            self.pt.bad += 1
            n = min(n - n % 3, _MAX_LIST)
        return n

    def on_want(self, peer: str, ranges: Any) -> None:
        """Answer a catch-up request from the payload store (bounded per request); the
        ids we have seen but no longer store are answered with one ``Gone``."""
        pt = self.pt
        if not pt.is_active(peer):
            return
        n = self.ranges_len(ranges)
        budget = self.catch_up_max
        gone: list[int] = []
        b = pt.requests.answer_tokens(peer)
        for i in range(0, n, 3):
            o = ranges[i]
            first = ranges[i + 1]
            last = ranges[i + 2]
            if not _valid_range(o, first, last):
                pt.bad += 1
                continue
            if last - first >= budget:
                last = first + budget - 1
            # each payload asked for spends one of the peer's answer tokens; the rest of
            # the request is refused (counted)
            room = int(b.resends)
            if last - first >= room:
                pt.answers_refused += last - first + 1 - room
                if room <= 0:
                    break
                last = first + room - 1
            b.resends -= last - first + 1
            self.answer(peer, gone, o, first, last)
            budget -= last - first + 1
            if budget <= 0:
                break
        if gone:
            pt.send(peer, Gone(gone))
            pt.s_gone += 1

    def answer(self, peer: str, gone: list, o: int, first: int, last: int) -> None:
        """Send ``peer`` the stored payloads of ``o``'s seqs ``first..last``; add those
        seen here once but no longer stored to ``gone``."""
        pt = self.pt
        store = pt.store
        skipped = self.skipped.get(o, 0)
        s = first
        while s <= last:
            item = store.get(o, s)
            if item is not None:
                pt.send(peer, Gossip(o, s, item[0], item[1]))
                pt.s_gossip += 1
            elif s > skipped and pt.dedup.contains(o, s) and (o, s) not in pt.refused:
                # seen here, no longer stored (unseen ids, those the fresh-join
                # baseline skipped and those the validator refused get no answer)
                _add_id(gone, o, s)
            s += 1

    def on_gone(self, peer: str, ranges: Any) -> None:
        """A neighbour says these ids are lost for good (seen there, stored nowhere it
        knows). Record those we lack as seen, so that catch-up stops asking for them
        and a late copy is not delivered; report them (``pt.gaps``) and pass the news
        on to every other neighbour. Ids still announced to us (a missing-message timer
        runs: a push may come) are left alone.

        Bounded like a ``Want``: at most ``catch_up_max`` ids looked at per message, and
        none more than ``catch_up_max`` past the highest seq we know of the origin (a
        forged range at 2**63 does not move it); the rest counts as bad input.
        """
        pt = self.pt
        if not pt.is_active(peer) or self.catch_up_max <= 0:
            return
        n = self.ranges_len(ranges)
        budget = self.catch_up_max
        dedup = pt.dedup
        new: list[int] = []
        counts: dict[int, int] = {}
        for i in range(0, n, 3):
            if budget <= 0:
                pt.bad += 1
                break
            o = ranges[i]
            first = ranges[i + 1]
            last = ranges[i + 2]
            if not _valid_range(o, first, last):
                pt.bad += 1
                continue
            if o == pt.origin:
                continue
            top = dedup.highest(o) + self.catch_up_max
            if last > top or last - first >= budget:
                pt.bad += 1
                if last > top:
                    last = top
                if last - first >= budget:
                    last = first + budget - 1
                if last < first:
                    continue
            budget -= last - first + 1
            got = self.mark_lost(new, o, first, last)
            if got:
                counts[o] = counts.get(o, 0) + got
        if counts:
            self.report_lost(peer, counts, new)

    def mark_lost(self, new: list, o: int, first: int, last: int) -> int:
        """Record ``o``'s unseen, unannounced seqs in ``first..last`` as seen (lost for
        good), add them to ``new`` and return how many."""
        dedup = self.pt.dedup
        missing = self.pt.missing
        got = 0
        s = dedup.first_missing(o, first, last)
        while s != 0:
            if (o, s) not in missing and dedup.check_and_insert(o, s):
                got += 1
                _add_id(new, o, s)
            s = 0 if s == last else dedup.first_missing(o, s + 1, last)
        return got

    def report_lost(self, peer: str, counts: dict, new: list) -> None:
        """Count and report the ids learnt lost (per origin), let FIFO delivery pass
        them, and pass the ``Gone`` on to every other active neighbour."""
        pt = self.pt
        for o, c in counts.items():
            pt.lost += c
            pt.gaps.append((o, c))
            if pt.fifo:
                pt.pass_lost(o)
        msg = Gone(new)
        for p in pt.active:
            if p != peer:
                pt.send(p, msg)
                pt.s_gone += 1


def _recent_digest(d: list) -> list:
    """Cap a digest to the most recent origins (the cache lists them newest first)."""
    return d[: 2 * _DIGEST_MAX_ORIGINS]
