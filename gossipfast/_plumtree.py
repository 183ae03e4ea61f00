# cython: annotation_typing=False
"""Plumtree broadcast state machine (sans-IO).

Plumtree (Leitão, Pereira, Rodrigues, SRDS 2007; corrected Algorithm 1 of the 2019
revision): every active neighbour starts *eager* (payloads are pushed to it); a duplicate
payload moves its sender to *lazy* (it only gets batched ``IHave`` announcements); a lazy
announcement of a message that does not arrive in time makes us ``Graft`` the announcer
back into the eager set. The eager links converge to a spanning tree, the lazy links are
its backups.

This module keeps the trees, the per-message path (eager push, duplicates, prunes) and
the missing-message entries. Its parts live next to it: ``Graft``/``Prune`` batches and
their handling (:mod:`._graftprune`), the outgoing ``IHave`` queues (:mod:`._announce`),
the ``IHave`` intake and graft timers (:mod:`._intake`), the request records and
per-neighbour budgets (:mod:`._requests`), tree optimisation (:mod:`._optimize`),
catch-up (``Digest``/``Want``/``Gone``, :mod:`._catchup`), FIFO hold-back delivery
(:mod:`._fifo`) and the adaptive graft delay (:mod:`._graftdelay`).
docs/internals.md ("Plumtree choices beyond the paper") tells why each rule is there.

This is a hot module: Cython compiles it with ``_plumtree.pxd``. No ``import cython``
here, so the pure-Python build runs the same source.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ._announce import IHaveQueues
from ._cache import DedupCache, PayloadStore
from ._catchup import CatchUp
from ._fifo import FifoDelivery
from ._graftdelay import GraftDelay
from ._graftprune import GraftPrune
from ._intake import IHaveIntake
from ._optimize import TreeOptimizer
from ._outputs import Outputs
from ._peers import EagerLazy
from ._requests import Requests
from .wire import Digest, Gone, Gossip, Graft, IHave, Prune, Want

if TYPE_CHECKING:
    from ._intake import _Missing

_log = logging.getLogger("gossipfast")

#: Bounds that reject forged ids and hop counts.
_U64 = (1 << 64) - 1
_SEQ_MAX = (1 << 63) - 1
_HOPS_MAX = 1 << 16
#: Missing-message entries alive at once; further announcements wait for catch-up.
_MAX_MISSING = 1 << 16
#: Seconds a Graft/Want request is remembered to count its answer as a recovery.
_REQUEST_TTL = 30.0
#: Refused ids remembered (so that catch-up does not report them as lost).
_MAX_REFUSED = 1 << 16
#: A copy can come this long after its payload left the stores (a late answer, a queued
#: push): an origin is forgotten after store_max_age plus this unseen.
_DEDUP_SLACK = _REQUEST_TTL
#: Under pressure a neighbour's budget of new origins is 1/this of the table as a burst,
#: and as much again per idle horizon.
_ADMIT_SHARE = 8
#: Per-origin trees kept (oldest created evicted first; a new tree starts as the shared one).
_MAX_TREES = 4096
#: Public copy of the tree bound (the compiled module keeps ``_MAX_TREES`` C-level).
MAX_TREES = _MAX_TREES


def _new_dedup(config: Any) -> DedupCache:
    """The dedup of a node: an origin is forgotten only after ``store_max_age`` plus the
    request horizon without a copy of its messages; under pressure each neighbour
    brings in new origins at most at a rate that fills an eighth of the table per idle
    horizon, after a burst of an eighth (one neighbour gets at most 3/4 of it within one
    horizon)."""
    n = int(config.dedup_max_origins)
    idle = float(config.store_max_age) + _DEDUP_SLACK
    burst = max(1, n // _ADMIT_SHARE)
    rate = burst / idle if idle < float("inf") else 0.0
    return DedupCache(int(config.dedup_window), n, idle, burst, rate)


def _warn_dropped(d: DedupCache, warned: int, peer: str) -> int:
    """Log (once for each reason: bits ``warned``, returned with the new ones) that
    messages of new origins are being dropped."""
    if d.refused and not warned & 1:
        warned |= 1
        _log.warning(
            "dedup: %d origins seen within the last %.0f s fill the table "
            "(dedup_max_origins): messages of new origins are dropped "
            "(stats origins_refused); raise dedup_max_origins if the cluster has that "
            "many live origins",
            len(d),
            d.idle,
        )
    if d.throttled and not warned & 2:
        warned |= 2
        _log.warning(
            "dedup: neighbour %s brings in new origins faster than its budget: the "
            "excess is dropped (stats origins_throttled)",
            peer,
        )
    return warned


class _Tree:
    """One origin's broadcast tree.

    A new origin's tree *is* the shared tree (``lazy`` None): its prunes and grafts shape
    the shared tree, which concurrent first messages of many origins prune together.
    From the origin's second message on the tree is its own (``lazy``: the active peers
    that are lazy for it; every other active peer is eager, so a new neighbour starts
    eager). ``eager``/``lazy_t`` are tuples for the hot loop, rebuilt when the views or
    the shared tree changed (``epoch``) or the own lazy set did (``epoch = -1``).
    """

    __slots__ = (
        "count",
        "eager",
        "epoch",
        "lazy",
        "lazy_t",
        "parent",
        "phops",
        "pseq",
        "push_at",
        "push_seq",
        "up",
    )

    def __init__(self) -> None:
        self.lazy: set[str] | None = None
        self.count = 0
        self.epoch = -1
        self.eager: tuple = ()
        self.lazy_t: tuple = ()
        # who pushed us the origin's latest message first, its seq and our hop count:
        # an announcement of it arriving later over a shorter path replaces that parent
        self.parent: str | None = None
        self.pseq = 0
        self.phops = 0
        # the highest seq a push (not an answer to a request of ours) brought: once it
        # passed a missing message the tree works again, and that message is fetched
        self.push_seq = 0
        self.push_at = 0.0  # when the latest push (of any new message) came
        # in an own tree, the eager peer we take as our parent: the last one that pushed
        # us a new payload, or the one we moved the tree to (swap_parent)
        self.up: str | None = None


class Plumtree:
    """Broadcast state of one node.

    It writes to ``out``, the engine's :class:`~gossipfast._outputs.Outputs` shared by
    every layer: wire messages to ``out.outbox``, deliveries to ``out.deliveries``. Its
    timers on the shared ``timers`` wheel are ``(handler, *args)`` tuples that the engine
    calls back as ``handler(item, now)``; the parts arm their own.

    Its parts, each held once and called through typed methods: ``requests``
    (:class:`~gossipfast._requests.Requests`), ``control``
    (:class:`~gossipfast._graftprune.GraftPrune`), ``ihaves``
    (:class:`~gossipfast._announce.IHaveQueues`), ``intake``
    (:class:`~gossipfast._intake.IHaveIntake`), ``optimizer``
    (:class:`~gossipfast._optimize.TreeOptimizer`), ``catchup``
    (:class:`~gossipfast._catchup.CatchUp`), ``fifo_order``
    (:class:`~gossipfast._fifo.FifoDelivery`, used when ``fifo``) and ``graft_delay``
    (:class:`~gossipfast._graftdelay.GraftDelay`). The counters (the stats keys) are
    Plumtree's, the parts count in them.
    """

    def __init__(self, origin: int, config: Any, timers: Any, out: Outputs) -> None:
        """Create an empty broadcast state for the node whose origin is ``origin``."""
        self.origin = origin
        self.timers = timers
        self.out = out
        self.dedup = _new_dedup(config)
        self.store = PayloadStore(
            config.store_max_messages, config.store_max_bytes, config.store_max_age
        )
        # the shared tree (a new origin's template) and the per-origin trees
        self.peers = EagerLazy()
        self.eager: tuple = ()
        self.lazy: tuple = ()
        self.active: tuple = ()
        self.epoch = 0
        self.trees: dict[int, _Tree] = {}
        # the anchored tree (``_anchor.py``) keeps the shared tree: first messages must not bend it
        self.anchored = False
        self.missing: dict[tuple[int, int], _Missing] = {}  # made by ``intake``
        self.seq = 0
        self.now = 0.0  # time of the input being handled (for timers armed deep inside)
        self.fifo = bool(config.fifo)
        # (origin, count) of ids learnt lost for good since the engine last looked
        self.gaps: list[tuple[int, int]] = []
        # validator(origin, seq, hops, payload) -> bool: False rejects a new message
        self.validator: Any = None
        # ids refused lately: a Want of them gets no Gone (they are not lost, refused)
        self.refused: OrderedDict[tuple[int, int], bool] = OrderedDict()
        self.dedup_warned = 0  # bits: refusals (1) and budget drops (2) logged
        self.graft_delay = GraftDelay(float(config.graft_timeout_1))
        self.requests = Requests(self, config, _REQUEST_TTL, _MAX_MISSING)
        self.control = GraftPrune(self, _MAX_TREES)
        self.ihaves = IHaveQueues(self, config, timers)
        self.intake = IHaveIntake(self, config, timers, _MAX_MISSING)
        self.optimizer = TreeOptimizer(self, config)
        self.catchup = CatchUp(self, config)
        self.fifo_order = FifoDelivery(
            timers, self.dedup, 2 * int(config.dedup_max_origins), self.timer_fifo_gap
        )
        # counters: messages sent (s_) and received (r_) by kind, then events
        self.s_gossip = self.s_ihave = self.s_graft = self.s_prune = 0
        self.s_digest = self.s_want = self.s_gone = 0
        self.r_gossip = self.r_ihave = self.r_graft = self.r_prune = 0
        self.r_digest = self.r_want = self.r_gone = 0
        self.lost = self.delivered = self.duplicates = self.grafts = self.recovered = 0
        self.catch_up_requested = self.optimizations = self.bad = self.rejected = 0
        self.ihave_dropped = self.grafts_withheld = self.answers_refused = 0

    # -- outputs ---------------------------------------------------------------------------

    def send(self, peer: str, msg: object) -> None:
        """Queue ``msg`` for ``peer`` (counted by the caller, not by ``out``)."""
        outbox = self.out.outbox
        lst = outbox.get(peer)
        if lst is None:
            outbox[peer] = [msg]
        else:
            lst.append(msg)

    def refresh(self) -> None:
        """Snapshot the shared eager and lazy sets as tuples (trees reshape lazily)."""
        self.eager = tuple(self.peers.eager)
        self.lazy = tuple(self.peers.lazy)
        self.epoch += 1

    def set_shared_tree(self, links: Any, anchored: bool) -> None:
        """Make the shared tree exactly ``links`` (eager); every other neighbour is lazy.

        Called by the anchored tree (``_anchor.py``). While ``anchored`` (the node hangs
        from the anchor) the shared tree is the anchor's: first messages neither optimise
        it nor graft links into it (a missing one is fetched with a ``Want``), and a
        duplicate from one of its links is not pruned, so it stays a fewest-hops tree
        between two beacons. A detached node grafts as the paper does.
        """
        self.anchored = anchored
        changed = False
        for p in self.active:
            if p in links:
                if self.peers.to_eager(p):
                    changed = True
            elif self.peers.to_lazy(p):
                changed = True
        if changed:
            self.refresh()

    def owns(self, o: int) -> bool:
        """True when origin ``o`` has a tree of its own (not the shared one)."""
        t = self.trees.get(o)
        return t is not None and t.lazy is not None

    def is_active(self, peer: str) -> bool:
        """True when ``peer`` is a neighbour (eager or lazy)."""
        return peer in self.peers.eager or peer in self.peers.lazy

    # -- per-origin trees ------------------------------------------------------------------

    def tree(self, o: int) -> _Tree:
        """The tree of origin ``o`` (created from the shared tree), shaped for use."""
        t = self.trees.get(o)
        if t is None:
            if len(self.trees) >= _MAX_TREES:
                del self.trees[next(iter(self.trees))]
            t = _Tree()
            self.trees[o] = t
        if t.epoch != self.epoch:
            lazy = t.lazy
            if lazy is None:
                t.eager = self.eager
                t.lazy_t = self.lazy
            else:
                t.eager = tuple([p for p in self.active if p not in lazy])
                t.lazy_t = tuple([p for p in self.active if p in lazy])
            t.epoch = self.epoch
        return t

    def own(self, t: _Tree) -> None:
        """Give a tree its own lazy set, starting as the shared tree is now."""
        t.lazy = set(self.lazy)
        t.epoch = -1

    def to_lazy(self, o: int, peer: str) -> bool:
        """Make ``peer`` lazy in ``o``'s tree (and in the shared one); True if it changed."""
        if not self.is_active(peer):
            return False
        t = self.tree(o)
        if t.lazy is None:
            if self.peers.to_lazy(peer):
                self.refresh()
                return True
            return False
        if peer in t.lazy:
            return False
        t.lazy.add(peer)
        t.epoch = -1
        return True

    def to_eager(self, o: int, peer: str) -> bool:
        """Make ``peer`` eager in ``o``'s tree (and in the shared one); True if it changed."""
        if not self.is_active(peer):
            return False
        t = self.tree(o)
        if t.lazy is None:
            if self.peers.to_eager(peer):
                self.refresh()
                return True
            return False
        if peer not in t.lazy:
            return False
        t.lazy.discard(peer)
        t.epoch = -1
        return True

    def tree_of(self, o: int) -> tuple[tuple, tuple]:
        """(eager, lazy) peers of origin ``o``'s tree, as it would be used now."""
        t = self.tree(o)
        return t.eager, t.lazy_t

    # -- membership ------------------------------------------------------------------------

    def neighbor_up(self, peer: str, now: float) -> None:
        """A new active neighbour: push to it eagerly and offer it our digest."""
        self.catchup.joined(now)
        self.peers.add(peer)
        self.refresh()
        self.active = self.eager + self.lazy
        self.catchup.offer_digest(peer)

    def neighbor_down(self, peer: str) -> None:
        """A neighbour left the active view."""
        self.peers.remove(peer)
        self.refresh()
        self.active = self.eager + self.lazy
        for t in self.trees.values():
            if t.lazy is not None:
                t.lazy.discard(peer)
            if t.parent == peer:
                # what was on its way over this link is lost with it: not "flowing" any
                # more, so the next digest asks for it (see CatchUp.flowing)
                t.push_at = 0.0
        self.ihaves.queues.pop(peer, None)
        self.requests.budgets.pop(peer, None)
        self.control.forget(peer)

    # -- inputs ----------------------------------------------------------------------------

    def on_frame(self, peer: str, msgs: list, now: float, other: Any) -> None:
        """Handle a batch in order: Plumtree and catch-up messages here, every other
        message through ``other(peer, msg, now)`` (membership: a NeighborReply must be
        handled before the Digest that follows it in the same frame).

        Bad input is counted in ``bad`` and otherwise ignored.
        """
        self.now = now
        self.dedup.now = now
        self.dedup.source = peer  # new origins come out of this neighbour's budget
        for msg in msgs:
            t = type(msg)
            try:
                if t is Gossip:
                    self.r_gossip += 1
                    self.on_gossip(peer, msg, now)
                elif t is IHave:
                    self.r_ihave += 1
                    self.intake.on_ihave(peer, msg.runs, now)
                elif t is Graft:
                    self.r_graft += 1
                    self.control.on_graft(peer, msg.ids)
                elif t is Prune:
                    self.r_prune += 1
                    self.control.on_prune(peer, msg.origins)
                elif t is Digest:
                    self.r_digest += 1
                    self.catchup.on_digest(peer, msg.entries, now)
                elif t is Want:
                    self.r_want += 1
                    self.catchup.on_want(peer, msg.ranges)
                elif t is Gone:
                    self.r_gone += 1
                    self.catchup.on_gone(peer, msg.ranges)
                else:
                    other(peer, msg, now)
            except Exception:  # hostile input (wrong types) must never escape
                self.bad += 1
        q = self.ihaves
        if q.interval <= 0.0 and q.queues:
            q.flush()
        c = self.control
        if c.prunes:
            c.flush_prunes()
        if c.grafts or c.wants:
            c.flush_grafts()

    def on_gossip(self, peer: str, msg: Any, now: float) -> None:
        """A payload: deliver and push it on if new, else prune its sender."""
        o = msg.origin
        s = msg.seq
        h = msg.hops
        if o < 0 or o > _U64 or s < 1 or s > _SEQ_MAX or h < 0 or h >= _HOPS_MAX:
            self.bad += 1
            return
        if o == self.origin or not self.dedup.check_and_insert(o, s):
            self.on_duplicate(peer, o, s, now)
            return
        h += 1
        payload = msg.payload
        if self.validator is not None and not self.validator(o, s, h, payload):
            self.reject(o, s)
            return
        self.store.put(o, s, h, payload, now)
        if self.fifo:
            self.delivered += self.fifo_order.deliver(self.out.deliveries, o, s, h, payload, now)
        else:
            self.out.deliveries.append((o, s, h, payload))
            self.delivered += 1
        answer = False
        rq = self.requests
        if rq.requested and rq.requested.pop((o, s), None) is not None:
            self.recovered += 1
            answer = rq.take_answer(o, s, peer)
        # the tree's bookkeeping: who pushed its latest message, and over how many hops
        t = self.trees.get(o)
        if t is None or t.epoch != self.epoch:
            t = self.tree(o)
        t.count += 1
        t.parent = peer
        t.pseq = s
        t.phops = h
        if not answer:
            t.push_at = now
            if s > t.push_seq:
                t.push_seq = s
        if t.lazy is None and t.count > 1:
            self.own(t)  # a repeat sender: its own tree from now on
            t = self.tree(o)
        m = None
        if self.missing:
            m = self.missing.pop((o, s), None)
            if m is not None:
                m.owner.missing -= 1
                if type(m.timer) is int:
                    self.timers.cancel(m.timer)  # a batch's timer fires for the others
        if peer in t.lazy_t:
            t = self.relink(peer, o, t, m, answer)
        up = None
        if t.lazy is not None:
            if not answer and peer in t.eager:
                t.up = peer
            up = t.up
        gd = self.graft_delay
        if m is None:
            # on time: shrink the delay (not while big announcements are held, as this
            # push may be one of theirs)
            if gd.value > gd.floor and not self.intake.held:
                gd.on_time(now)
        elif m.grafted is not None:
            if peer not in m.grafted:
                gd.early_graft((o, s), now)  # the push beat the answer to our graft
        elif not answer:
            gd.lagged(m.since, now)  # the push came after its announcement: late, not lost
        self.forward(peer, o, s, h, payload, t, up, m, now)
        if m is not None:
            # after the push: the new parent must not get this payload back from us
            self.optimizer.optimize(peer, o, m, h - 1)
            if self.anchored and m.grafted is None:
                self.optimizer.optimize_lag(peer, o, m, h - 1, now)

    def reject(self, o: int, s: int) -> None:
        """A message the validator refused: it stays seen (not asked for or checked
        again) but is not stored, delivered, pushed or announced."""
        self.rejected += 1
        refused = self.refused
        if len(refused) >= _MAX_REFUSED:
            refused.popitem(last=False)
        refused[(o, s)] = True
        if self.requests.requested:
            self.requests.requested.pop((o, s), None)
        if self.missing:
            m = self.missing.pop((o, s), None)
            if m is not None:
                m.owner.missing -= 1
                if type(m.timer) is int:
                    self.timers.cancel(m.timer)

    def on_duplicate(self, peer: str, o: int, s: int, now: float) -> None:
        """A copy of (o, s) we have (or refused): prune its sender unless the copy is an
        answer of ours, a late push we expect, or comes over a link we must keep."""
        if self.dedup.dropped:
            # a new origin refused (table full, or its sender's budget spent): not a
            # duplicate, no prune; counted by the dedup
            self.dedup.dropped = False
            if self.dedup_warned != 3:
                self.dedup_warned = _warn_dropped(self.dedup, self.dedup_warned, peer)
            return
        self.duplicates += 1
        rq = self.requests
        if rq.answers and rq.take_answer(o, s, peer):
            return  # the answer to our Graft/Want, not a push: no reason to prune
        how = 0
        if self.graft_delay.recent:
            how = self.graft_delay.early_graft((o, s), now)
        if not self.is_active(peer):
            return
        if how == 2 or (self.anchored and peer in self.eager and not self.owns(o)):
            # the late push of one we fetched, or a first message's copy over a link of
            # the loop-free anchored tree: pruning would cut the tree
            return
        t = self.trees.get(o)
        if t is not None and t.lazy is not None and t.up == peer and peer not in t.lazy:
            # our parent in the own tree: it delivered our latest new message, so it is
            # the link that works (pruning it can leave the tree with no parent)
            return
        # always answer a push with Prune, even from a lazy peer: its tree may still have
        # us eager (trees are born apart)
        self.to_lazy(o, peer)
        self.control.queue_prune(peer, o)

    def relink(self, peer: str, o: int, t: _Tree, m: _Missing | None, answer: bool) -> _Tree:
        """A new payload came over a lazy link of ``o``'s tree: make that link a tree
        link where the rules say so; returns the tree as it is now."""
        if not answer and t.lazy is None and not self.anchored:
            # the paper: whoever pushes a new payload becomes a tree link again. Only on
            # the shared tree without the anchor (in an own tree the sender has us lazy
            # already: a link eager at one end leaves us with no parent)
            self.to_eager(o, peer)
            return self.tree(o)
        if answer and t.lazy is not None and m is not None and m.grafted is not None and not m.keep:
            # fetched, and the origin's own tree starts now: the link of the first delivery
            # is a tree link, at both ends
            self.to_eager(o, peer)
            self.control.queue_graft(peer, o, 0)
            t = self.tree(o)
            t.up = peer
        return t

    def forward(
        self,
        peer: str,
        o: int,
        s: int,
        h: int,
        payload: bytes,
        t: _Tree,
        up: Any,
        m: Any,
        now: float,
    ) -> None:
        """Push a new payload that came from ``peer`` to ``o``'s eager peers and announce
        it to the lazy ones, skipping those that have it."""
        fwd = Gossip(o, s, h, payload)
        outbox = self.out.outbox
        n = 0
        skip = None  # peers we grafted for it: they answer with the payload
        told = None  # peers that announced it: they have it
        if m is not None:
            skip = m.grafted
            told = m.peers
        for p in t.eager:
            # not back to the sender or our parent: a copy would make it prune the link
            if p != peer and p != up:
                if skip is not None and p in skip:
                    continue
                if told and p in told:
                    continue  # (the prune it answers with would undo our repair)
                lst = outbox.get(p)
                if lst is None:
                    outbox[p] = [fwd]
                else:
                    lst.append(fwd)
                n += 1
        self.s_gossip += n
        q = self.ihaves
        for p in t.lazy_t:
            if p != peer and not (told and p in told):
                q.announce(p, o, s, h, now)

    def expire(self, now: float) -> None:
        """Housekeeping: drop old payloads and forgotten requests."""
        self.store.expire(now)
        self.dedup.compact()  # rings of origins that miss nothing any more
        self.requests.expire(now)

    # -- local broadcast ------------------------------------------------------------------

    def broadcast(self, payload: bytes, now: float) -> tuple[int, int]:
        """Start a broadcast of ``payload``; returns its id (origin, seq)."""
        self.seq += 1
        o = self.origin
        s = self.seq
        self.dedup.now = now
        self.dedup.source = None  # our own origin: no budget
        self.dedup.check_and_insert(o, s)
        self.dedup.dropped = False
        self.store.put(o, s, 0, payload, now)
        msg = Gossip(o, s, 0, payload)
        t = self.tree(o)
        t.count += 1
        if t.lazy is None and t.count > 1:
            self.own(t)
            t = self.tree(o)
        for p in t.eager:
            self.send(p, msg)
        self.s_gossip += len(t.eager)
        q = self.ihaves
        for p in t.lazy_t:
            q.announce(p, o, s, 0, now)
        if q.interval <= 0.0 and q.queues:
            q.flush()
        return (o, s)

    # -- FIFO delivery ---------------------------------------------------------------------

    def pass_lost(self, o: int) -> None:
        """FIFO delivery: the next seqs of ``o`` are lost for good; stop waiting for them."""
        self.delivered += self.fifo_order.pass_lost(self.out.deliveries, o)

    # -- timers (``(handler, *args)`` on the wheel; the engine calls handler(item, now)) ----

    def timer_fifo_gap(self, item: tuple, now: float) -> None:
        """Timer ``(handler, origin)``: stop waiting for the gap that holds back origin."""
        self.now = now
        self.delivered += self.fifo_order.skip_gap(self.out.deliveries, item[1], now)
