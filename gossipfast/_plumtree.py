# cython: annotation_typing=False
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
messages). Ids the answerer has seen but no longer stores come back as ``Gone`` ranges:
the asker records them as lost for good (reported, never asked for again) and passes the
``Gone`` on to its neighbours, which miss them too unless they have them. Optional
per-origin FIFO delivery holds back out-of-order messages (bounded).

This is a hot module: Cython compiles it with ``_plumtree.pxd``. No ``import cython``
here, so the pure-Python build runs the same source.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from typing import Any

from ._cache import DedupCache, PayloadStore
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
#: A big announcement (at least this many ids: its sender relays thousands of messages a
#: second) is looked at this share of the graft delay after it came. Most of its ids are
#: of payloads the tree pushes meanwhile, and a held id then costs a dedup check instead
#: of a missing-message entry made and dropped (on a loopback cluster at full speed, 4
#: in 10 messages were announced before their push). At most half the delay, so that a
#: push later than that still finds its entry (the lag rule and optimize_lag act only on
#: such pushes) and every timer keeps its deadline (arrival + delay). Small ones are
#: looked at at once, so at low rates a push that follows its announcement sooner still
#: counts as announced (the paper's hop optimisation, no push to its announcer).
_ANNOUNCE_HOLD = 0.5
_ANNOUNCE_HOLD_MIN = 32
#: Announced ids held at once (as many as missing-message entries); beyond, the oldest
#: announcements are looked at early.
_MAX_ANN_HELD = 1 << 16
#: Origins listed in one Digest (the most recently active ones when over).
_DIGEST_MAX_ORIGINS = 4096
#: List entries of a Graft or IHave we look at; the rest is ignored.
_MAX_LIST = 1 << 17
#: Seconds a Graft/Want request is remembered to count its answer as a recovery.
_REQUEST_TTL = 30.0
#: A copy can come this long after its payload left the stores (a Graft or Want answered
#: late, a queued push): an origin is forgotten after store_max_age plus this unseen.
_DEDUP_SLACK = _REQUEST_TTL
#: Under pressure a neighbour's budget of new origins is 1/this of the table as a burst,
#: and as much again per idle horizon.
_ADMIT_SHARE = 8
#: Per-origin trees kept (oldest created evicted first; a new tree starts as the shared one).
_MAX_TREES = 4096
#: Public copy of the tree bound (the compiled module keeps ``_MAX_TREES`` C-level).
MAX_TREES = _MAX_TREES
#: The adaptive first-stage graft delay stays within [graft_timeout_1, this x it].
_GRAFT_DELAY_MAX_FACTOR = 8.0
#: Factor the delay shrinks by (at most once per current delay) while pushes come before
#: any announcement of them.
_GRAFT_DELAY_SHRINK = 0.98
#: The delay grows to this many times the lag of a push behind its first announcement
#: (at most once per current delay, up to the cap).
_GRAFT_DELAY_LAG = 2.0
#: An origin's own tree is young for its first messages: with the anchored tree it waits
#: the longest graft delay for them (it starts as the anchor's tree and still lags).
_YOUNG = 10
#: A faster announcer replaces the parent (optimize_lag) only over a path at most this
#: many hops longer (unbounded, one steady sender's young tree at 1,000 simulated nodes
#: went 17 hops deep for a few messages; its settled depth is 9-10).
_LAG_HOPS = 2
#: Early grafts remembered (to notice the push that arrives after one).
_GRAFTED_RECENT_MAX = 4096
#: Messages held back per origin by FIFO delivery before a gap is skipped.
_FIFO_HOLD_MAX = 4096
#: Seconds FIFO delivery waits for a gap to fill (grafts and catch-up take < 1 s).
_FIFO_HOLD = 1.0


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

    One is made per message announced before its push (at full rate, 4 in 10 of a
    relay's messages), so it is kept small: one list of announcers, their hop counts
    packed in one int (16 bits each: hops < ``_HOPS_MAX``), and usually the timer of its
    announcement (one per batch) rather than one of its own.
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
    extend the run of their origin: one run on the wire for a stream of ids (at full
    rate, each id of a flat list was queued, encoded, decoded and looked at on its own).
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


def _valid_id(origin: Any, seq: Any) -> bool:
    """True for an id inside the wire's ranges (origin u64, seq 1..2**63-1)."""
    return 0 <= origin <= _U64 and 0 < seq <= _SEQ_MAX


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


class Plumtree:
    """Broadcast state of one node.

    The engine owns the outputs and hands them in: ``outbox`` (peer -> messages) and
    ``deliveries``; after a drain it assigns fresh containers to both attributes. Timers
    go to the shared ``timers`` wheel as tuples (``("G", keys)`` the missing-message timer
    of one announcement's new ids, ``("g", origin, seq)`` that of one id, ``("i",)``
    IHave flush) that the engine routes back to :meth:`graft_timers`,
    :meth:`graft_timer` and :meth:`flush_ihaves`.
    """

    def __init__(self, origin: int, config: Any, timers: Any) -> None:
        """Create an empty broadcast state for the node whose origin is ``origin``."""
        self.origin = origin
        self.timers = timers
        self.outbox: dict[str, list] = {}
        self.deliveries: list[tuple[int, int, int, bytes]] = []
        self.dedup = _new_dedup(config)
        self.store = PayloadStore(
            config.store_max_messages, config.store_max_bytes, config.store_max_age
        )
        # ``peers`` is the shared tree (every origin's prunes and grafts shape it); it is
        # the template of a new origin's tree. ``trees`` holds the per-origin trees.
        self.peers = EagerLazy()
        self.eager: tuple = ()
        self.lazy: tuple = ()
        self.active: tuple = ()
        self.epoch = 0
        self.trees: dict[int, _Tree] = {}
        # the shared tree is kept by the anchored tree (``_anchor.py``, set_shared_tree):
        # first messages must not bend it
        self.anchored = False
        self.prune_batch: dict[str, list[int]] = {}
        self.seq = 0
        self.now = 0.0  # time of the input being handled (for timers armed deep inside)
        self.ihave_interval = float(config.ihave_interval)
        self.ihave_batch = int(config.ihave_batch_max)
        self.graft_timeout_1 = float(config.graft_timeout_1)
        # First-stage graft delay, adapted to the tree's lag (AIMD): a push that arrives
        # after we grafted the same message shows the graft was early (it only added a
        # copy and reshaped the tree), so the delay grows; on-time pushes shrink it back.
        self.graft_delay = self.graft_timeout_1
        self.graft_delay_max = self.graft_timeout_1 * _GRAFT_DELAY_MAX_FACTOR
        # the delay shrinks at most once per current delay: per on-time push it would
        # collapse within milliseconds at thousands of messages a second, and the next
        # late hop would set off a storm of early grafts (measured on loopback clusters)
        self.graft_shrink_at = 0.0
        # and it doubles at most once per current delay: the early grafts of one late
        # batch are one event (as TCP halves its window once per window of losses); per
        # push, one stale backlog took it from the floor to the cap within a millisecond
        self.graft_grow_at = 0.0
        self.grafted_recent: OrderedDict[tuple[int, int], int] = OrderedDict()
        self.early_grafts = 0
        self.graft_timeout_2 = float(config.graft_timeout_2)
        self.threshold = int(config.optimization_threshold)
        self.catch_up_max = int(config.catch_up_max)
        self.fifo = bool(config.fifo)
        self.lazyq: dict[str, _Lazy] = {}
        self.ihave_armed = False
        self.missing: dict[tuple[int, int], _Missing] = {}
        # per-neighbour shares and budgets (_Budget), made on first use, dropped when the
        # neighbour leaves: a hostile announcer or requester is contained by its own
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
        # (origin, seq, peer) we asked a payload from: its copy is an answer, not a push
        # value: when we asked; (peer's _Budget, when) for a Graft/Want of a missing
        # message, counted in the peer's ``asked`` until answered or forgotten
        self.answers: OrderedDict[tuple[int, int, str], Any] = OrderedDict()
        self.graft_batch: dict[str, list[int]] = {}
        # fetches of first messages on the anchored tree: a Want moves no tree link
        self.want_batch: dict[str, list[int]] = {}
        # fresh-join baseline: the first digest after the first neighbour came up sets the
        # starting point of origins unknown so far (a new node does not pull old history).
        # Only the first: an origin that shows up in a later digest may have started
        # after we joined, and skipping it would lose its messages.
        self.first_up = -1.0
        self.baseline_window = max(float(config.neighbor_timeout), float(config.repair_interval))
        self.baseline_open = False
        self.known_before: set[int] = set()
        # origin -> the seq the baseline skipped to: ids up to it were never seen here,
        # so a Want of them gets no Gone (others may still store them)
        self.skipped: dict[int, int] = {}
        # anti-entropy: every interval one active neighbour in turn gets the digest taken
        # one interval earlier (an id in it is that old: its lack is a loss, not a copy
        # in flight), of the origins seen within the payload retention (older ones have
        # nothing left to pull)
        self.ae_interval = float(config.anti_entropy_interval)
        self.retention = float(config.store_max_age)
        self.ae_snapshot: list = []
        self.ae_turn = 0
        # FIFO delivery: origin -> {seq: (hops, payload)} held back until the gap fills
        self.next_seq: dict[int, int] = {}
        self.next_seq_cap = 2 * int(config.dedup_max_origins)
        self.next_seq_max = self.next_seq_cap
        self.held: dict[int, dict[int, tuple[int, bytes]]] = {}
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
        self.fifo_skipped = 0
        self.ihave_dropped = 0
        self.grafts_withheld = 0
        self.answers_refused = 0
        self.dedup_warned = 0  # bits: refusals (1) and budget drops (2) logged

    # -- outputs ---------------------------------------------------------------------------

    def send(self, peer: str, msg: object) -> None:
        """Queue ``msg`` for ``peer`` in the outbox."""
        lst = self.outbox.get(peer)
        if lst is None:
            self.outbox[peer] = [msg]
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
        if self.first_up < 0.0:
            self.first_up = now
            self.baseline_open = True
            d = self.dedup.digest()
            self.known_before = {d[i] for i in range(0, len(d), 2)}
        self.peers.add(peer)
        self.refresh()
        self.active = self.eager + self.lazy
        d = self.dedup.digest()
        if len(d) > 2 * _DIGEST_MAX_ORIGINS:
            d = self._recent_digest(d)
        self.send(peer, Digest(d))
        self.s_digest += 1

    def anti_entropy(self, now: float) -> None:
        """Send the previous snapshot of our digest to the next active neighbour in
        turn and take a new one."""
        peers = self.active
        if peers and self.ae_snapshot:
            self.ae_turn += 1
            self.send(peers[self.ae_turn % len(peers)], Digest(self.ae_snapshot))
            self.s_digest += 1
        d = self.dedup.digest(now - self.retention)
        if len(d) > 2 * _DIGEST_MAX_ORIGINS:
            d = self._recent_digest(d)
        self.ae_snapshot = d

    def _recent_digest(self, d: list) -> list:
        """Cap a digest to the most recent origins (the cache lists them newest first)."""
        return d[: 2 * _DIGEST_MAX_ORIGINS]

    def neighbor_down(self, peer: str) -> None:
        """A neighbour left the active view."""
        self.peers.remove(peer)
        self.refresh()
        self.active = self.eager + self.lazy
        for t in self.trees.values():
            if t.lazy is not None:
                t.lazy.discard(peer)
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
                    self.on_digest(peer, msg.entries, now)
                elif t is Want:
                    self.r_want += 1
                    self.on_want(peer, msg.ranges)
                elif t is Gone:
                    self.r_gone += 1
                    self.on_gone(peer, msg.ranges)
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
            if self.dedup.dropped:
                # a new origin refused (table full of live origins, or its sender's
                # budget spent): not a duplicate, no prune; counted by the dedup
                self.dedup.dropped = False
                if self.dedup_warned != 3:
                    self.warn_dropped(peer)
                return
            self.duplicates += 1
            if self.answers and self.take_answer(o, s, peer):
                return  # the answer to our Graft/Want, not a push: no reason to prune
            how = 0
            if self.grafted_recent:
                how = self.early_graft((o, s))
            if self.is_active(peer):
                if how == 2 or (self.anchored and peer in self.eager and not self.owns(o)):
                    # the late push of one we fetched (the tree works, the push is late),
                    # or a first message's copy over a link of the anchored tree (which
                    # has no loops: it comes from a fetch further on). Pruning would cut
                    # the tree.
                    return
                t = self.trees.get(o)
                if t is not None and t.lazy is not None and t.up == peer and peer not in t.lazy:
                    # our parent in the own tree: its push of the message we already
                    # fetched or had from a grafted peer. It delivered our latest new
                    # message, so it is the link that works; a slower parent is pruned
                    # when its copy comes after a faster one's (which then is the parent).
                    # Pruning it too left trees with no parent at all after a storm of
                    # grafts (every neighbour's late push pruned; measured on loopback)
                    return
                # always answer a push with Prune, even if the sender is lazy for us
                # already: its tree may still have us eager (trees are born apart)
                self.to_lazy(o, peer)
                self.queue_prune(peer, o)
            return
        h += 1
        payload = msg.payload
        self.store.put(o, s, h, payload, now)
        if self.fifo:
            self.deliver_fifo(o, s, h, payload)
        else:
            self.deliveries.append((o, s, h, payload))
            self.delivered += 1
        answer = False
        if self.requested and self.requested.pop((o, s), None) is not None:
            self.recovered += 1
            answer = self.take_answer(o, s, peer)
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
            if not answer and t.lazy is None and not self.anchored:
                # the paper: whoever pushes a new payload becomes (again) a tree link (an
                # answer to our Graft is one already; one to a Want or a digest must not
                # be). Only on the shared tree without the anchor: in an own tree such a
                # push is one the sender sent before our Prune reached it, so it has us
                # lazy already; a link eager at one end only leaves us with no parent
                # (measured: 10 origins at 1,000/s each on 10 simulated nodes)
                self.to_eager(o, peer)
                t = self.tree(o)
            elif (
                answer
                and t.lazy is not None
                and m is not None
                and m.grafted is not None
                and not m.keep
            ):
                # fetched (a Want: the origin still used the anchored tree) and the
                # origin's own tree starts now: as in the paper, the link of the first
                # delivery is a tree link, at both ends (the late push of the old parent
                # will prune it)
                self.to_eager(o, peer)
                self.queue_graft(peer, o, 0)
                t = self.tree(o)
                t.up = peer
        up = None
        if t.lazy is not None:
            if not answer and peer in t.eager:
                t.up = peer
            up = t.up
        if m is None:
            # (not while big announcements are held: this push may be one of theirs, and
            # shrinking the delay under full load set off graft storms; loopback cluster)
            if (
                self.graft_delay > self.graft_timeout_1
                and now >= self.graft_shrink_at
                and not self.ann_held
            ):
                d = self.graft_delay * _GRAFT_DELAY_SHRINK
                self.graft_delay = d if d > self.graft_timeout_1 else self.graft_timeout_1
                self.graft_shrink_at = now + self.graft_delay
        elif m.grafted is not None:
            if peer not in m.grafted:
                self.early_graft((o, s))  # the push beat the answer to our graft
        elif not answer:
            # the tree's push came this long after the first announcement: a graft
            # delay under twice that (as TCP's timeout over the round trip) grafts
            # pushes that are late, not lost. Raised before any graft fires: at full
            # speed such first grafts (thousands of ids at once, their late pushes then
            # pruning the tree) cost a third of the runs half their rate (loopback)
            lag = (now - m.since) * _GRAFT_DELAY_LAG
            if lag > self.graft_delay:
                self.grow_graft_delay(lag, now)
        fwd = Gossip(o, s, h, payload)
        outbox = self.outbox
        n = 0
        skip = None
        told = None
        if m is not None:
            skip = m.grafted
            told = m.peers
        for p in t.eager:
            # not back to our parent either: it has the payload, and the duplicate would
            # make it prune the link (a payload comes from elsewhere when it was fetched,
            # or pushed by an old parent before our Prune reached it)
            if p != peer and p != up:
                if skip is not None and p in skip:
                    continue  # it answers our Graft: it has the payload
                if told and p in told:
                    # it announced the payload, so it has it: the copy would only make it
                    # prune us, and when we grafted it for other messages of the same
                    # stalled tree that undoes the repair (measured: a node recovering a
                    # whole 1 s stream, 640 ms late, its grafts pruned within 5 ms)
                    continue
                lst = outbox.get(p)
                if lst is None:
                    outbox[p] = [fwd]
                else:
                    lst.append(fwd)
                n += 1
        self.s_gossip += n
        for p in t.lazy_t:
            # a peer that announced the payload has it: an IHave back is wasted work at
            # both ends
            if p != peer and not (told and p in told):
                self.announce(p, o, s, h, now)
        if m is not None:
            # after the push: the new parent must not get this payload back from us
            self.optimize(peer, o, m, h - 1)
            if self.anchored and m.grafted is None:
                self.optimize_lag(peer, o, m, h - 1, now)

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

    def early_graft(self, key: tuple) -> int:
        """A push of a message we grafted arrived anyway: wait longer before grafting.

        No-op unless ``key`` is an early request still remembered (counted once).
        Returns how it was made: 1 a Graft, 2 a Want (a fetch that kept the tree), 0 none.
        """
        how = self.grafted_recent.pop(key, 0)
        if how == 0:
            return 0
        self.early_grafts += 1
        self.grow_graft_delay(self.graft_delay * 2.0, self.now)
        return how

    def grow_graft_delay(self, d: float, now: float) -> None:
        """Lengthen the first-stage graft delay to ``d`` (at most the cap), at most once
        per current delay: the late pushes of one backlog are one event."""
        if now < self.graft_grow_at:
            return
        self.graft_delay = d if d < self.graft_delay_max else self.graft_delay_max
        self.graft_grow_at = now + self.graft_delay
        self.graft_shrink_at = now + self.graft_delay

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
        if t is None or t.lazy is None or now - m.since < 0.5 * self.graft_delay:
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
                self.timers.schedule(now + self.ihave_interval, ("i",))
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
        """Send every queued IHave batch (timer ``("i",)`` or immediately)."""
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
        self.ann_held.append((now + self.graft_delay * _ANNOUNCE_HOLD, now, peer, runs, n))
        self.ann_ids += n
        while self.ann_ids > _MAX_ANN_HELD:
            self.take_oldest_held()
        self.arm_held()

    def release_held(self, now: float) -> None:
        """The hold of the oldest announcements is over: look at them (timer ``("h",)``)."""
        self.ann_armed = False
        held = self.ann_held
        while held and held[0][0] <= now:
            self.take_oldest_held()
        self.arm_held()

    def arm_held(self) -> None:
        """Arm the timer of the oldest held announcement, if any and none is armed."""
        if self.ann_held and not self.ann_armed:
            self.ann_armed = True
            self.timers.schedule(self.ann_held[0][0], ("h",))

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
        # one timer for the ids this announcement is the first of (per delay): most are
        # pushed within it, and at full rate a timer per id was a large part of the third
        # of a relay's samples that on_ihave took
        batch: list | None = None
        young: list | None = None
        # unseen ids looked at: as many as one IHave of ours names. A run costs its
        # sender a few bytes however long it claims to be, and each unseen id of it an
        # entry and a Graft here
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
                not _valid_id(o, first)
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
            self.timers.schedule(now + self.graft_delay, ("G", batch))
        if young is not None:
            self.timers.schedule(now + self.graft_delay_max, ("G", young))

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
            # the tree has pushed us newer messages since: it works, this one was lost or
            # is late on its way. A Graft would add a second parent, the duplicates that
            # follow prune one of the two, and under a backlog of such timers (a stalled
            # hop at thousands of messages a second) the grafts and prunes crossing on
            # the wire tear holes in the tree that set off the next backlog (measured on
            # loopback clusters). Fetch it instead.
            keep = tr.push_seq > s
            if not keep and m.grafted is None and now - tr.push_at < self.graft_delay:
                # the tree still delivers, older messages first (links keep order): this
                # one is queued behind them. Under overload a graft (or a fetch) only adds
                # to the load that made it late; wait until the tree passes it or stalls
                # for a whole graft delay
                m.timer = self.timers.schedule(tr.push_at + self.graft_delay, ("g", o, s))
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
                    gr = self.grafted_recent
                    if len(gr) >= _GRAFTED_RECENT_MAX:
                        gr.popitem(last=False)
                    gr[key] = 2 if fetch else 1
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
                m.timer = self.timers.schedule(now + self.graft_timeout_2, ("g", o, s))
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

    # -- catch-up --------------------------------------------------------------------------

    def on_digest(self, peer: str, entries: Any, now: float) -> None:
        """A neighbour's {origin: highest seq}: ask for what we miss, as ranges."""
        if not self.is_active(peer):
            return
        n = len(entries)
        if n % 2 or n > 4 * _DIGEST_MAX_ORIGINS:
            self.bad += 1
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
                    self.bad += 1
                continue
            if o == self.origin:
                continue
            if fresh and o not in self.known_before and o not in self.dedup:
                # a new node starts at the present: no pull of old history
                self.dedup.advance(o, high)
                self.skipped[o] = high
                continue
            if budget <= 0:
                continue
            miss = self.dedup.missing(o, high, budget)
            if miss and (self.missing or self.requested):
                miss = self.not_pending(o, miss, now)
            if not miss:
                continue
            budget -= len(miss)
            self.catch_up_requested += len(miss)
            first = miss[0]
            last = first
            self.remember_request(o, first, peer, now)
            for j in range(1, len(miss)):
                q = miss[j]
                self.remember_request(o, q, peer, now)
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

    def not_pending(self, o: int, seqs: list, now: float) -> list:
        """``seqs`` of origin ``o`` less those on their way: announced (a graft timer
        runs for them) or asked for within the last anti-entropy interval."""
        missing = self.missing
        requested = self.requested
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
            self.bad += 1
            n = min(n - n % 3, _MAX_LIST)
        return n

    def on_want(self, peer: str, ranges: Any) -> None:
        """Answer a catch-up request from the payload store (bounded per request); the
        ids we have seen but no longer store are answered with one ``Gone``."""
        if not self.is_active(peer):
            return
        n = self.ranges_len(ranges)
        budget = self.catch_up_max
        gone: list[int] = []
        b = self.answer_tokens(peer)
        for i in range(0, n, 3):
            o = ranges[i]
            first = ranges[i + 1]
            last = ranges[i + 2]
            if not _valid_id(o, first) or not _valid_id(o, last) or last < first:
                self.bad += 1
                continue
            if last - first >= budget:
                last = first + budget - 1
            # each payload asked for spends one of the peer's answer tokens; the rest of
            # the request is refused (counted)
            room = int(b.resends)
            if last - first >= room:
                self.answers_refused += last - first + 1 - room
                if room <= 0:
                    break
                last = first + room - 1
            b.resends -= last - first + 1
            s = first
            while s <= last:
                item = self.store.get(o, s)
                if item is not None:
                    self.send(peer, Gossip(o, s, item[0], item[1]))
                    self.s_gossip += 1
                elif self.dedup.contains(o, s) and s > self.skipped.get(o, 0):
                    # seen here once, no longer stored: gone (unseen ids, those the
                    # fresh-join baseline skipped included: no answer)
                    _add_id(gone, o, s)
                s += 1
            budget -= last - first + 1
            if budget <= 0:
                break
        if gone:
            self.send(peer, Gone(gone))
            self.s_gone += 1

    def on_gone(self, peer: str, ranges: Any) -> None:
        """A neighbour says these ids are lost for good (seen there, stored nowhere it
        knows). Record those we lack as seen, so that catch-up stops asking for them
        and a late copy is not delivered; report them (``gaps``) and pass the news on
        to every other neighbour. Ids still announced to us (a missing-message timer
        runs: a push may come) are left alone.

        Bounded like a ``Want``: at most ``catch_up_max`` ids looked at per message, and
        none more than ``catch_up_max`` past the highest seq we know of the origin (a
        forged range at 2**63 does not move it); the rest counts as bad input.
        """
        if not self.is_active(peer) or self.catch_up_max <= 0:
            return
        n = self.ranges_len(ranges)
        budget = self.catch_up_max
        dedup = self.dedup
        missing = self.missing
        new: list[int] = []
        counts: dict[int, int] = {}
        for i in range(0, n, 3):
            if budget <= 0:
                self.bad += 1
                break
            o = ranges[i]
            first = ranges[i + 1]
            last = ranges[i + 2]
            if not _valid_id(o, first) or not _valid_id(o, last) or last < first:
                self.bad += 1
                continue
            if o == self.origin:
                continue
            top = dedup.highest(o) + self.catch_up_max
            if last > top or last - first >= budget:
                self.bad += 1
                if last > top:
                    last = top
                if last - first >= budget:
                    last = first + budget - 1
                if last < first:
                    continue
            budget -= last - first + 1
            got = 0
            s = dedup.first_missing(o, first, last)
            while s != 0:
                if (o, s) not in missing and dedup.check_and_insert(o, s):
                    got += 1
                    _add_id(new, o, s)
                s = 0 if s == last else dedup.first_missing(o, s + 1, last)
            if got:
                counts[o] = counts.get(o, 0) + got
        if not counts:
            return
        for o, c in counts.items():
            self.lost += c
            self.gaps.append((o, c))
            if self.fifo:
                self.pass_lost(o)
        msg = Gone(new)
        for p in self.active:
            if p != peer:
                self.send(p, msg)
                self.s_gone += 1

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

    def deliver_fifo(self, o: int, s: int, h: int, payload: bytes) -> None:
        """Deliver in per-origin sequence order, holding back (bounded) what comes early."""
        nxt = self.next_seq.get(o, 0)
        if nxt == 0 or s == nxt:
            self.deliveries.append((o, s, h, payload))
            self.delivered += 1
            if nxt == 0 and len(self.next_seq) >= self.next_seq_max:
                self.forget_next_seqs()
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

    def forget_next_seqs(self) -> None:
        """Bound FIFO's per-origin table: drop the origins dedup forgot (idle ones)."""
        dedup = self.dedup
        held = self.held
        self.next_seq = {o: n for o, n in self.next_seq.items() if o in dedup or o in held}
        # amortised: the next pass only after as many new origins again
        self.next_seq_max = max(self.next_seq_cap, 2 * len(self.next_seq))

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

    def pass_lost(self, o: int) -> None:
        """FIFO delivery: the next seq of ``o`` is lost for good; stop waiting for it."""
        nxt = self.next_seq.get(o, 0)
        if nxt == 0:
            return
        held = self.held.get(o)
        while (held is None or nxt not in held) and self.dedup.contains(o, nxt):
            nxt += 1  # (contains() is False above the highest seq seen)
        self.next_seq[o] = nxt
        self.release(o)

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
