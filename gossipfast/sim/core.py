# cython: annotation_typing=False, wraparound=True, boundscheck=True
"""The simulator's compiled core: many engines, one virtual clock, an in-memory network.

The simulator drives the very :class:`gossipfast.engine.Engine` class the transport
drives (``docs/internals.md``), so what it shows at 10,000 nodes holds for the real code.

Model
-----
- One event heap ordered by ``(time, counter)``: a seed fixes every figure.
- Each node is an engine at address ``"n<i>:1"`` with its own ``random.Random`` derived
  from the seed. Timers are driven by one pending tick per node at
  ``engine.next_deadline()`` (re-read after every input), never by a global grid.
- Links behave like TCP: a link's latency is fixed per pair of nodes (drawn uniformly
  from ``latency``, optionally with per-message jitter), messages on a link keep their
  order, the first message on a new link pays the connection handshake, a ``closing``
  flushes what was sent and then the other end sees ``on_disconnected(.., "closed")``.
  Messages may be lost with probability ``loss``.
- Failures like TCP: a send to a crashed or partitioned-away node, and every open link
  of a node that crashes or is cut off by a partition, yields
  ``on_disconnected(peer, "failed")`` after a detection delay (the heartbeat timeout for
  an established link, the connect timeout for a fresh dial, unless overridden).

:class:`Network` holds that network model and the event heap; :class:`Simulator` runs
the loop, feeds the engines, routes what they drain and keeps the figures.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import math
import random
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .. import wire
from ..config import Config
from . import figures

__all__ = [
    "MAX_NODES",
    "SIM_CONFIG",
    "BroadcastRecord",
    "Network",
    "Simulator",
    "cyclic_gc_paused",
]

# Event kinds in the heap: (time, counter, kind, a, b, c, d).
_DELIVER = 0  # a=src, b=dst, c=link epoch, d=msgs
_TICK = 1  # a=node
_FAIL = 2  # a=node, b=peer address: on_disconnected(peer, "failed")
_CLOSED = 3  # a=node, b=peer index, c=epoch: on_disconnected(peer, "closed")
_IDLE = 4  # a=link key: close the link if it is still idle and not active
_CALL = 5  # c=callable(now)

_SHIFT = 20  # link keys pack two node indices: (a << _SHIFT) | b
_MASK = (1 << _SHIFT) - 1
MAX_NODES = 1 << _SHIFT

#: GC thresholds while the event loop runs: it allocates short-lived containers by the
#: million and makes almost no cycles (figures: docs/internals.md, "sim.core").
_GC_THRESHOLD = (50_000, 50, 100)

_GOSSIP = wire.Gossip
_IHAVE = wire.IHave
_GRAFT = wire.Graft
_WANT = wire.Want


@contextlib.contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Run a whole simulation with Python's cyclic garbage collector off.

    For a process that does nothing but simulate (``gossipfast sim``,
    ``bench/sim_scale.py``): the engines and the simulator free their garbage by
    reference counting, so the collector's full passes over millions of long-lived
    objects are wasted. :meth:`Simulator.run_until` alone only raises the thresholds
    while it runs.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _mix64(x: int) -> int:
    """splitmix64 finaliser: a cheap, well-spread, process-independent hash of an int."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def _default_engine_factory() -> Callable[..., Any]:
    from ..engine import Engine  # imported late: the simulator also runs test engines

    return Engine


class BroadcastRecord:
    """What happened to one broadcast: who delivered it, when, over how many hops."""

    __slots__ = (
        "at",
        "dup",
        "graft",
        "hops",
        "ihave",
        "key",
        "latency",
        "n_at_send",
        "origin_index",
        "seen",
        "sent",
        "t0",
        "tag",
    )

    def __init__(self, key: tuple[int, int], origin_index: int, t0: float, n: int, tag: str):
        self.key = key
        self.origin_index = origin_index
        self.t0 = t0
        self.n_at_send = n
        self.tag = tag
        self.seen = bytearray(n)  # 1 = delivered (the origin counts as delivered)
        self.seen[origin_index] = 1
        self.at = array("d", [-1.0]) * n  # delivery time per node (-1: not delivered)
        self.at[origin_index] = t0
        self.hops: list[int] = []
        self.latency: list[float] = []
        self.sent = 0  # Gossip messages carrying this id
        self.ihave = 0  # IHave announcements of this id
        self.graft = 0  # Graft (or Want) requests for this id
        self.dup = 0  # deliveries of this id to a node that had delivered it already


