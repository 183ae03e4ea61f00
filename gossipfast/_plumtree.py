"""Plumtree broadcast state machine (sans-IO), with catch-up and optional FIFO delivery.

Plumtree (Leitão, Pereira, Rodrigues, SRDS 2007; corrected Algorithm 1 of the 2019
revision): every active neighbour starts *eager* (payloads are pushed to it); a duplicate
payload moves its sender to *lazy* (it only gets batched ``IHave`` announcements); a lazy
announcement of a message that does not arrive in time makes us ``Graft`` the announcer
back into the eager set. The eager links converge to a spanning tree, the lazy links are
its backups.

Beyond the paper: when a neighbour comes up both sides exchange a ``Digest`` of the
highest sequence number seen per origin and pull what they miss with ``Want`` ranges,
answered from the :class:`~gossipfast._cache.PayloadStore` (partitions heal with their
messages). Optional per-origin FIFO delivery holds back out-of-order messages (bounded).

This is a hot module: Cython compiles it with ``_plumtree.pxd``. No ``import cython``
here, so the pure-Python build runs the same source.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ._cache import DedupCache, PayloadStore
from ._peers import EagerLazy
from .wire import Digest, Gossip, Graft, IHave, Prune, Want

#: Bounds that reject forged ids and hop counts.
_U64 = (1 << 64) - 1
_SEQ_MAX = (1 << 63) - 1
_HOPS_MAX = 1 << 16
#: A missing message remembers at most this many announcers (first come first asked).
_MAX_ANNOUNCERS = 8
#: Missing-message timers alive at once; further announcements wait for catch-up.
_MAX_MISSING = 1 << 16
#: Origins listed in one Digest (the most recently active ones when over).
_DIGEST_MAX_ORIGINS = 4096
#: Ids a Graft or IHave may carry that we look at; the rest is ignored.
_MAX_LIST = 1 << 17
#: Seconds a Graft/Want request is remembered to count its answer as a recovery.
_REQUEST_TTL = 30.0
#: Messages held back per origin by FIFO delivery before a gap is skipped.
_FIFO_HOLD_MAX = 4096
#: Seconds FIFO delivery waits for a gap to fill (grafts and catch-up take < 1 s).
_FIFO_HOLD = 1.0


class _Missing:
    """A message announced by lazy peers that has not arrived yet."""

    __slots__ = ("hops", "peers", "timer")

    def __init__(self, timer: int, peer: str, hops: int) -> None:
        self.timer = timer
        self.peers: list[str] = [peer]
        self.hops: list[int] = [hops]


def _valid_id(origin: Any, seq: Any) -> bool:
    """True for an id inside the wire's ranges (origin u64, seq 1..2**63-1)."""
    return 0 <= origin <= _U64 and 0 < seq <= _SEQ_MAX


