# cython: annotation_typing=False
"""Plumtree broadcast state machine (sans-IO).

Plumtree (Leitão, Pereira, Rodrigues, SRDS 2007; corrected Algorithm 1 of the 2019
revision): every active neighbour starts *eager* (payloads are pushed to it); a duplicate
payload moves its sender to *lazy* (it only gets batched ``IHave`` announcements); a lazy
announcement of a message that does not arrive in time makes us ``Graft`` the announcer
back into the eager set. The eager links converge to a spanning tree, the lazy links are
its backups.

This module keeps the trees, eager and lazy push, ``IHave``, ``Graft`` and ``Prune``. Its
parts live next to it: catch-up (``Digest``/``Want``/``Gone``, :mod:`._catchup`), FIFO
hold-back delivery (:mod:`._fifo`) and the adaptive graft delay (:mod:`._graftdelay`).
docs/internals.md ("Plumtree choices beyond the paper") tells why each rule is there.

This is a hot module: Cython compiles it with ``_plumtree.pxd``. No ``import cython``
here, so the pure-Python build runs the same source.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from typing import Any

from ._cache import DedupCache, PayloadStore
from ._catchup import CatchUp
from ._fifo import FifoDelivery
from ._graftdelay import GraftDelay
from ._outputs import Outputs
from ._peers import EagerLazy
from .wire import Digest, Gone, Gossip, Graft, IHave, Prune, Want

_log = logging.getLogger("gossipfast")

#: Bounds that reject forged ids and hop counts.
_U64 = (1 << 64) - 1
_SEQ_MAX = (1 << 63) - 1
_HOPS_MAX = 1 << 16
#: A missing message remembers at most this many announcers (first come first asked).
_MAX_ANNOUNCERS = 8
#: Missing-message timers alive at once; further announcements wait for catch-up.
_MAX_MISSING = 1 << 16
#: An announcement of at least ``_ANNOUNCE_HOLD_MIN`` ids is looked at this share of the
#: graft delay after it came (most of its ids are pushed meanwhile); smaller ones at once.
_ANNOUNCE_HOLD = 0.5
_ANNOUNCE_HOLD_MIN = 32
#: Announced ids held at once; beyond, the oldest announcements are looked at early.
_MAX_ANN_HELD = 1 << 16
#: List entries of a Graft or IHave we look at; the rest is ignored.
_MAX_LIST = 1 << 17
#: Refused ids remembered (so that catch-up does not report them as lost).
_MAX_REFUSED = 1 << 16
#: Seconds a Graft/Want request is remembered to count its answer as a recovery.
_REQUEST_TTL = 30.0
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
#: With the anchored tree, an origin's own tree is young (waits the longest graft delay)
#: for its first this many messages: it starts as the anchor's tree and still lags.
_YOUNG = 10
#: optimize_lag moves the parent to a faster announcer only over a path at most this many
#: hops longer (unbounded, young trees grew far deeper than their settled depth).
_LAG_HOPS = 2


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


class _Budget:
    """What one neighbour may make us hold and do (hostile peers are contained per peer).

    - ``missing``: missing-message entries its announcements made that are still alive
      (at most ``peer_missing_max``; beyond, its announcements are dropped and counted);
    - ``grants``: a token bucket of ids we may request from it (Graft/Want of a missing
      message), ``peer_graft_rate`` a second, burst one second;
    - ``asked``: records of our Grafts/Wants to it still waiting for an answer (at most
      ``peer_missing_max``: a peer that never answers is soon asked nothing more);
    - ``resends``: a token bucket of payloads we resend to it in answer to its Graft/Want,
      ``peer_answer_rate`` a second, burst ``max(rate, catch_up_max)`` (one catch-up).

    Tokens are floats refilled when spent (per request, or per Graft/Want answered).
    """

    __slots__ = ("asked", "grant_at", "grants", "missing", "resend_at", "resends")

    def __init__(self, grants: float, resends: float, now: float) -> None:
        self.missing = 0
        self.asked = 0
        self.grants = grants
        self.grant_at = now
        self.resends = resends
        self.resend_at = now


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


class _Lazy:
    """Announcements queued for one lazy peer: runs ``[origin, first, last, hops, ...]``.

    A relay delivers each origin's messages mostly in order, so most announcements
    extend the run of their origin: one run on the wire for a stream of ids.
    """

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


class Plumtree:
    """Broadcast state of one node.

    It writes to ``out``, the engine's :class:`~gossipfast._outputs.Outputs` shared by
    every layer: wire messages to ``out.outbox``, deliveries to ``out.deliveries``. Its
    timers on the shared ``timers`` wheel are ``(handler, *args)`` tuples that the engine
    calls back as ``handler(item, now)``: :meth:`timer_grafts` (the missing-message timer
    of one announcement's new ids), :meth:`timer_graft` (that of one id),
    :meth:`timer_ihaves`, :meth:`timer_held` (announcements held back) and
    :meth:`timer_fifo_gap`; ``catchup`` arms its own anti-entropy timer.

    Its parts: ``catchup`` (:class:`~gossipfast._catchup.CatchUp`), ``fifo_order``
    (:class:`~gossipfast._fifo.FifoDelivery`, used when ``fifo``) and ``graft_delay``
    (:class:`~gossipfast._graftdelay.GraftDelay`).
    """

    def __init__(self, origin: int, config: Any, timers: Any, out: Outputs) -> None:
        """Create an empty broadcast state for the node whose origin is ``origin``."""
        self.origin = origin
        self.timers = timers
        # timer handlers bound once: a bound method per timer would be one more object
        # for the cyclic GC to count and traverse
        self.t_grafts = self.timer_grafts
        self.t_graft = self.timer_graft
        self.t_ihaves = self.timer_ihaves
        self.t_held = self.timer_held
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
        self.prune_batch: dict[str, list[int]] = {}
        self.seq = 0
        self.now = 0.0  # time of the input being handled (for timers armed deep inside)
        self.ihave_interval = float(config.ihave_interval)
        self.ihave_batch = int(config.ihave_batch_max)
        self.graft_delay = GraftDelay(float(config.graft_timeout_1))
        self.graft_timeout_2 = float(config.graft_timeout_2)
        self.threshold = int(config.optimization_threshold)
        self.catch_up_max = int(config.catch_up_max)
        self.fifo = bool(config.fifo)
        self.lazyq: dict[str, _Lazy] = {}
        self.ihave_armed = False
        self.missing: dict[tuple[int, int], _Missing] = {}
        # per-neighbour shares and budgets: a hostile peer is contained by its own
        self.budgets: dict[str, _Budget] = {}
        self.peer_missing_max = int(config.peer_missing_max)
        self.graft_rate = float(config.peer_graft_rate)
        self.answer_rate = float(config.peer_answer_rate)
        self.answer_burst = max(self.answer_rate, float(config.catch_up_max))
        # IHaves waiting to be looked at: (due, arrival, peer, runs, ids), in arrival order
        self.ann_held: deque[tuple[float, float, str, Any, int]] = deque()
        self.ann_ids = 0
        self.ann_armed = False
        self.requested: OrderedDict[tuple[int, int], float] = OrderedDict()
        # (origin, seq, peer) we asked: its copy is an answer, not a push. Value: when we
        # asked, or (peer's _Budget, when) while counted in the peer's ``asked``
        self.answers: OrderedDict[tuple[int, int, str], Any] = OrderedDict()
        self.graft_batch: dict[str, list[int]] = {}
        # fetches of first messages on the anchored tree: a Want moves no tree link
        self.want_batch: dict[str, list[int]] = {}
        self.catchup = CatchUp(self, config)
        self.fifo_order = FifoDelivery(
            timers, self.dedup, 2 * int(config.dedup_max_origins), self.timer_fifo_gap
        )
        # (origin, count) of ids learnt lost for good since the engine last looked
        self.gaps: list[tuple[int, int]] = []
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
        self.s_gone = 0
        self.r_gone = 0
        self.lost = 0
        self.delivered = 0
        self.duplicates = 0
        self.grafts = 0
        self.recovered = 0
        self.catch_up_requested = 0
        self.optimizations = 0
        self.bad = 0
        self.ihave_dropped = 0
        self.grafts_withheld = 0
        self.answers_refused = 0
        # validator(origin, seq, hops, payload) -> bool: False rejects a new message
        self.validator: Any = None
        self.rejected = 0
        # ids refused lately: a Want of them gets no Gone (they are not lost, refused)
        self.refused: OrderedDict[tuple[int, int], bool] = OrderedDict()
        self.dedup_warned = 0  # bits: refusals (1) and budget drops (2) logged

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

    def budget(self, peer: str) -> _Budget:
        """``peer``'s shares and budgets (made full on first use; callers check that the
        peer is active, so there is one per neighbour at most)."""
        b = self.budgets.get(peer)
        if b is None:
            b = _Budget(self.graft_rate, self.answer_burst, self.now)
            self.budgets[peer] = b
        return b

    def grant(self, peer: str, now: float) -> bool:
        """Spend one of ``peer``'s request tokens (a Graft or Want of a missing message
        to it); False when its budget is spent (counted: the next announcer is asked)."""
        b = self.budget(peer)
        t = b.grants + (now - b.grant_at) * self.graft_rate
        b.grant_at = now
        if t > self.graft_rate:
            t = self.graft_rate
        if t < 1.0 or b.asked >= self.peer_missing_max:
            b.grants = t
            self.grafts_withheld += 1
            return False
        b.grants = t - 1.0
        return True

    def take_answer(self, o: int, s: int, peer: str) -> bool:
        """A copy of (o, s) from ``peer``: True if it answers a request of ours (whose
        record is then dropped, and the peer's count of unanswered requests with it)."""
        a = self.answers.pop((o, s, peer), None)
        if a is None:
            return False
        if type(a) is tuple:
            a[0].asked -= 1
        return True

    def forget_answer(self, a: Any) -> None:
        """A request record left ``answers`` unanswered: its peer may be asked again."""
        if type(a) is tuple:
            a[0].asked -= 1

    def answer_tokens(self, peer: str) -> _Budget:
        """``peer``'s budget with its answer tokens refilled up to now (once per Graft or
        Want it sent; each payload asked for then spends one)."""
        b = self.budget(peer)
        now = self.now
        t = b.resends + (now - b.resend_at) * self.answer_rate
        b.resend_at = now
        b.resends = t if t < self.answer_burst else self.answer_burst
        return b

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

    def queue_prune(self, peer: str, o: int) -> None:
        """Tell ``peer`` to stop pushing ``o``'s messages to us (batched per input)."""
        b = self.prune_batch.get(peer)
        if b is None:
            self.prune_batch[peer] = [o]
        elif o not in b:
            b.append(o)

    def queue_graft(self, peer: str, o: int, s: int) -> None:
        """Ask ``peer`` for (o, s) and to push ``o`` to us (s = 0: the link only)."""
        b = self.graft_batch.get(peer)
        if b is None:
            self.graft_batch[peer] = [o, s]
        else:
            b.append(o)
            b.append(s)

    def queue_want(self, peer: str, o: int, s: int) -> None:
        """Ask ``peer`` for (o, s) from its store, leaving every tree as it is."""
        b = self.want_batch.get(peer)
        if b is None:
            self.want_batch[peer] = [o, s, s]
        else:
            b.append(o)
            b.append(s)
            b.append(s)

    def send_batches(self, batch: dict[str, list[int]], kind: Any) -> int:
        """Send one ``kind(ids)`` message per peer of ``batch``; returns how many."""
        for peer, ids in batch.items():
            self.send(peer, kind(ids))
        return len(batch)

    def flush_prunes(self) -> None:
        """Send the Prunes collected while handling one input, one message per peer."""
        if self.prune_batch:
            b = self.prune_batch
            self.prune_batch = {}
            self.s_prune += self.send_batches(b, Prune)

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
        self.lazyq.pop(peer, None)
        self.budgets.pop(peer, None)
        self.graft_batch.pop(peer, None)
        self.want_batch.pop(peer, None)
        self.prune_batch.pop(peer, None)

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
                    self.on_ihave(peer, msg.runs, now)
                elif t is Graft:
                    self.r_graft += 1
                    self.on_graft(peer, msg.ids)
                elif t is Prune:
                    self.r_prune += 1
                    self.on_prune(peer, msg.origins)
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
        if self.ihave_interval <= 0.0 and self.lazyq:
            self.flush_ihaves()
        if self.prune_batch:
            self.flush_prunes()
        if self.graft_batch or self.want_batch:
            self.flush_grafts()

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
        if self.requested and self.requested.pop((o, s), None) is not None:
            self.recovered += 1
            answer = self.take_answer(o, s, peer)
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
            if gd.value > gd.floor and not self.ann_held:
                gd.on_time(now)
        elif m.grafted is not None:
            if peer not in m.grafted:
                gd.early_graft((o, s), now)  # the push beat the answer to our graft
        elif not answer:
            gd.lagged(m.since, now)  # the push came after its announcement: late, not lost
        self.forward(peer, o, s, h, payload, t, up, m, now)
        if m is not None:
            # after the push: the new parent must not get this payload back from us
            self.optimize(peer, o, m, h - 1)
            if self.anchored and m.grafted is None:
                self.optimize_lag(peer, o, m, h - 1, now)

    def reject(self, o: int, s: int) -> None:
        """A message the validator refused: it stays seen (not asked for or checked
        again) but is not stored, delivered, pushed or announced."""
        self.rejected += 1
        refused = self.refused
        if len(refused) >= _MAX_REFUSED:
            refused.popitem(last=False)
        refused[(o, s)] = True
        if self.requested:
            self.requested.pop((o, s), None)
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
                self.warn_dropped(peer)
            return
        self.duplicates += 1
        if self.answers and self.take_answer(o, s, peer):
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
        self.queue_prune(peer, o)

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
            self.queue_graft(peer, o, 0)
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
        for p in t.lazy_t:
            if p != peer and not (told and p in told):
                self.announce(p, o, s, h, now)

    def warn_dropped(self, peer: str) -> None:
        """Log (once for each reason) that messages of new origins are being dropped."""
        d = self.dedup
        if d.refused and not self.dedup_warned & 1:
            self.dedup_warned |= 1
            _log.warning(
                "dedup: %d origins seen within the last %.0f s fill the table "
                "(dedup_max_origins): messages of new origins are dropped "
                "(stats origins_refused); raise dedup_max_origins if the cluster has that "
                "many live origins",
                len(d),
                d.idle,
            )
        if d.throttled and not self.dedup_warned & 2:
            self.dedup_warned |= 2
            _log.warning(
                "dedup: neighbour %s brings in new origins faster than its budget: the "
                "excess is dropped (stats origins_throttled)",
                peer,
            )

    def optimize(self, sender: str, o: int, m: _Missing, hops: int) -> None:
        """Replace the eager parent ``sender`` by a lazy announcer with a shorter path."""
        t = self.tree(o)
        if sender in t.lazy_t or not self.is_active(sender):
            return
        if self.anchored and t.lazy is None:
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
        if self.to_eager(o, new):
            self.queue_graft(new, o, 0)
        t = self.trees.get(o)
        if t is not None and t.lazy is not None:
            t.up = new
        if old is not None and old != new and self.to_lazy(o, old):
            self.queue_prune(old, o)
        self.optimizations += 1

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
        t = self.trees.get(o)
        if t is None or t.lazy is None or now - m.since < 0.5 * self.graft_delay.value:
            return
        p = m.peers[0] if m.peers else None
        if p is None or p == sender or (m.hops & 0xFFFF) > hops + _LAG_HOPS:
            return
        t = self.tree(o)
        if p not in t.lazy_t or sender not in t.eager:
            return  # replaced already (optimize), or no longer a neighbour
        self.swap_parent(o, sender, p)

    def optimize_late(self, announcer: str, o: int, s: int, h: int) -> None:
        """An announcement of (o, s), ``h`` hops from the origin, came after the payload:
        if it is ``o``'s latest message and the path is at least ``threshold`` hops
        shorter than our parent's, make the announcer the parent for ``o`` (the paper
        optimises only with announcements that came first; with many one-shot origins on
        one tree most shorter paths are announced late)."""
        t = self.trees.get(o)
        if t is None or t.pseq != s or h + 1 + self.threshold > t.phops:
            return
        if self.anchored and t.lazy is None:
            return
        parent = t.parent
        if parent is None or parent == announcer:
            return
        t = self.tree(o)  # shaped for use: current eager/lazy tuples
        if announcer not in t.lazy_t or parent not in t.eager:
            return  # not a lazy link of ours, or the parent was replaced or is gone
        t.parent = announcer
        t.phops = h + 1
        self.swap_parent(o, parent, announcer)

    def announce(self, peer: str, o: int, s: int, h: int, now: float) -> None:
        """Queue an IHave entry for a lazy peer (sent in batches): the run of ``o``
        grows when ``s`` follows it at the same hop count."""
        a = self.lazyq.get(peer)
        if a is None:
            a = _Lazy()
            self.lazyq[peer] = a
            if self.ihave_interval > 0.0 and not self.ihave_armed:
                self.ihave_armed = True
                self.timers.schedule(now + self.ihave_interval, (self.t_ihaves,))
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
        if a.ids >= self.ihave_batch:
            del self.lazyq[peer]
            self.send(peer, IHave(runs))
            self.s_ihave += 1

    def flush_ihaves(self) -> None:
        """Send every queued IHave batch (at its timer or immediately)."""
        self.ihave_armed = False
        if not self.lazyq:
            return
        q = self.lazyq
        self.lazyq = {}
        for peer, a in q.items():
            if a.runs:
                self.send(peer, IHave(a.runs))
                self.s_ihave += 1

    def on_ihave(self, peer: str, runs: Any, now: float) -> None:
        """Lazy announcements: a missing-message timer (due at arrival + the graft delay)
        for each unseen id; a big announcement is held for half the delay first."""
        if not self.is_active(peer):
            return
        n = _run_ids(runs)
        if self.budget(peer).missing >= self.peer_missing_max:
            # its whole share of missing-message entries is in use: not looked at (as
            # many ids as one IHave of ours names at most are counted)
            self.ihave_dropped += n if n < self.ihave_batch else self.ihave_batch
            return
        if n < _ANNOUNCE_HOLD_MIN:
            self.take_ihave(peer, runs, now)
            return
        self.ann_held.append((now + self.graft_delay.value * _ANNOUNCE_HOLD, now, peer, runs, n))
        self.ann_ids += n
        while self.ann_ids > _MAX_ANN_HELD:
            self.take_oldest_held()
        self.arm_held()

    def release_held(self, now: float) -> None:
        """The hold of the oldest announcements is over: look at them."""
        self.ann_armed = False
        held = self.ann_held
        while held and held[0][0] <= now:
            self.take_oldest_held()
        self.arm_held()

    def arm_held(self) -> None:
        """Arm the timer of the oldest held announcement, if any and none is armed."""
        if self.ann_held and not self.ann_armed:
            self.ann_armed = True
            self.timers.schedule(self.ann_held[0][0], (self.t_held,))

    def take_oldest_held(self) -> None:
        """Look at the oldest held announcement (as of its arrival), unless its sender
        is gone; hostile content (wrong types) counts as bad input, as in on_frame."""
        _, since, peer, runs, n = self.ann_held.popleft()
        self.ann_ids -= n
        if not self.is_active(peer):
            return
        try:
            self.take_ihave(peer, runs, since)
        except Exception:  # hostile input must never escape (from a timer, here)
            self.bad += 1

    def take_ihave(self, peer: str, runs: Any, now: float) -> None:
        """Look at one announcement that came at ``now``: a missing-message timer for each
        unseen id, due at ``now`` + the graft delay."""
        n = len(runs)
        if n % 4 or n > _MAX_LIST:
            self.bad += 1
            n = min(n - n % 4, _MAX_LIST)
        # one timer for the ids this announcement is the first of: most are pushed in time
        batch: list | None = None
        young: list | None = None
        # unseen ids looked at: as many as one IHave of ours names (a run is cheap to
        # forge, each unseen id of it costs an entry and a Graft here)
        left = self.ihave_batch
        dedup = self.dedup
        # new entries this announcer may still make (its share of the missing ids)
        owner = self.budget(peer)
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
                self.bad += 1
                continue
            if o == self.origin:
                continue
            tr = self.trees.get(o)
            if tr is not None:
                # an announcement of the origin's latest message, delivered already
                p = tr.pseq
                if p is not None and first <= p <= last and dedup.contains(o, p):
                    self.optimize_late(peer, o, p, h)
            # a young own tree still lags like the anchor's tree it was copied from: let
            # the payload come, and move the parent to the faster announcer without a
            # duplicate (optimize_lag)
            slow = self.anchored and tr is not None and tr.lazy is not None and tr.count < _YOUNG
            s = dedup.first_missing(o, first, last)
            while s != 0:
                if left == 0:
                    self.bad += 1  # more than an honest peer announces at once
                    break
                left -= 1
                key = (o, s)
                m = self.missing.get(key)
                if m is None:
                    if room <= 0:
                        self.ihave_dropped += 1  # over its share: not tracked
                    elif len(self.missing) < _MAX_MISSING:
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
                        self.missing[key] = _Missing(b, peer, h, now, owner)
                elif len(m.peers) < _MAX_ANNOUNCERS and peer not in m.peers:
                    m.hops |= h << (16 * len(m.peers))
                    m.peers.append(peer)
                s = 0 if s == last else dedup.first_missing(o, s + 1, last)
            if s != 0:
                break  # out of unseen ids to look at
        if batch is not None:
            self.timers.schedule(now + self.graft_delay.value, (self.t_grafts, batch))
        if young is not None:
            self.timers.schedule(now + self.graft_delay.cap, (self.t_grafts, young))

    def graft_timers(self, batch: list, now: float) -> None:
        """The timer of one announcement's new ids fired: run :meth:`graft_timer` for
        those still missing (and not re-armed on a timer of their own)."""
        missing = self.missing
        for key in batch:
            m = missing.get(key)
            if m is not None and m.timer is batch:
                self.graft_timer(key[0], key[1], now)

    def graft_timer(self, o: int, s: int, now: float) -> None:
        """A missing message did not arrive in time: graft its next announcer."""
        key = (o, s)
        m = self.missing.get(key)
        if m is None:
            return
        if self.dedup.contains(o, s):
            del self.missing[key]
            m.owner.missing -= 1
            return
        tr = self.trees.get(o)
        own = False
        keep = False
        if tr is not None and tr.lazy is not None:
            own = True
            # the tree pushed newer messages since: it works, so fetch this one rather
            # than graft a second parent (docs/internals.md)
            keep = tr.push_seq > s
            if not keep and m.grafted is None and now - tr.push_at < self.graft_delay.value:
                # the tree still delivers, older messages first: wait until it passes
                # this one or stalls for a whole graft delay
                m.timer = self.timers.schedule(
                    tr.push_at + self.graft_delay.value, (self.timer_graft, o, s)
                )
                return
        while m.peers:
            p = m.peers.pop(0)
            m.hops >>= 16
            if self.is_active(p) and self.grant(p, now):
                # a first message on the anchored tree: fetch it, keep the tree (the push
                # is late, not lost; the tree has no better link to offer)
                fetch = keep or (self.anchored and not own)
                m.keep = keep
                if fetch:
                    self.queue_want(p, o, s)
                else:
                    self.to_eager(o, p)
                    self.queue_graft(p, o, s)
                if m.grafted is None:
                    m.grafted = [p]
                    self.graft_delay.grafted(key, 2 if fetch else 1)
                else:
                    m.grafted.append(p)
                self.grafts += 1
                self.remember_request(o, s, p, now)
                k = (o, s, p)
                a = self.answers.get(k)
                if a is not None and type(a) is not tuple:  # counted in p's unanswered
                    b = self.budgets[p]
                    self.answers[k] = (b, now)
                    b.asked += 1
                m.timer = self.timers.schedule(now + self.graft_timeout_2, (self.t_graft, o, s))
                return
        del self.missing[key]
        m.owner.missing -= 1

    def flush_grafts(self) -> None:
        """Send the Grafts (and Wants) collected by the timers of one tick, one message
        per peer and kind."""
        if self.graft_batch:
            b = self.graft_batch
            self.graft_batch = {}
            self.s_graft += self.send_batches(b, Graft)
        if self.want_batch:
            b = self.want_batch
            self.want_batch = {}
            self.s_want += self.send_batches(b, Want)

    def remember_request(self, o: int, s: int, peer: str, now: float) -> None:
        """Note that we asked ``peer`` for (o, s): its arrival counts as a recovery, and a
        late copy from ``peer`` as an answer rather than a redundant push (bounded)."""
        req = self.requested
        cap = max(self.catch_up_max, _MAX_MISSING)
        if len(req) >= cap:
            req.popitem(last=False)
        req[(o, s)] = now
        ans = self.answers
        key = (o, s, peer)
        if key not in ans:
            if len(ans) >= cap:
                self.forget_answer(ans.popitem(last=False)[1])
            ans[key] = now

    def expire(self, now: float) -> None:
        """Housekeeping: drop old payloads and forgotten requests."""
        self.store.expire(now)
        self.dedup.compact()  # rings of origins that miss nothing any more
        req = self.requested
        limit = now - _REQUEST_TTL
        while req:
            key = next(iter(req))
            if req[key] > limit:
                break
            del req[key]
        if not req:
            self.answers.clear()
            for b in self.budgets.values():
                b.asked = 0
            return
        # request records past the same age, oldest first: their peers may be asked again
        ans = self.answers
        while ans:
            k = next(iter(ans))
            a = ans[k]
            if (a[1] if type(a) is tuple else a) > limit:
                break
            self.forget_answer(ans.pop(k))

    def on_prune(self, peer: str, origins: Any) -> None:
        """A neighbour got duplicates from us: stop pushing these origins to it."""
        if not self.is_active(peer):
            return
        n = len(origins)
        if n == 0:  # every tree, and the shared one
            if self.peers.to_lazy(peer):
                self.refresh()
            for t in self.trees.values():
                if t.lazy is not None and peer not in t.lazy:
                    t.lazy.add(peer)
                    t.epoch = -1
            return
        if n > _MAX_TREES:
            self.bad += 1
            n = _MAX_TREES
        for i in range(n):
            o = origins[i]
            if 0 <= o <= _U64:
                self.to_lazy(o, peer)
            else:
                self.bad += 1

    def on_graft(self, peer: str, ids: Any) -> None:
        """A neighbour wants us as eager parent again (per origin), and resent payloads.

        ``ids`` is ``[origin, seq, ...]``; ``seq`` 0 asks for the tree link only.
        """
        if not self.is_active(peer):
            return
        n = len(ids)
        if n == 0:  # every tree, and the shared one
            if self.peers.to_eager(peer):
                self.refresh()
            for t in self.trees.values():
                if t.lazy is not None and peer in t.lazy:
                    t.lazy.discard(peer)
                    t.epoch = -1
            return
        if n % 2 or n > _MAX_LIST:
            self.bad += 1
            n = min(n - n % 2, _MAX_LIST)
        b = self.answer_tokens(peer)
        for i in range(0, n, 2):
            o = ids[i]
            s = ids[i + 1]
            if not (0 <= o <= _U64 and 0 <= s <= _SEQ_MAX):
                self.bad += 1
                continue
            if s != 0:
                # a payload asked for: one answer token (beyond its budget the id is
                # ignored, link and all: it cannot make us resend the store in a loop)
                if b.resends < 1.0:
                    self.answers_refused += 1
                    continue
                b.resends -= 1.0
            self.to_eager(o, peer)
            if s == 0:
                continue
            item = self.store.get(o, s)
            if item is not None:
                self.send(peer, Gossip(o, s, item[0], item[1]))
                self.s_gossip += 1

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
        for p in t.lazy_t:
            self.announce(p, o, s, 0, now)
        if self.ihave_interval <= 0.0 and self.lazyq:
            self.flush_ihaves()
        return (o, s)

    # -- FIFO delivery ---------------------------------------------------------------------

    def pass_lost(self, o: int) -> None:
        """FIFO delivery: the next seqs of ``o`` are lost for good; stop waiting for them."""
        self.delivered += self.fifo_order.pass_lost(self.out.deliveries, o)

    # -- timers (``(handler, *args)`` on the wheel; the engine calls handler(item, now)) ----

    def timer_grafts(self, item: tuple, now: float) -> None:
        """Timer ``(handler, keys)``: one announcement's new ids are due."""
        self.graft_timers(item[1], now)

    def timer_graft(self, item: tuple, now: float) -> None:
        """Timer ``(handler, origin, seq)``: one missing id is due."""
        self.graft_timer(item[1], item[2], now)

    def timer_ihaves(self, item: tuple, now: float) -> None:
        """Timer: send the queued IHave batches."""
        self.flush_ihaves()

    def timer_held(self, item: tuple, now: float) -> None:
        """Timer: the hold of the oldest announcements is over."""
        self.release_held(now)

    def timer_fifo_gap(self, item: tuple, now: float) -> None:
        """Timer ``(handler, origin)``: stop waiting for the gap that holds back origin."""
        self.now = now
        self.delivered += self.fifo_order.skip_gap(self.out.deliveries, item[1], now)