#: The simulator's default configuration (see :class:`Simulator`).
SIM_CONFIG = Config(dedup_window=4096)


class Network:
    """The simulated network between the nodes: latency, loss, partitions, and links
    that behave like TCP connections, with their failures (the model: module docstring).

    It owns the event heap, entries ``(time, counter, kind, a, b, c, d)``, and puts on it
    what the links do: deliveries, EOFs, failure notices and idle checks.
    :class:`Simulator` adds ticks and calls, pops every event and hands it to the
    engines. ``alive``, ``addr`` and ``act`` are the simulator's per-node lists (shared,
    not copied): liveness, addresses, and active views as told by the engines' events.
    """

    def __init__(
        self,
        rng: random.Random,
        alive: bytearray,
        addr: list[str],
        act: list[set[int]],
        *,
        seed: int,
        latency: tuple[float, float],
        jitter: float,
        loss: float,
        hb_delay: float,
        dial_delay: float,
        dial_rtts: float,
        idle_close: float,
    ) -> None:
        lo, hi = latency
        if not (0.0 <= lo <= hi):
            raise ValueError(f"latency must satisfy 0 <= lo <= hi, got {latency!r}")
        if not (0.0 <= loss < 1.0):
            raise ValueError(f"loss must be in [0, 1), got {loss!r}")
        self.rng = rng  # the simulator's: loss and jitter draws interleave with its own
        self.alive = alive
        self.addr = addr
        self.act = act
        self.lat_lo = float(lo)
        self.lat_span = float(hi - lo)
        self.jitter = float(jitter)
        self.loss = float(loss)
        self.hb_delay = float(hb_delay)
        self.dial_delay = float(dial_delay)
        self.dial_rtts = float(dial_rtts)
        self.idle_close = float(idle_close)
        self._lat_salt = _mix64(seed * 0x2545F4914F6CDD1D + 1)
        self.heap: list[tuple] = []
        self.seq = 0  # tie-breaker of events at the same time: insertion order
        # open links, each end's own view: peer -> link epoch. After one end closes, the
        # other keeps its entry (half-closed) until the EOF reaches it.
        self.ladj: list[dict[int, int]] = []
        self.group: list[int] = []  # partition group per node
        self.partitioned = False
        self._epoch = 0
        self._last: dict[int, float] = {}  # direction key -> latest scheduled arrival
        self._lat: dict[int, float] = {}  # link key -> latency (cache of link_lat)
        self._last_use: dict[int, float] = {}  # link key -> last send (idle links only)
        self._idle_pending: set[int] = set()
        self._dead_dir: dict[int, int] = {}  # direction key -> epoch closed by receiver
        self._fail_pending: set[tuple[int, str]] = set()
        self.next_purge = 30.0
        self.lost = 0
        self.dropped = 0  # messages to dead / cut-off nodes

    def push(self, t: float, kind: int, a: Any, b: Any, c: Any) -> None:
        """Put an event on the heap (``d``, the messages, only deliveries carry)."""
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, a, b, c, None))

    def add_node(self) -> None:
        """The next node: no links, in the group of those no partition lists."""
        self.ladj.append({})
        self.group.append(0)

    # ------------------------------------------------------------------ sending
    def send(self, i: int, j: int, msgs: list, now: float) -> None:
        """Node ``i`` sends ``msgs`` to node ``j``: schedule their arrival on the link,
        dialling it first when none is open, or the sender's failure notice."""
        adj = self.ladj[i]
        epoch = adj.get(j)
        if not self.alive[j] or (self.partitioned and self.group[i] != self.group[j]):
            self.dropped += len(msgs)
            delay = self.hb_delay if epoch is not None else self.dial_delay
            if epoch is not None:
                del adj[j]
            self.fail_later(i, self.addr[j], now + delay)
            return
        if self.loss:
            rnd = self.rng.random
            kept = [m for m in msgs if rnd() >= self.loss]
            self.lost += len(msgs) - len(kept)
            if not kept:
                return
            msgs = kept
        lk = (i << _SHIFT) | j if i < j else (j << _SHIFT) | i
        lato = self._lat.get(lk)
        lat = self.link_lat(lk) if lato is None else lato
        if self.jitter:
            lat *= 1.0 + self.jitter * self.rng.random()
        t = now + lat
        if epoch is None:
            # dial: the TCP + Hello handshake costs dial_rtts round trips first
            self._epoch += 1
            epoch = self._epoch
            adj[j] = epoch
            self.ladj[j][i] = epoch
            t += 2.0 * lat * self.dial_rtts
        dk = (i << _SHIFT) | j
        last = self._last.get(dk)
        if last is not None and t < last:
            t = last  # a link keeps its messages in order
        self._last[dk] = t
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, _DELIVER, i, j, epoch, msgs))
        if j not in self.act[i] and i not in self.act[j]:
            self.schedule_idle(i, j, now)

    def arrives(self, i: int, j: int, epoch: int) -> bool:
        """Whether data sent by ``i`` on connection ``epoch`` reaches ``j`` now."""
        if self._dead_dir and self._dead_dir.get((i << _SHIFT) | j) == epoch:
            return False  # the receiver closed this connection: data is refused
        return not (self.partitioned and self.group[i] != self.group[j])

    def link_latency(self, i: int, j: int) -> float:
        """The fixed base latency of the link between nodes ``i`` and ``j``."""
        return self.link_lat((i << _SHIFT) | j if i < j else (j << _SHIFT) | i)

    def link_lat(self, lk: int) -> float:
        """The base latency of link key ``lk``: a pure function of the pair and seed."""
        lat = self.lat_lo + self.lat_span * (_mix64(lk ^ self._lat_salt) >> 11) * (1.0 / (1 << 53))
        if len(self._lat) >= 1 << 20:
            self._lat.clear()  # a cache, bounded: the value is a pure function of the pair
        self._lat[lk] = lat
        return lat

    # ------------------------------------------------------------------ closing
    def close_link(self, i: int, j: int, now: float) -> None:
        """``i`` closes its link to ``j``: sent data still arrives, then ``j`` sees EOF."""
        epoch = self.ladj[i].pop(j, None)
        if epoch is None:
            return
        # data j -> i, in flight or sent before j sees the EOF, is refused by i
        self._dead_dir[(j << _SHIFT) | i] = epoch
        if self.ladj[j].get(i) == epoch:
            dk = (i << _SHIFT) | j
            t = now + self.link_latency(i, j)
            last = self._last.get(dk)
            if last is not None and t < last:
                t = last
            self._last[dk] = t
            self.push(t, _CLOSED, j, i, epoch)

    def eof(self, i: int, j: int, epoch: int) -> bool:
        """``i`` reads the EOF of connection ``epoch`` from ``j``: True (and the link is
        gone) when that connection is still ``i``'s link to ``j``."""
        adj = self.ladj[i]
        if adj.get(j) != epoch:
            return False  # i closed it too, or a newer connection replaced this one
        del adj[j]
        return True

    def schedule_idle(self, i: int, j: int, now: float) -> None:
        """The link ``i``-``j`` carries no active view: close it once idle long enough."""
        a, b = (i, j) if i < j else (j, i)
        lk = (a << _SHIFT) | b
        self._last_use[lk] = now
        if lk not in self._idle_pending:
            self._idle_pending.add(lk)
            self.push(now + self.idle_close, _IDLE, lk, None, None)

    def idle_check(self, lk: int, now: float) -> None:
        """An ``_IDLE`` event: close link ``lk`` if it is still idle and not active."""
        self._idle_pending.discard(lk)
        a, b = lk >> _SHIFT, lk & _MASK
        ea = self.ladj[a].get(b)
        if ea is None or ea != self.ladj[b].get(a) or b in self.act[a] or a in self.act[b]:
            self._last_use.pop(lk, None)
            return
        due = self._last_use.get(lk, now) + self.idle_close
        if due > now:
            self._idle_pending.add(lk)
            self.push(due, _IDLE, lk, None, None)
            return
        self._last_use.pop(lk, None)
        # an idle, non-active link: the driver closes it without bothering the engines
        del self.ladj[a][b]
        del self.ladj[b][a]

    # ------------------------------------------------------------------ failures
    def fail_later(self, i: int, peer: str, when: float) -> None:
        """Tell node ``i`` at ``when`` that its link to ``peer`` failed (once pending)."""
        key = (i, peer)
        if key in self._fail_pending:
            return
        self._fail_pending.add(key)
        self.push(when, _FAIL, i, peer, None)

    def fail_due(self, i: int, peer: str) -> None:
        """The ``_FAIL`` event for ``(i, peer)`` is being handled: a new one may follow."""
        self._fail_pending.discard((i, peer))

    def cut(self, i: int, now: float) -> None:
        """Node ``i`` crashed: its links break, live peers see them fail later."""
        adj = self.ladj[i]
        addr_i = self.addr[i]
        for j in list(adj):
            del adj[j]
            if self.ladj[j].pop(i, None) is not None and self.alive[j]:
                self.fail_later(j, addr_i, now + self.hb_delay)

    def partition(self, groups: Sequence[Iterable[int]], now: float) -> None:
        """Split the nodes into ``groups`` (see :meth:`Simulator.partition`)."""
        gid = [0] * len(self.ladj)
        for g, members in enumerate(groups, start=1):
            for i in members:
                gid[i] = g
        self.group = gid
        self.partitioned = True
        for i in range(len(gid)):
            gi = gid[i]
            adj = self.ladj[i]
            for j in [j for j in adj if gid[j] != gi]:
                del adj[j]  # j's own entry, if any, is handled in j's turn
                if self.alive[i]:
                    self.fail_later(i, self.addr[j], now + self.hb_delay)

    def heal(self) -> None:
        """End every partition."""
        self.group = [0] * len(self.ladj)
        self.partitioned = False

    def purge(self, now: float) -> None:
        """Forget link state that can no longer matter (every 30 virtual seconds)."""
        # arrival times already in the past: FIFO only matters for what is in flight
        self._last = {k: v for k, v in self._last.items() if v > now}
        if self._dead_dir:
            # a refusal matters while the sender may still use that connection
            ladj = self.ladj
            last = self._last
            self._dead_dir = {
                k: e
                for k, e in self._dead_dir.items()
                if ladj[k >> _SHIFT].get(k & _MASK) == e or k in last
            }
        self.next_purge = now + 30.0