class Plumtree:
    """Broadcast state of one node.

    The engine owns the outputs and hands them in: ``outbox`` (peer -> messages) and
    ``deliveries``; after a drain it assigns fresh containers to both attributes. Timers
    go to the shared ``timers`` wheel as tuples (``("g", origin, seq)`` missing-message,
    ``("i",)`` IHave flush) that the engine routes back to :meth:`graft_timer` and
    :meth:`flush_ihaves`.
    """

    def __init__(self, origin: int, config: Any, timers: Any) -> None:
        """Create an empty broadcast state for the node whose origin is ``origin``."""
        self.origin = origin
        self.timers = timers
        self.outbox: dict[str, list] = {}
        self.deliveries: list[tuple[int, int, int, bytes]] = []
        self.dedup = DedupCache(config.dedup_window, config.dedup_max_origins)
        self.store = PayloadStore(
            config.store_max_messages, config.store_max_bytes, config.store_max_age
        )
        self.peers = EagerLazy()
        self.eager: tuple = ()
        self.lazy: tuple = ()
        self.seq = 0
        self.now = 0.0  # time of the input being handled (for timers armed deep inside)
        self.ihave_interval = float(config.ihave_interval)
        self.ihave_batch = 3 * int(config.ihave_batch_max)
        self.graft_timeout_1 = float(config.graft_timeout_1)
        self.graft_timeout_2 = float(config.graft_timeout_2)
        self.threshold = int(config.optimization_threshold)
        self.catch_up_max = int(config.catch_up_max)
        self.fifo = bool(config.fifo)
        self.lazyq: dict[str, list[int]] = {}
        self.ihave_armed = False
        self.missing: dict[tuple[int, int], _Missing] = {}
        self.requested: OrderedDict[tuple[int, int], float] = OrderedDict()
        self.graft_batch: dict[str, list[int]] = {}
        # fresh-join baseline: the first digests set the starting point of unknown origins
        self.first_up = -1.0
        self.baseline_window = max(float(config.neighbor_timeout), float(config.repair_interval))
        self.known_before: set[int] = set()
        # FIFO delivery: origin -> {seq: (hops, payload)} held back until the gap fills
        self.next_seq: dict[int, int] = {}
        self.held: dict[int, dict[int, tuple[int, bytes]]] = {}
        # counters
        self.s_gossip = 0
        self.s_ihave = 0
        self.s_graft = 0
        self.s_prune = 0
        self.s_digest = 0
        self.s_want = 0
        self.r_gossip = 0
        self.r_ihave = 0
        self.r_graft = 0
        self.r_prune = 0
        self.r_digest = 0
        self.r_want = 0
        self.delivered = 0
        self.duplicates = 0
        self.grafts = 0
        self.recovered = 0
        self.catch_up_requested = 0
        self.optimizations = 0
        self.bad = 0
        self.fifo_skipped = 0

    # -- outputs ---------------------------------------------------------------------------

    def send(self, peer: str, msg: object) -> None:
        """Queue ``msg`` for ``peer`` in the outbox."""
        lst = self.outbox.get(peer)
        if lst is None:
            self.outbox[peer] = [msg]
        else:
            lst.append(msg)

    def refresh(self) -> None:
        """Snapshot the eager and lazy sets as tuples (the hot loop iterates them)."""
        self.eager = tuple(self.peers.eager)
        self.lazy = tuple(self.peers.lazy)

    def is_active(self, peer: str) -> bool:
        """True when ``peer`` is a neighbour (eager or lazy)."""
        return peer in self.peers.eager or peer in self.peers.lazy

    # -- membership ------------------------------------------------------------------------

    def neighbor_up(self, peer: str, now: float) -> None:
        """A new active neighbour: push to it eagerly and offer it our digest."""
        if self.first_up < 0.0:
            self.first_up = now
            d = self.dedup.digest()
            self.known_before = {d[i] for i in range(0, len(d), 2)}
        self.peers.add(peer)
        self.refresh()
        d = self.dedup.digest()
        if len(d) > 2 * _DIGEST_MAX_ORIGINS:
            d = self._recent_digest(d)
        self.send(peer, Digest(d))
        self.s_digest += 1

    def _recent_digest(self, d: list) -> list:
        """Cap a digest to the most recent origins (the cache lists them newest first)."""
        return d[: 2 * _DIGEST_MAX_ORIGINS]

    def neighbor_down(self, peer: str) -> None:
        """A neighbour left the active view."""
        self.peers.remove(peer)
        self.refresh()
        self.lazyq.pop(peer, None)
        self.graft_batch.pop(peer, None)

    # -- inputs ----------------------------------------------------------------------------

    def on_frame(self, peer: str, msgs: list, now: float) -> list | None:
        """Handle the Plumtree and catch-up messages of a batch.

        Returns the other messages (membership) in order, or None when there were none.
        Bad input is counted in ``bad`` and otherwise ignored.
        """
        rest = None
        self.now = now
        for msg in msgs:
            t = type(msg)
            try:
                if t is Gossip:
                    self.r_gossip += 1
                    self.on_gossip(peer, msg, now)
                elif t is IHave:
                    self.r_ihave += 1
                    self.on_ihave(peer, msg.ids, now)
                elif t is Graft:
                    self.r_graft += 1
                    self.on_graft(peer, msg.ids)
                elif t is Prune:
                    self.r_prune += 1
                    if self.peers.to_lazy(peer):
                        self.refresh()
                elif t is Digest:
                    self.r_digest += 1
                    self.on_digest(peer, msg.entries, now)
                elif t is Want:
                    self.r_want += 1
                    self.on_want(peer, msg.ranges)
                else:
                    if rest is None:
                        rest = []
                    rest.append(msg)
            except Exception:  # hostile input (wrong types) must never escape
                self.bad += 1
        if self.ihave_interval <= 0.0 and self.lazyq:
            self.flush_ihaves()
        return rest

    def on_gossip(self, peer: str, msg: Any, now: float) -> None:
        """A payload: deliver and push it on if new, else prune its sender."""
        o = msg.origin
        s = msg.seq
        h = msg.hops
        if o < 0 or o > _U64 or s < 1 or s > _SEQ_MAX or h < 0 or h >= _HOPS_MAX:
            self.bad += 1
            return
        if o == self.origin or not self.dedup.check_and_insert(o, s):
            self.duplicates += 1
            if peer in self.peers.eager:
                self.peers.to_lazy(peer)
                self.refresh()
                self.send(peer, Prune())
                self.s_prune += 1
            return
        h += 1
        payload = msg.payload
        self.store.put(o, s, h, payload, now)
        if self.fifo:
            self.deliver_fifo(o, s, h, payload)
        else:
            self.deliveries.append((o, s, h, payload))
            self.delivered += 1
        if self.requested and self.requested.pop((o, s), None) is not None:
            self.recovered += 1
        if peer in self.peers.lazy:
            # the paper: whoever sends a new payload becomes (again) a tree link
            self.peers.to_eager(peer)
            self.refresh()
        m = None
        if self.missing:
            m = self.missing.pop((o, s), None)
            if m is not None:
                self.timers.cancel(m.timer)
        fwd = Gossip(o, s, h, payload)
        outbox = self.outbox
        n = 0
        for p in self.eager:
            if p != peer:
                lst = outbox.get(p)
                if lst is None:
                    outbox[p] = [fwd]
                else:
                    lst.append(fwd)
                n += 1
        self.s_gossip += n
        for p in self.lazy:
            if p != peer:
                self.announce(p, o, s, h, now)
        if m is not None:
            # after the push: the new parent must not get this payload back from us
            self.optimize(peer, m, h - 1)

    def optimize(self, sender: str, m: _Missing, hops: int) -> None:
        """Replace the eager parent ``sender`` by a lazy announcer with a shorter path."""
        best = -1
        best_hops = hops - self.threshold
        for i in range(len(m.peers)):
            p = m.peers[i]
            if m.hops[i] <= best_hops and p != sender and p in self.peers.lazy:
                best = i
                best_hops = m.hops[i]
        if best < 0 or sender not in self.peers.eager:
            return
        p = m.peers[best]
        self.peers.to_eager(p)
        self.peers.to_lazy(sender)
        self.refresh()
        self.send(p, Graft([]))
        self.s_graft += 1
        self.send(sender, Prune())
        self.s_prune += 1
        self.optimizations += 1

    def announce(self, peer: str, o: int, s: int, h: int, now: float) -> None:
        """Queue an IHave entry for a lazy peer (sent in batches)."""
        q = self.lazyq.get(peer)
        if q is None:
            q = []
            self.lazyq[peer] = q
            if self.ihave_interval > 0.0 and not self.ihave_armed:
                self.ihave_armed = True
                self.timers.schedule(now + self.ihave_interval, ("i",))
        q.append(o)
        q.append(s)
        q.append(h)
        if len(q) >= self.ihave_batch:
            del self.lazyq[peer]
            self.send(peer, IHave(q))
            self.s_ihave += 1

    def flush_ihaves(self) -> None:
        """Send every queued IHave batch (timer ``("i",)`` or immediately)."""
        self.ihave_armed = False
        if not self.lazyq:
            return
        q = self.lazyq
        self.lazyq = {}
        for peer, ids in q.items():
            if ids:
                self.send(peer, IHave(ids))
                self.s_ihave += 1

    def on_ihave(self, peer: str, ids: Any, now: float) -> None:
        """Lazy announcements: arm a missing-message timer for each unseen id."""
        if not self.is_active(peer):
            return
        n = len(ids)
        if n % 3 or n > _MAX_LIST:
            self.bad += 1
            n = min(n - n % 3, _MAX_LIST)
        for i in range(0, n, 3):
            o = ids[i]
            s = ids[i + 1]
            h = ids[i + 2]
            if not _valid_id(o, s) or h < 0 or h >= _HOPS_MAX:
                self.bad += 1
                continue
            if o == self.origin or self.dedup.contains(o, s):
                continue
            key = (o, s)
            m = self.missing.get(key)
            if m is None:
                if len(self.missing) >= _MAX_MISSING:
                    continue
                t = self.timers.schedule(now + self.graft_timeout_1, ("g", o, s))
                self.missing[key] = _Missing(t, peer, h)
            elif len(m.peers) < _MAX_ANNOUNCERS and peer not in m.peers:
                m.peers.append(peer)
                m.hops.append(h)

    def graft_timer(self, o: int, s: int, now: float) -> None:
        """A missing message did not arrive in time: graft its next announcer."""
        key = (o, s)
        m = self.missing.get(key)
        if m is None:
            return
        if self.dedup.contains(o, s):
            del self.missing[key]
            return
        while m.peers:
            p = m.peers.pop(0)
            m.hops.pop(0)
            if self.is_active(p):
                if self.peers.to_eager(p):
                    self.refresh()
                b = self.graft_batch.get(p)
                if b is None:
                    self.graft_batch[p] = [o, s]
                else:
                    b.append(o)
                    b.append(s)
                self.grafts += 1
                self.remember_request(o, s, now)
                m.timer = self.timers.schedule(now + self.graft_timeout_2, ("g", o, s))
                return
        del self.missing[key]

    def flush_grafts(self) -> None:
        """Send the Grafts collected by the timers of one tick, one message per peer."""
        if not self.graft_batch:
            return
        b = self.graft_batch
        self.graft_batch = {}
        for peer, ids in b.items():
            self.send(peer, Graft(ids))
            self.s_graft += 1

    def remember_request(self, o: int, s: int, now: float) -> None:
        """Note that we asked for (o, s), so its arrival counts as a recovery (bounded)."""
        req = self.requested
        if len(req) >= max(self.catch_up_max, _MAX_MISSING):
            req.popitem(last=False)
        req[(o, s)] = now

    def expire(self, now: float) -> None:
        """Housekeeping: drop old payloads and forgotten requests."""
        self.store.expire(now)
        req = self.requested
        limit = now - _REQUEST_TTL
        while req:
            key = next(iter(req))
            if req[key] > limit:
                break
            del req[key]

    def on_graft(self, peer: str, ids: Any) -> None:
        """A neighbour wants us as eager parent again, and resent payloads."""
        if not self.is_active(peer):
            return
        if self.peers.to_eager(peer):
            self.refresh()
        n = len(ids)
        if n % 2 or n > _MAX_LIST:
            self.bad += 1
            n = min(n - n % 2, _MAX_LIST)
        for i in range(0, n, 2):
            o = ids[i]
            s = ids[i + 1]
            if not _valid_id(o, s):
                self.bad += 1
                continue
            item = self.store.get(o, s)
            if item is not None:
                self.send(peer, Gossip(o, s, item[0], item[1]))
                self.s_gossip += 1

    # -- catch-up --------------------------------------------------------------------------

    def on_digest(self, peer: str, entries: Any, now: float) -> None:
        """A neighbour's {origin: highest seq}: ask for what we miss, as ranges."""
        if not self.is_active(peer):
            return
        n = len(entries)
        if n % 2 or n > 4 * _DIGEST_MAX_ORIGINS:
            self.bad += 1
            n = min(n - n % 2, 4 * _DIGEST_MAX_ORIGINS)
        fresh = self.first_up >= 0.0 and now - self.first_up <= self.baseline_window
        budget = self.catch_up_max
        ranges: list[int] = []
        for i in range(0, n, 2):
            o = entries[i]
            high = entries[i + 1]
            if not _valid_id(o, high):
                if high != 0:
                    self.bad += 1
                continue
            if o == self.origin:
                continue
            if fresh and o not in self.known_before and o not in self.dedup:
                # a new node starts at the present: no pull of old history
                self.dedup.advance(o, high)
                continue
            if budget <= 0:
                continue
            miss = self.dedup.missing(o, high, budget)
            if not miss:
                continue
            budget -= len(miss)
            self.catch_up_requested += len(miss)
            first = miss[0]
            last = first
            self.remember_request(o, first, now)
            for j in range(1, len(miss)):
                q = miss[j]
                self.remember_request(o, q, now)
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
        if ranges:
            self.send(peer, Want(ranges))
            self.s_want += 1

    def on_want(self, peer: str, ranges: Any) -> None:
        """Answer a catch-up request from the payload store (bounded per request)."""
        if not self.is_active(peer):
            return
        n = len(ranges)
        if n % 3 or n > _MAX_LIST:
            self.bad += 1
            n = min(n - n % 3, _MAX_LIST)
        budget = self.catch_up_max
        for i in range(0, n, 3):
            o = ranges[i]
            first = ranges[i + 1]
            last = ranges[i + 2]
            if not _valid_id(o, first) or not _valid_id(o, last) or last < first:
                self.bad += 1
                continue
            if last - first >= budget:
                last = first + budget - 1
            s = first
            while s <= last:
                item = self.store.get(o, s)
                if item is not None:
                    self.send(peer, Gossip(o, s, item[0], item[1]))
                    self.s_gossip += 1
                s += 1
            budget -= last - first + 1
            if budget <= 0:
                break

    # -- local broadcast ------------------------------------------------------------------

    def broadcast(self, payload: bytes, now: float) -> tuple[int, int]:
        """Start a broadcast of ``payload``; returns its id (origin, seq)."""
        self.seq += 1
        o = self.origin
        s = self.seq
        self.dedup.check_and_insert(o, s)
        self.store.put(o, s, 0, payload, now)
        msg = Gossip(o, s, 0, payload)
        for p in self.eager:
            self.send(p, msg)
        self.s_gossip += len(self.eager)
        for p in self.lazy:
            self.announce(p, o, s, 0, now)
        if self.ihave_interval <= 0.0 and self.lazyq:
            self.flush_ihaves()
        return (o, s)

    # -- FIFO delivery ---------------------------------------------------------------------

    def deliver_fifo(self, o: int, s: int, h: int, payload: bytes) -> None:
        """Deliver in per-origin sequence order, holding back (bounded) what comes early."""
        nxt = self.next_seq.get(o, 0)
        if nxt == 0 or s == nxt:
            self.deliveries.append((o, s, h, payload))
            self.delivered += 1
            self.next_seq[o] = s + 1
            self.release(o)
            return
        if s < nxt:  # older than what we already passed: deliver late, not lose it
            self.deliveries.append((o, s, h, payload))
            self.delivered += 1
            return
        held = self.held.get(o)
        if held is None:
            held = {}
            self.held[o] = held
            # give the gap a bounded time to fill (graft, catch-up), then skip it
            self.timers.schedule(self.now + _FIFO_HOLD, ("f", o))
        held[s] = (h, payload)
        if len(held) > _FIFO_HOLD_MAX:
            # the gap will not fill in time: skip to the oldest held message
            self.fifo_skipped += 1
            self.next_seq[o] = min(held)
            self.release(o)

    def release(self, o: int) -> None:
        """Deliver held messages of ``o`` that are now in order."""
        held = self.held.get(o)
        if not held:
            return
        nxt = self.next_seq[o]
        while nxt in held:
            h, payload = held.pop(nxt)
            self.deliveries.append((o, nxt, h, payload))
            self.delivered += 1
            nxt += 1
        self.next_seq[o] = nxt
        if not held:
            del self.held[o]

    def skip_gap(self, o: int) -> None:
        """Timer ``("f", origin)``: stop waiting for the gap that holds back ``o``."""
        held = self.held.get(o)
        if not held:
            return
        self.next_seq[o] = min(held)
        self.fifo_skipped += 1
        self.release(o)
        if o in self.held:  # another gap further on: wait for it in turn
            self.timers.schedule(self.now + _FIFO_HOLD, ("f", o))