class Simulator:
    """N engines on a simulated network with a virtual clock.

    ``engine_factory`` defaults to :class:`gossipfast.engine.Engine`; tests pass any class
    with the same interface. ``fail_delay`` overrides the failure-detection delay
    (default: ``config.heartbeat_timeout`` for open links, ``config.connect_timeout``
    for dials); ``dial_rtts`` is the handshake cost, in round trips, of a new link.
    With no ``config``, :data:`SIM_CONFIG` is used: the defaults with a 4,096-seq dedup
    window (simulated broadcast rates are low, and 10,000 nodes each tracking every origin
    with the production window would need gigabytes).

    The links between the nodes are its :class:`Network` (``net``); the simulator runs
    the event loop, feeds the engines and routes what they drain, and keeps the figures.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        seed: int = 1,
        latency: tuple[float, float] = (0.010, 0.050),
        jitter: float = 0.0,
        loss: float = 0.0,
        fail_delay: float | None = None,
        dial_rtts: float = 1.0,
        idle_close: float = 2.0,
        engine_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.config = config if config is not None else SIM_CONFIG
        self.seed = seed
        self.rng = random.Random(seed)
        self.factory = engine_factory if engine_factory is not None else _default_engine_factory()
        self.now = 0.0
        # per node
        self.engines: list[Any] = []
        self.addr: list[str] = []
        self.index: dict[str, int] = {}
        self.alive = bytearray()
        self.tick_at: list[float] = []
        self.born: list[float] = []  # when each node was added
        self.act: list[set[int]] = []  # active views as told by NeighborUp/NeighborDown
        self.departed: dict[int, str] = {}  # index -> "crashed" | "left"
        self.net = Network(
            self.rng,
            self.alive,
            self.addr,
            self.act,
            seed=seed,
            latency=latency,
            jitter=jitter,
            loss=loss,
            hb_delay=self.config.heartbeat_timeout if fail_delay is None else fail_delay,
            dial_delay=self.config.connect_timeout if fail_delay is None else fail_delay,
            dial_rtts=dial_rtts,
            idle_close=idle_close,
        )
        # figures
        self._type_count: dict[type, int] = {_GOSSIP: 0}
        self.bcasts: dict[tuple[int, int], BroadcastRecord] = {}
        self.bcast_order: list[BroadcastRecord] = []
        self.unknown_deliveries = 0
        self.unknown_sends = 0  # frames addressed to an address no node has
        self.unknown_events = 0  # NeighborUp/Down naming an address no node has
        self.member_downs = 0  # MemberDown events, all nodes (the member-list scenario)
        self.event_count = 0
        self.engine_calls = 0
        self.wall = 0.0
        # optional per-node delivery hook (used by tests)
        self.on_delivery: Callable[[int, int, int, int, float], None] | None = None

    # ------------------------------------------------------------------ nodes
    def add_node(self) -> int:
        """Create one engine (not yet joined); returns its index."""
        i = len(self.engines)
        if i >= MAX_NODES:
            raise ValueError(f"the simulator holds at most {MAX_NODES} nodes")
        address = f"n{i}:1"
        eng = self.factory(
            address,
            self.config,
            node_id=f"n{i}",
            incarnation=self.rng.getrandbits(31) + 1,
            rng=random.Random(_mix64(self.seed * 1_000_003 + i)),
        )
        self.engines.append(eng)
        self.addr.append(address)
        self.index[address] = i
        self.alive.append(1)
        self.tick_at.append(math.inf)
        self.born.append(self.now)
        self.act.append(set())
        self.net.add_node()
        self._after(i, eng, self.now)
        return i

    def join(self, i: int, seeds: Sequence[int]) -> None:
        """Node ``i`` joins through the nodes ``seeds`` (now)."""
        eng = self.engines[i]
        eng.join([self.addr[s] for s in seeds], self.now)
        self.engine_calls += 1
        self._after(i, eng, self.now)

    def live(self) -> list[int]:
        """Indices of the nodes that are up."""
        alive = self.alive
        return [i for i in range(len(alive)) if alive[i]]

    def broadcast(self, i: int, payload: bytes = b"", tag: str = "") -> tuple[int, int]:
        """Node ``i`` broadcasts ``payload`` now; returns the message id."""
        if not self.alive[i]:
            raise ValueError(f"node {i} is down")
        eng = self.engines[i]
        key = tuple(eng.broadcast(payload, self.now))
        self.engine_calls += 1
        rec = BroadcastRecord(key, i, self.now, len(self.engines), tag)  # type: ignore[arg-type]
        self.bcasts[key] = rec  # type: ignore[index]
        self.bcast_order.append(rec)
        self._after(i, eng, self.now)
        return key  # type: ignore[return-value]

    def leave(self, i: int) -> None:
        """Node ``i`` leaves gracefully now: its goodbyes are flushed, then it is gone."""
        if not self.alive[i]:
            return
        eng = self.engines[i]
        eng.leave(self.now)
        self.engine_calls += 1
        self._after(i, eng, self.now)
        # the process exits: every link still open closes cleanly
        net = self.net
        for j in list(net.ladj[i]):
            net.close_link(i, j, self.now)
        self.alive[i] = 0
        self.departed[i] = "left"

    def crash(self, nodes: Iterable[int]) -> None:
        """Crash ``nodes`` now: they stop at once; linked peers detect it later."""
        down = [i for i in nodes if self.alive[i]]
        for i in down:
            self.alive[i] = 0
            self.departed[i] = "crashed"
        for i in down:
            self.net.cut(i, self.now)

    def crash_fraction(self, fraction: float) -> list[int]:
        """Crash a random ``fraction`` of the live nodes; returns who crashed."""
        live = self.live()
        k = round(fraction * len(live))
        victims = sorted(self.rng.sample(live, k))
        self.crash(victims)
        return victims

    def partition(self, groups: Sequence[Iterable[int]]) -> None:
        """Split the network: traffic between different groups is dropped from now on.

        Nodes not listed in any group form one more group. Links across groups break:
        both ends see ``"failed"`` after the detection delay.
        """
        self.net.partition(groups, self.now)

    def heal(self) -> None:
        """End every partition: all nodes can reach each other again."""
        self.net.heal()

    def at(self, when: float, fn: Callable[[float], None]) -> None:
        """Run ``fn(now)`` at virtual time ``when`` (scenario scripting)."""
        self.net.push(when, _CALL, 0, 0, fn)

    # ------------------------------------------------------------------ loop
    def run_until(self, t_end: float) -> None:
        """Process every event up to virtual time ``t_end``; the clock ends there."""
        w0 = time.perf_counter()
        gc_saved = gc.get_threshold()
        if gc_saved[0] and gc_saved[0] < _GC_THRESHOLD[0]:
            gc.set_threshold(*_GC_THRESHOLD)
        try:
            self._loop(t_end)
        finally:
            if gc.get_threshold() == _GC_THRESHOLD:
                gc.set_threshold(*gc_saved)
            self.now = max(self.now, t_end)
            self.wall += time.perf_counter() - w0

    def _loop(self, t_end: float) -> None:
        net = self.net
        heap = net.heap
        pop = heapq.heappop
        engines = self.engines
        alive = self.alive
        addr = self.addr
        n_events = 0
        calls = 0
        while heap and heap[0][0] <= t_end:
            t, _, kind, a, b, c, msgs = pop(heap)
            self.now = t
            n_events += 1
            if kind == _DELIVER:
                ia = a
                ib = b
                if not alive[ib] or not net.arrives(ia, ib, c):
                    continue
                eng = engines[ib]
                eng.on_frame(addr[ia], msgs, t)
                calls += 1
                self._after(ib, eng, t)
            elif kind == _TICK:
                ia = a
                if not alive[ia] or self.tick_at[ia] != t:
                    continue  # stale: a sooner tick replaced it, or the node is gone
                self.tick_at[ia] = math.inf
                eng = engines[ia]
                eng.tick(t)
                calls += 1
                self._after(ia, eng, t)
            elif kind == _FAIL:
                net.fail_due(a, b)
                if not alive[a]:
                    continue
                eng = engines[a]
                eng.on_disconnected(b, "failed", t)
                calls += 1
                self._after(a, eng, t)
            elif kind == _CLOSED:
                if not net.eof(a, b, c) or not alive[a]:
                    continue
                eng = engines[a]
                eng.on_disconnected(addr[b], "closed", t)
                calls += 1
                self._after(a, eng, t)
            elif kind == _IDLE:
                net.idle_check(a, t)
            else:  # _CALL
                c(t)
            if t >= net.next_purge:
                net.purge(t)
        self.event_count += n_events
        self.engine_calls += calls

    def run_for(self, dt: float) -> None:
        """Advance the clock by ``dt`` seconds."""
        self.run_until(self.now + dt)

    # ------------------------------------------------------------------ outputs
    def _after(self, i: int, eng: Any, now: float) -> None:
        """Drain engine ``i`` after an input: route, record, reschedule its tick."""
        outbox, closing, deliveries, events = eng.drain()
        if events:
            self._on_events(i, events, now)
        if deliveries:
            self._on_deliveries(i, deliveries, now)
        net = self.net
        if outbox:
            index = self.index
            for peer, msgs in outbox.items():
                if not msgs:
                    continue
                self._count(msgs)
                jo = index.get(peer)
                if jo is None:
                    self.unknown_sends += 1
                    net.fail_later(i, peer, now + net.dial_delay)
                else:
                    net.send(i, jo, msgs, now)
        if closing:
            index = self.index
            for peer in closing:
                jc = index.get(peer)
                if jc is not None:
                    net.close_link(i, jc, now)
        ndo = eng.next_deadline()
        if ndo is None:
            return
        nd = ndo
        cur = self.tick_at[i]
        if nd < cur:
            if nd <= now:
                # a wheel may report a slot early; never spin at the same instant
                nd = now + 1e-3
                if nd >= cur:
                    return
            self.tick_at[i] = nd
            net.seq += 1
            heapq.heappush(net.heap, (nd, net.seq, _TICK, i, None, None, None))

    def _on_events(self, i: int, events: list, now: float) -> None:
        act = self.act[i]
        index = self.index
        for ev in events:
            name = type(ev).__name__
            if name == "Gap" or name == "MemberUp":
                continue  # lost messages: the broadcast records count them anyway
            if name == "MemberDown":
                self.member_downs += 1
                continue
            j = index.get(ev.peer)
            if j is None:
                self.unknown_events += 1
                continue
            if name == "NeighborUp":
                act.add(j)
            else:
                act.discard(j)
                if j in self.net.ladj[i]:
                    self.net.schedule_idle(i, j, now)

    def _on_deliveries(self, i: int, deliveries: list, now: float) -> None:
        bcasts = self.bcasts
        hook = self.on_delivery
        for d in deliveries:
            origin, seq, hops = d[0], d[1], d[2]
            rec = bcasts.get((origin, seq))
            if rec is None:
                self.unknown_deliveries += 1
                continue
            if i < rec.n_at_send:
                if rec.seen[i]:
                    rec.dup += 1
                    continue
                rec.seen[i] = 1
                rec.at[i] = now
            rec.hops.append(hops)
            rec.latency.append(now - rec.t0)
            if hook is not None:
                hook(i, origin, seq, hops, now)

    def _count(self, msgs: list) -> None:
        """Count sent messages by type, and per broadcast what they carried or asked."""
        tc = self._type_count
        bcasts = self.bcasts
        for m in msgs:
            tp = type(m)
            tc[tp] = tc.get(tp, 0) + 1
            if tp is _GOSSIP:
                rec = bcasts.get((m.origin, m.seq))
                if rec is not None:
                    rec.sent += 1
            elif tp is _IHAVE:
                # runs [o, first, last, hops, ...]: each id of a run is announced
                runs = m.runs
                for k in range(0, len(runs) - 3, 4):
                    o = runs[k]
                    for s in range(runs[k + 1], runs[k + 2] + 1):
                        rec = bcasts.get((o, s))
                        if rec is not None:
                            rec.ihave += 1
            elif tp is _GRAFT or tp is _WANT:
                # Graft [o, s, ...], Want [o, first, last, ...] (a first message fetched
                # on the anchored tree: [o, s, s]; catch-up ranges count by their first
                # id); a Want is a request, as a Graft is
                ids = m.ranges if tp is _WANT else m.ids
                step = 2 if tp is _GRAFT else 3
                for k in range(0, len(ids) - step + 1, step):
                    rec = bcasts.get((ids[k], ids[k + 1]))
                    if rec is not None:
                        rec.graft += 1

    # ------------------------------------------------------------------ figures
    @property
    def msg_counts(self) -> dict[str, int]:
        """Messages sent so far, by wire type name."""
        items = sorted(self._type_count.items(), key=_tname)
        return {tp.__name__: n for tp, n in items if n}

    @property
    def ladj(self) -> list[dict[int, int]]:
        """Open links per node, each end's view: peer index -> connection (``net``'s)."""
        return self.net.ladj

    @property
    def lost(self) -> int:
        """Messages the network lost (``loss``)."""
        return self.net.lost

    @property
    def dropped(self) -> int:
        """Messages sent to crashed or cut-off nodes."""
        return self.net.dropped

    def link_latency(self, i: int, j: int) -> float:
        """The fixed base latency of the link between nodes ``i`` and ``j``."""
        return self.net.link_latency(i, j)

    def active_graph(self) -> dict[int, list[int]]:
        """Live node -> live active peers (:func:`gossipfast.sim.figures.active_graph`)."""
        return figures.active_graph(self)

    def broadcast_figures(
        self, rec: BroadcastRecord, window: float = 2.0, grace: float = 1.0
    ) -> dict[str, Any]:
        """Reliability, RMR, LDH, latency and control traffic of one broadcast
        (:func:`gossipfast.sim.figures.broadcast_figures`)."""
        return figures.broadcast_figures(self, rec, window, grace)

    def view_consistency(self) -> int:
        """Live nodes whose NeighborUp/Down events disagree with their active_view."""
        return figures.view_consistency(self)


def _tname(item: tuple[type, int]) -> str:
    return item[0].__name__
