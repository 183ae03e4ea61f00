# cython: annotation_typing=False, wraparound=True, boundscheck=True, embedsignature=False
# (no embedded signatures: click shows the docstring of sim_command as its --help)
"""Deterministic simulator: many engines, one virtual clock, an in-memory network.

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

Scenarios (:func:`build_overlay`, :func:`broadcast_rounds`, :func:`crash_scenario`,
:func:`partition_scenario`, :func:`churn_scenario`) return plain dicts of figures;
:func:`sim_command` is the ``gossipfast sim`` console command.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import json
import math
import random
import sys
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import click
import msgspec

from . import wire
from .config import Config, config_overrides

__all__ = [
    "BroadcastRecord",
    "Simulator",
    "bfs_levels",
    "broadcast_rounds",
    "build_overlay",
    "churn_scenario",
    "crash_scenario",
    "cyclic_gc_paused",
    "graph_metrics",
    "lowest_latency_parents",
    "partition_scenario",
    "run_default",
    "sim_command",
    "summarize",
    "undirected",
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

#: GC thresholds while the event loop runs. The loop allocates millions
#: of short-lived containers (heap entries, drained outboxes) next to millions of
#: long-lived ones (engine state); at the default 700 the collector ran ~30% of the time
#: and found almost no cycles (a few hundred objects in a 3,000-node run).
_GC_THRESHOLD = (50_000, 50, 100)

_GOSSIP = wire.Gossip
_IHAVE = wire.IHave
_GRAFT = wire.Graft
_WANT = wire.Want


@contextlib.contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Run a whole simulation with Python's cyclic garbage collector off.

    For a process that does nothing but simulate (``gossipfast sim``,
    ``bench/sim_scale.py``). The engines and the simulator free their garbage by
    reference counting (a 3,000-node run leaves a few hundred objects in cycles); the
    collector's full passes over millions of long-lived objects took 9% of such a run.
    :meth:`Simulator.run_until` alone only raises the thresholds while it runs.
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
    from .engine import Engine  # imported late: the simulator also runs test engines

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


class Simulator:
    """N engines on a simulated network with a virtual clock.

    ``engine_factory`` defaults to :class:`gossipfast.engine.Engine`; tests pass any class
    with the same interface. ``fail_delay`` overrides the failure-detection delay
    (default: ``config.heartbeat_timeout`` for open links, ``config.connect_timeout``
    for dials); ``dial_rtts`` is the handshake cost, in round trips, of a new link.
    With no ``config``, :data:`SIM_CONFIG` is used: the defaults with a 4,096-seq dedup
    window (simulated broadcast rates are low, and 10,000 nodes each tracking every origin
    with the production window would need gigabytes).
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
        lo, hi = latency
        if not (0.0 <= lo <= hi):
            raise ValueError(f"latency must satisfy 0 <= lo <= hi, got {latency!r}")
        if not (0.0 <= loss < 1.0):
            raise ValueError(f"loss must be in [0, 1), got {loss!r}")
        self.config = config if config is not None else SIM_CONFIG
        self.seed = seed
        self.rng = random.Random(seed)
        self.lat_lo = float(lo)
        self.lat_span = float(hi - lo)
        self.jitter = float(jitter)
        self.loss = float(loss)
        self.hb_delay = self.config.heartbeat_timeout if fail_delay is None else fail_delay
        self.dial_delay = self.config.connect_timeout if fail_delay is None else fail_delay
        self.dial_rtts = float(dial_rtts)
        self.idle_close = float(idle_close)
        self._plain = not loss and not jitter
        self.factory = engine_factory if engine_factory is not None else _default_engine_factory()
        self._lat_salt = _mix64(seed * 0x2545F4914F6CDD1D + 1)

        self.now = 0.0
        self.heap: list[tuple] = []
        self._seq = 0
        # per node
        self.engines: list[Any] = []
        self.addr: list[str] = []
        self.index: dict[str, int] = {}
        self.alive = bytearray()
        self.group: list[int] = []
        self.tick_at: list[float] = []
        self.born: list[float] = []  # when each node was added
        self.act: list[set[int]] = []  # active views as told by NeighborUp/NeighborDown
        # open links, each end's own view: peer -> link epoch. After one end closes, the
        # other keeps its entry (half-closed) until the EOF reaches it.
        self.ladj: list[dict[int, int]] = []
        self.departed: dict[int, str] = {}  # index -> "crashed" | "left"
        # links
        self._epoch = 0
        self._last: dict[int, float] = {}  # direction key -> latest scheduled arrival
        self._lat: dict[int, float] = {}  # link key -> latency (cache of _link_lat)
        self._last_use: dict[int, float] = {}  # link key -> last send (idle links only)
        self._idle_pending: set[int] = set()
        self._dead_dir: dict[int, int] = {}  # direction key -> epoch closed by receiver
        self._fail_pending: set[tuple[int, str]] = set()
        self.partitioned = False
        # figures
        self.msg_count: dict[str, int] = {}
        self._type_count: dict[type, int] = {_GOSSIP: 0}
        self.bytes_lost = 0
        self.lost = 0
        self.dropped = 0  # messages to dead / cut-off nodes
        self.bcasts: dict[tuple[int, int], BroadcastRecord] = {}
        self.bcast_order: list[BroadcastRecord] = []
        self.unknown_deliveries = 0
        self.unknown_sends = 0  # frames addressed to an address no node has
        self.unknown_events = 0  # NeighborUp/Down naming an address no node has
        self.event_count = 0
        self.engine_calls = 0
        self.wall = 0.0
        self._next_purge = 30.0
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
        self.group.append(0)
        self.tick_at.append(math.inf)
        self.born.append(self.now)
        self.act.append(set())
        self.ladj.append({})
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
        for j in list(self.ladj[i]):
            self._close_link(i, j, self.now, notify=True)
        self.alive[i] = 0
        self.departed[i] = "left"

    def crash(self, nodes: Iterable[int]) -> None:
        """Crash ``nodes`` now: they stop at once; linked peers detect it later."""
        now = self.now
        down = [i for i in nodes if self.alive[i]]
        for i in down:
            self.alive[i] = 0
            self.departed[i] = "crashed"
        for i in down:
            adj = self.ladj[i]
            addr_i = self.addr[i]
            for j in list(adj):
                del adj[j]
                if self.ladj[j].pop(i, None) is not None and self.alive[j]:
                    self._fail_later(j, addr_i, now + self.hb_delay)

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
        gid = [0] * len(self.engines)
        for g, members in enumerate(groups, start=1):
            for i in members:
                gid[i] = g
        self.group = gid
        self.partitioned = True
        now = self.now
        for i in range(len(self.engines)):
            gi = gid[i]
            adj = self.ladj[i]
            for j in [j for j in adj if gid[j] != gi]:
                del adj[j]  # j's own entry, if any, is handled in j's turn
                if self.alive[i]:
                    self._fail_later(i, self.addr[j], now + self.hb_delay)

    def heal(self) -> None:
        """End every partition: all nodes can reach each other again."""
        self.group = [0] * len(self.engines)
        self.partitioned = False

    def at(self, when: float, fn: Callable[[float], None]) -> None:
        """Run ``fn(now)`` at virtual time ``when`` (scenario scripting)."""
        self._push(when, _CALL, 0, 0, fn)

    # ------------------------------------------------------------------ loop
    def _push(self, t: float, kind: int, a: Any, b: Any, c: Any) -> None:
        self._seq += 1
        heapq.heappush(self.heap, (t, self._seq, kind, a, b, c, None))

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
        heap = self.heap
        pop = heapq.heappop
        engines = self.engines
        alive = self.alive
        addr = self.addr
        dead_dir = self._dead_dir
        n_events = 0
        calls = 0
        while heap and heap[0][0] <= t_end:
            t, _, kind, a, b, c, msgs = pop(heap)
            self.now = t
            n_events += 1
            if kind == _DELIVER:
                ia = a
                ib = b
                if not alive[ib]:
                    continue
                if dead_dir and dead_dir.get((ia << _SHIFT) | ib) == c:
                    continue  # the receiver closed this connection: data is refused
                if self.partitioned and self.group[ia] != self.group[ib]:
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
                self._fail_pending.discard((a, b))
                if not alive[a]:
                    continue
                eng = engines[a]
                eng.on_disconnected(b, "failed", t)
                calls += 1
                self._after(a, eng, t)
            elif kind == _CLOSED:
                adj = self.ladj[a]
                if adj.get(b) != c:
                    continue  # a closed it too, or a newer connection replaced this one
                del adj[b]
                if not alive[a]:
                    continue
                eng = engines[a]
                eng.on_disconnected(addr[b], "closed", t)
                calls += 1
                self._after(a, eng, t)
            elif kind == _IDLE:
                self._idle_check(a, t)
            else:  # _CALL
                c(t)
            if t >= self._next_purge:
                self._purge(t)
                dead_dir = self._dead_dir
        self.event_count += n_events
        self.engine_calls += calls

    def run_for(self, dt: float) -> None:
        """Advance the clock by ``dt`` seconds."""
        self.run_until(self.now + dt)

    def _purge(self, now: float) -> None:
        # forget arrival times already in the past: FIFO only matters for what is in flight
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
        self._next_purge = now + 30.0

    # ------------------------------------------------------------------ outputs
    def _after(self, i: int, eng: Any, now: float) -> None:
        """Drain engine ``i`` after an input: route, record, reschedule its tick."""
        outbox, closing, deliveries, events = eng.drain()
        if events:
            self._on_events(i, events, now)
        if deliveries:
            self._on_deliveries(i, deliveries, now)
        if outbox:
            # fast path, inlined: an open link to an active peer on a plain network;
            # everything else (dials, dead or cut-off peers, loss, jitter) in _send
            index = self.index
            adj = self.ladj[i]
            act_i = self.act[i]
            alive = self.alive
            plain = self._plain and not self.partitioned
            last = self._last
            latc = self._lat
            heap = self.heap
            for peer, msgs in outbox.items():
                if not msgs:
                    continue
                jo = index.get(peer)
                if plain and jo in act_i and alive[jo]:
                    j = jo
                    epoch = adj.get(j)
                    if epoch is not None:
                        if len(msgs) == 1 and type(msgs[0]) is _GOSSIP:
                            m = msgs[0]
                            self._type_count[_GOSSIP] += 1
                            rec = self.bcasts.get((m.origin, m.seq))
                            if rec is not None:
                                rec.sent += 1
                        else:
                            self._count(msgs)
                        lk = (i << _SHIFT) | j if i < j else (j << _SHIFT) | i
                        lato = latc.get(lk)
                        lat = self._link_lat(lk) if lato is None else lato
                        t = now + lat
                        dk = (i << _SHIFT) | j
                        prev = last.get(dk)
                        if prev is not None and t < prev:
                            t = prev
                        last[dk] = t
                        self._seq += 1
                        heapq.heappush(heap, (t, self._seq, _DELIVER, i, j, epoch, msgs))
                        continue
                self._send(i, peer, msgs, now)
        if closing:
            index = self.index
            for peer in closing:
                jc = index.get(peer)
                if jc is not None:
                    self._close_link(i, jc, now, notify=True)
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
            self._seq += 1
            heapq.heappush(self.heap, (nd, self._seq, _TICK, i, None, None, None))

    def _on_events(self, i: int, events: list, now: float) -> None:
        act = self.act[i]
        index = self.index
        for ev in events:
            if type(ev).__name__ == "Gap":
                continue  # lost messages: the broadcast records count them anyway
            j = index.get(ev.peer)
            if j is None:
                self.unknown_events += 1
                continue
            if type(ev).__name__ == "NeighborUp":
                act.add(j)
            else:
                act.discard(j)
                if j in self.ladj[i]:
                    self._schedule_idle(i, j, now)

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

    def _send(self, i: int, peer: str, msgs: list, now: float) -> None:
        if len(msgs) == 1 and type(msgs[0]) is _GOSSIP:
            # the common case, inlined: one payload on a tree link
            m = msgs[0]
            self._type_count[_GOSSIP] += 1
            rec = self.bcasts.get((m.origin, m.seq))
            if rec is not None:
                rec.sent += 1
        else:
            self._count(msgs)
        j = self.index.get(peer)
        if j is None:
            self.unknown_sends += 1
            self._fail_later(i, peer, now + self.dial_delay)
            return
        adj = self.ladj[i]
        epoch = adj.get(j)
        if not self.alive[j] or (self.partitioned and self.group[i] != self.group[j]):
            self.dropped += len(msgs)
            delay = self.hb_delay if epoch is not None else self.dial_delay
            if epoch is not None:
                del adj[j]
            self._fail_later(i, peer, now + delay)
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
        lat = self._link_lat(lk) if lato is None else lato
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
            t = last
        self._last[dk] = t
        self._seq += 1
        heapq.heappush(self.heap, (t, self._seq, _DELIVER, i, j, epoch, msgs))
        if j not in self.act[i] and i not in self.act[j]:
            self._last_use[lk] = now
            if lk not in self._idle_pending:
                self._idle_pending.add(lk)
                self._push(now + self.idle_close, _IDLE, lk, None, None)

    def _schedule_idle(self, i: int, j: int, now: float) -> None:
        a, b = (i, j) if i < j else (j, i)
        lk = (a << _SHIFT) | b
        self._last_use[lk] = now
        if lk not in self._idle_pending:
            self._idle_pending.add(lk)
            self._push(now + self.idle_close, _IDLE, lk, None, None)

    def _idle_check(self, lk: int, now: float) -> None:
        self._idle_pending.discard(lk)
        a, b = lk >> _SHIFT, lk & _MASK
        ea = self.ladj[a].get(b)
        if ea is None or ea != self.ladj[b].get(a) or b in self.act[a] or a in self.act[b]:
            self._last_use.pop(lk, None)
            return
        due = self._last_use.get(lk, now) + self.idle_close
        if due > now:
            self._idle_pending.add(lk)
            self._push(due, _IDLE, lk, None, None)
            return
        self._last_use.pop(lk, None)
        # an idle, non-active link: the driver closes it without bothering the engines
        del self.ladj[a][b]
        del self.ladj[b][a]

    def _close_link(self, i: int, j: int, now: float, *, notify: bool) -> None:
        """``i`` closes its link to ``j``: sent data still arrives, then ``j`` sees EOF."""
        epoch = self.ladj[i].pop(j, None)
        if epoch is None:
            return
        # data j -> i, in flight or sent before j sees the EOF, is refused by i
        self._dead_dir[(j << _SHIFT) | i] = epoch
        if not notify:
            self.ladj[j].pop(i, None)
        elif self.ladj[j].get(i) == epoch:
            dk = (i << _SHIFT) | j
            t = now + self.link_latency(i, j)
            last = self._last.get(dk)
            if last is not None and t < last:
                t = last
            self._last[dk] = t
            self._push(t, _CLOSED, j, i, epoch)

    def _fail_later(self, i: int, peer: str, when: float) -> None:
        key = (i, peer)
        if key in self._fail_pending:
            return
        self._fail_pending.add(key)
        self._push(when, _FAIL, i, peer, None)

    # ------------------------------------------------------------------ figures
    @property
    def msg_counts(self) -> dict[str, int]:
        """Messages sent so far, by wire type name."""
        items = sorted(self._type_count.items(), key=_tname)
        return {tp.__name__: n for tp, n in items if n}

    def link_latency(self, i: int, j: int) -> float:
        """The fixed base latency of the link between nodes ``i`` and ``j``."""
        return self._link_lat((i << _SHIFT) | j if i < j else (j << _SHIFT) | i)

    def _link_lat(self, lk: int) -> float:
        lat = self.lat_lo + self.lat_span * (_mix64(lk ^ self._lat_salt) >> 11) * (1.0 / (1 << 53))
        if len(self._lat) >= 1 << 20:
            self._lat.clear()  # a cache, bounded: the value is a pure function of the pair
        self._lat[lk] = lat
        return lat

    def active_graph(self) -> dict[int, list[int]]:
        """Live node -> live active peers, read from each engine's ``active_view``."""
        index = self.index
        alive = self.alive
        out: dict[int, list[int]] = {}
        for i in self.live():
            peers = []
            for p in self.engines[i].active_view:
                j = index.get(p)
                if j is not None and alive[j]:
                    peers.append(j)
            out[i] = peers
        return out

    def broadcast_figures(
        self, rec: BroadcastRecord, window: float = 2.0, grace: float = 1.0
    ) -> dict[str, Any]:
        """Reliability, RMR, LDH, latency and control traffic of one broadcast.

        ``reliability`` is the share of the live nodes that delivered it by now; a node
        counts if it is up now and was added at least ``grace`` seconds before the send
        (a join takes a few round trips). ``reliability_window`` counts only deliveries
        within ``window`` seconds of the send.
        """
        alive = self.alive
        born = self.born
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
            "lat_p50": _pct(lat, 0.50),
            "lat_p99": _pct(lat, 0.99),
            "lat_max": lat[-1] if lat else 0.0,
            "ihave": rec.ihave,
            "graft": rec.graft,
            "dup_deliveries": rec.dup,
        }

    def view_consistency(self) -> int:
        """Live nodes whose NeighborUp/Down events disagree with their active_view."""
        bad = 0
        index = self.index
        for i in self.live():
            view = {index.get(p, -1) for p in self.engines[i].active_view}
            if view != self.act[i]:
                bad += 1
        return bad


def _tname(item: tuple[type, int]) -> str:
    return item[0].__name__


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[k]


# ---------------------------------------------------------------------- graph figures
def graph_metrics(graph: dict[int, list[int]]) -> dict[str, Any]:
    """Connectivity, degrees, clustering and asymmetry of an active-view graph.

    ``graph`` maps each live node to its live active peers (directed). Connectivity and
    clustering use the undirected graph; ``asymmetric`` counts directed edges whose
    reverse is missing.
    """
    und = undirected(graph)
    asym = sum(1 for i, peers in graph.items() for j in peers if i not in graph.get(j, ()))
    components = 0
    largest = 0
    seen: set[int] = set()
    for s in graph:
        if s in seen:
            continue
        components += 1
        seen.add(s)
        q = deque([s])
        size = 0
        while q:
            u = q.popleft()
            size += 1
            for v in und[u]:
                if v not in seen:
                    seen.add(v)
                    q.append(v)
        largest = max(largest, size)
    degrees = [len(p) for p in graph.values()]
    cc_sum = 0.0
    for nb in und.values():
        k = len(nb)
        if k < 2:
            continue
        links = 0
        for u in nb:
            links += len(und[u] & nb)
        cc_sum += links / (k * (k - 1))  # each triangle edge counted twice over 2*C(k,2)
    n = len(graph)
    return {
        "live": n,
        "connected": components == 1,
        "components": components,
        "largest_component": largest,
        "degree_min": min(degrees) if degrees else 0,
        "degree_mean": (sum(degrees) / n) if n else 0.0,
        "degree_max": max(degrees) if degrees else 0,
        "isolated": sum(1 for d in degrees if d == 0),
        "clustering": cc_sum / n if n else 0.0,
        "asymmetric": asym,
    }


def flood_ldh(sim: Simulator, graph: dict[int, list[int]], source: int) -> tuple[int, int]:
    """LDH of an eager flood from ``source`` over ``graph``, and the BFS eccentricity.

    An eager flood forwards every new message to every active peer, so each node gets
    the copy that arrives first: its hop count is that of the lowest-latency path
    (Dijkstra over the links' latencies). The BFS eccentricity (fewest hops) is a lower
    bound of any LDH.
    """
    und = undirected(graph)
    parent = lowest_latency_parents(sim, und, source)
    hops = {source: 0}
    for v in parent:  # parents come before their children
        p = parent[v]
        if p is not None:
            hops[v] = hops[p] + 1
    flood = max(hops.values()) if hops else 0
    level = bfs_levels(und, source)
    return flood, max(level.values()) if level else 0


def lowest_latency_parents(
    sim: Simulator, adj: dict[int, set[int]], source: int
) -> dict[int, int | None]:
    """Parent of each node reached from ``source`` on its lowest-latency path (Dijkstra
    over the links' latencies), in the order the nodes are settled; ``source``'s is None.
    """
    dist = {source: 0.0}
    best: dict[int, int | None] = {source: None}
    parent: dict[int, int | None] = {}
    heap = [(0.0, source)]
    while heap:
        d, u = heapq.heappop(heap)
        if u in parent:
            continue
        parent[u] = best[u]
        for v in adj[u]:
            nd = d + sim.link_latency(u, v)
            if nd < dist.get(v, math.inf):
                dist[v] = nd
                best[v] = u
                heapq.heappush(heap, (nd, v))
    return parent


def undirected(graph: dict[int, list[int]]) -> dict[int, set[int]]:
    """The undirected graph of a directed one (edges to nodes outside it dropped)."""
    und: dict[int, set[int]] = {i: set() for i in graph}
    for i, peers in graph.items():
        for j in peers:
            if j in und:
                und[i].add(j)
                und[j].add(i)
    return und


def bfs_levels(adj: dict[int, set[int]], source: int) -> dict[int, int]:
    """Fewest hops from ``source`` to every node it reaches in ``adj``."""
    level = {source: 0}
    q = deque([source])
    while q:
        u = q.popleft()
        for v in adj[u]:
            if v not in level:
                level[v] = level[u] + 1
                q.append(v)
    return level


# ---------------------------------------------------------------------- scenarios
def build_overlay(
    sim: Simulator, n: int, *, join_rate: float = 500.0, settle: float = 20.0
) -> dict[str, Any]:
    """Add ``n`` nodes; each joins through a random earlier node, ``join_rate`` per second.

    Then run ``settle`` more seconds. Returns the graph figures of the overlay.
    """
    start = len(sim.engines)
    t0 = sim.now
    first = sim.add_node()
    if start > 0:
        sim.join(first, [sim.rng.choice(sim.live())])
    spacing = 1.0 / join_rate
    for k in range(1, n):
        sim.run_until(t0 + k * spacing)
        i = sim.add_node()
        while True:
            s = sim.rng.randrange(i)
            if sim.alive[s]:
                break
        sim.join(i, [s])
    sim.run_for(settle)
    out = graph_metrics(sim.active_graph())
    out["build_time"] = sim.now - t0
    return out


def broadcast_rounds(
    sim: Simulator,
    rounds: int,
    *,
    mode: str = "random",
    interval: float = 1.0,
    burst: int | None = None,
    drain: float = 5.0,
    tag: str | None = None,
) -> list[dict[str, Any]]:
    """``rounds`` rounds of broadcasts, ``interval`` apart, then ``drain`` seconds.

    ``mode``: "single" (one fixed sender, chosen at random), "random" (a random live
    sender each round) or "burst" (``burst`` random live senders at the same instant,
    every live node by default). Returns one figures dict per broadcast, in send order.
    """
    if mode not in ("single", "random", "burst"):
        raise ValueError(f"unknown mode {mode!r}")
    tag = tag or mode
    live = sim.live()
    fixed = sim.rng.choice(live)
    recs: list[BroadcastRecord] = []
    for r in range(rounds):
        live = [i for i in live if sim.alive[i]]
        if mode == "single":
            senders = [fixed] if sim.alive[fixed] else [sim.rng.choice(live)]
        elif mode == "random":
            senders = [sim.rng.choice(live)]
        else:
            k = len(live) if burst is None else min(burst, len(live))
            senders = sorted(sim.rng.sample(live, k))
        for s in senders:
            key = sim.broadcast(s, b"r%d" % r, tag=f"{tag}:{r}")
            recs.append(sim.bcasts[key])
        sim.run_for(interval)
    sim.run_for(drain)
    return [sim.broadcast_figures(rec) for rec in recs]


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def summarize(figs: Sequence[dict[str, Any]], skip_first: int = 0) -> dict[str, Any]:
    """Mean reliability / RMR / LDH and totals over per-broadcast figures."""
    use = list(figs[skip_first:]) or list(figs)
    return {
        "broadcasts": len(figs),
        "reliability": _mean([f["reliability"] for f in use]),
        "reliability_min": min((f["reliability"] for f in use), default=1.0),
        "reliability_window": _mean([f["reliability_window"] for f in use]),
        "rmr": _mean([f["rmr"] for f in use]),
        "rmr_max": max((f["rmr"] for f in use), default=0.0),
        "ldh": _mean([f["ldh"] for f in use]),
        "ldh_max": max((f["ldh"] for f in use), default=0),
        "lat_p50": _mean([f["lat_p50"] for f in use]),
        "lat_p99": _mean([f["lat_p99"] for f in use]),
        "lat_max": max((f["lat_max"] for f in use), default=0.0),
        "missed": sum(f["missed"] for f in figs),
        "ihave": _mean([f["ihave"] for f in use]),
        "graft": _mean([f["graft"] for f in use]),
        "dup_deliveries": sum(f["dup_deliveries"] for f in figs),
    }


def crash_scenario(
    sim: Simulator,
    fraction: float,
    *,
    heal_time: float = 60.0,
    probe_interval: float = 1.0,
    final_broadcasts: int = 10,
    drain: float = 5.0,
    window: float = 2.0,
) -> dict[str, Any]:
    """Crash ``fraction`` of the live nodes at once, then broadcast from random survivors.

    A probe broadcast goes out right after the crash and then every ``probe_interval``
    seconds for ``heal_time`` seconds; then ``final_broadcasts`` more (the "healed"
    figures). ``first_reliability`` is the first probe's share of survivors reached
    within ``window`` seconds (``first_reliability_eventual``: by the end of the run);
    ``healing_time`` is the send time (after the crash) of the first probe from which
    on every probe reached every survivor within ``window`` (None: never).
    """
    t_crash = sim.now
    victims = sim.crash_fraction(fraction)
    probes: list[BroadcastRecord] = []
    t = t_crash
    while t < t_crash + heal_time:
        live = sim.live()
        key = sim.broadcast(sim.rng.choice(live), b"probe", tag="probe")
        probes.append(sim.bcasts[key])
        t += probe_interval
        sim.run_until(t)
    final = broadcast_rounds(sim, final_broadcasts, mode="random", interval=0.5, drain=drain)
    pf = [sim.broadcast_figures(r, window) for r in probes]
    heal_at = None
    for k in range(len(pf) - 1, -1, -1):
        if pf[k]["reliability_window"] < 1.0:
            break
        heal_at = pf[k]["t"] - t_crash
    g = graph_metrics(sim.active_graph())
    fin = summarize(final)
    return {
        "fraction": fraction,
        "crashed": len(victims),
        "survivors": len(sim.live()),
        "first_reliability": pf[0]["reliability_window"] if pf else None,
        "first_reliability_eventual": pf[0]["reliability"] if pf else None,
        "probe_reliability_min": min(f["reliability_window"] for f in pf) if pf else None,
        "healing_time": heal_at,
        "healed_reliability": fin["reliability"],
        "healed_reliability_window": fin["reliability_window"],
        "healed_reliability_min": fin["reliability_min"],
        "healed_rmr": fin["rmr"],
        "healed_ldh": fin["ldh"],
        "connected": g["connected"],
        "components": g["components"],
        "largest_component": g["largest_component"],
        "degree_mean": g["degree_mean"],
        "probes": pf,
        "final": final,
    }


def partition_scenario(
    sim: Simulator,
    duration: float,
    *,
    shares: Sequence[float] = (0.5, 0.5),
    per_side: int = 5,
    merge_time: float = 60.0,
    drain: float = 30.0,
) -> dict[str, Any]:
    """Split the live nodes into random groups for ``duration`` s, then heal.

    ``shares`` gives each group's share of the live nodes: ``(0.5, 0.5)`` halves,
    ``(0.1, 0.9)`` an asymmetric split, three shares a three-way split. During the split
    each group sends ``per_side`` broadcasts (spread over the split). After healing,
    the overlay is checked every 0.1 simulated s for ``merge_time`` seconds to be one
    connected component (``merge_time`` in the result: seconds from the heal; None:
    not within the window); then ``drain`` more seconds, and every live node must have
    delivered every message of every group (``all_delivered``; messages older than
    ``store_max_age`` at the heal cannot be fetched any more). ``probes_per_node_s`` and
    ``control_per_node_s`` are the failed-peer probes and all membership messages
    (everything but Gossip, IHave, Graft, Prune, Digest and Want) sent per live node per
    second of the split.
    """
    live = sim.live()
    order = live[:]
    sim.rng.shuffle(order)
    total = sum(shares)
    groups: list[list[int]] = []
    start = 0
    for k, share in enumerate(shares):
        end = len(order) if k == len(shares) - 1 else start + round(share / total * len(order))
        groups.append(sorted(order[start:end]))
        start = end
    groups = [g for g in groups if g]
    t_split = sim.now
    probes0 = _probes(sim)
    control0 = _control_messages(sim.msg_counts)
    sim.partition(groups)
    recs: list[BroadcastRecord] = []
    step = duration / (per_side + 1)
    for k in range(per_side):
        sim.run_until(t_split + (k + 1) * step)
        for side in groups:
            cand = [i for i in side if sim.alive[i]]
            if cand:
                key = sim.broadcast(sim.rng.choice(cand), b"split", tag="split")
                recs.append(sim.bcasts[key])
    sim.run_until(t_split + duration)
    g_split = graph_metrics(sim.active_graph())
    per_node_s = 1.0 / (max(1, len(sim.live())) * duration) if duration > 0 else 0.0
    probes = (_probes(sim) - probes0) * per_node_s
    control = (_control_messages(sim.msg_counts) - control0) * per_node_s
    sim.heal()
    t_heal = sim.now
    # when does the overlay become one component again? (looked at every 0.1 s)
    merged_at = None
    k = 0
    while k < merge_time * 10:
        k += 1
        sim.run_until(t_heal + k / 10)
        if graph_metrics(sim.active_graph())["connected"]:
            merged_at = k / 10
            break
    sim.run_until(t_heal + merge_time)
    g = graph_metrics(sim.active_graph())
    sim.run_for(drain)
    figs = [sim.broadcast_figures(r) for r in recs]
    after = broadcast_rounds(sim, 5, mode="random", interval=0.5, drain=5.0)
    return {
        "duration": duration,
        "groups": [len(x) for x in groups],
        "components_during": g_split["components"],
        "merged": merged_at is not None and g["connected"],
        "merge_time": merged_at,
        "components": g["components"],
        "probes_per_node_s": probes,
        "control_per_node_s": control,
        "split_messages": len(figs),
        "all_delivered": all(f["missed"] == 0 for f in figs),
        "split_missed": sum(f["missed"] for f in figs),
        "split_reliability_min": min((f["reliability"] for f in figs), default=1.0),
        "after_reliability": summarize(after)["reliability"],
        "split": figs,
        "after": after,
    }


#: Message kinds of the broadcast layer (the rest is membership control traffic).
_BROADCAST_KINDS = frozenset(("Gossip", "IHave", "Graft", "Prune", "Digest", "Want"))


def _probes(sim: Simulator) -> int:
    # failed-peer probes of every engine (an engine without membership state has none)
    return sum(getattr(getattr(e, "hv", None), "probes", 0) for e in sim.engines)


def _control_messages(counts: dict[str, int]) -> int:
    return sum(n for k, n in counts.items() if k not in _BROADCAST_KINDS)


def churn_scenario(
    sim: Simulator,
    duration: float,
    *,
    rate: float = 5.0,
    broadcast_interval: float = 1.0,
    drain: float = 10.0,
) -> dict[str, Any]:
    """Joins and graceful leaves for ``duration`` s: ``rate`` of each per second.

    A random live node broadcasts every ``broadcast_interval`` seconds. Returns the
    broadcast summary (reliability over the nodes live at the end) and graph figures.
    """
    t0 = sim.now
    recs: list[BroadcastRecord] = []
    next_b = t0
    step = 1.0 / rate
    t = t0
    while t < t0 + duration:
        t += step
        sim.run_until(t)
        live = sim.live()
        if len(live) > 2:
            sim.leave(sim.rng.choice(live))
        live = sim.live()
        i = sim.add_node()
        sim.join(i, [sim.rng.choice(live)])
        if t >= next_b:
            live = sim.live()
            key = sim.broadcast(sim.rng.choice(live), b"churn", tag="churn")
            recs.append(sim.bcasts[key])
            next_b += broadcast_interval
    sim.run_for(drain)
    figs = [sim.broadcast_figures(r) for r in recs]
    out = summarize(figs)
    out.update(graph_metrics(sim.active_graph()))
    return out


# ---------------------------------------------------------------------- default run
def run_default(
    nodes: int = 1000,
    *,
    seed: int = 1,
    broadcasts: int = 10,
    latency: tuple[float, float] = (0.010, 0.050),
    loss: float = 0.0,
    fail: float = 0.0,
    partition: float = 0.0,
    split: Sequence[float] = (0.5, 0.5),
    config: Config | None = None,
    join_rate: float = 500.0,
    settle: float = 20.0,
) -> dict[str, Any]:
    """The ``gossipfast sim`` run: build, broadcast, then optional crash / partition.

    Returns the summary dict that ``--json`` prints (plus per-phase detail).
    """
    w0 = time.perf_counter()
    sim = Simulator(config, seed=seed, latency=latency, loss=loss)
    overlay = build_overlay(sim, nodes, join_rate=join_rate, settle=settle)
    figs = broadcast_rounds(sim, broadcasts, mode="random", interval=0.5, drain=5.0)
    result: dict[str, Any] = {
        "nodes": nodes,
        "seed": seed,
        "compiled": _compiled(),
        "overlay": overlay,
    }
    all_figs = list(figs)
    if fail > 0:
        crash = crash_scenario(sim, fail, heal_time=30.0)
        all_figs += crash["final"]
        result["crash"] = {k: v for k, v in crash.items() if k not in ("probes", "final")}
    if partition > 0:
        part = partition_scenario(sim, partition, shares=split)
        all_figs += part["split"] + part["after"]
        result["partition"] = {k: v for k, v in part.items() if k not in ("split", "after")}
    summ = summarize(all_figs)
    steady = summarize(figs)
    for k in ("lat_p50", "lat_p99", "lat_max"):
        summ[k] = steady[k]  # latency of the steady-state rounds, not of partitioned ones
    g = graph_metrics(sim.active_graph())
    result.update(summ)
    result.update(
        {
            "connected": g["connected"],
            "components": g["components"],
            "degree_min": g["degree_min"],
            "degree_mean": g["degree_mean"],
            "degree_max": g["degree_max"],
            "clustering": g["clustering"],
            "asymmetric": g["asymmetric"],
            "live": g["live"],
            "view_mismatch": sim.view_consistency(),
            "unknown_deliveries": sim.unknown_deliveries,
            "messages": sim.msg_counts,
            "sim_time": sim.now,
            "events": sim.event_count,
            "events_per_s": sim.event_count / sim.wall if sim.wall > 0 else 0.0,
            "seconds": time.perf_counter() - w0,
        }
    )
    result["_figs"] = all_figs
    return result


def _compiled() -> bool:
    try:
        import gossipfast

        return bool(gossipfast.COMPILED)
    except Exception:  # pragma: no cover - only if the package is half-built
        return False


def _parse_latency(text: str) -> tuple[float, float]:
    try:
        lo_s, hi_s = text.split(",")
        lo, hi = float(lo_s), float(hi_s)
    except ValueError:
        raise click.BadParameter("expected LO,HI in milliseconds, e.g. 10,50") from None
    if not (0 <= lo <= hi):
        raise click.BadParameter("expected 0 <= LO <= HI")
    return lo / 1000.0, hi / 1000.0


def _parse_split(text: str) -> tuple[float, ...]:
    try:
        shares = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise click.BadParameter("expected shares such as 0.5,0.5", param_hint="--split") from None
    if len(shares) < 2 or any(not (x > 0) for x in shares):
        raise click.BadParameter("expected two or more positive shares", param_hint="--split")
    return shares


def _plot(result: dict[str, Any], path: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "--plot needs matplotlib (pip install 'gossipfast[plot]'); no plot written"
    figs = result["_figs"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    xs = list(range(1, len(figs) + 1))
    axes[0].plot(xs, [f["reliability"] for f in figs], marker=".")
    axes[0].set_title("reliability per broadcast")
    axes[0].set_ylim(0, 1.05)
    axes[1].plot(xs, [f["rmr"] for f in figs], marker=".", label="RMR")
    axes[1].plot(xs, [f["ldh"] for f in figs], marker=".", label="LDH")
    axes[1].set_title("RMR and LDH per broadcast")
    axes[1].legend()
    axes[2].plot(xs, [f["lat_p50"] * 1000 for f in figs], label="p50")
    axes[2].plot(xs, [f["lat_p99"] * 1000 for f in figs], label="p99")
    axes[2].set_title("latency (ms, virtual)")
    axes[2].legend()
    for ax in axes:
        ax.set_xlabel("broadcast #")
    fig.suptitle(f"gossipfast sim: {result['nodes']} nodes, seed {result['seed']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def _table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"gossipfast sim — {result['nodes']} nodes, seed {result['seed']}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("build", "compiled" if result["compiled"] else "pure Python"),
        ("broadcasts", str(result["broadcasts"])),
        ("reliability (mean)", f"{result['reliability']:.4f}"),
        ("reliability (min)", f"{result['reliability_min']:.4f}"),
        ("missed deliveries", str(result["missed"])),
        ("RMR (mean / max)", f"{result['rmr']:.3f} / {result['rmr_max']:.3f}"),
        ("LDH (mean / max)", f"{result['ldh']:.2f} / {result['ldh_max']}"),
        (
            "latency p50 / p99 / max (steady)",
            f"{result['lat_p50'] * 1e3:.1f} / {result['lat_p99'] * 1e3:.1f} / "
            f"{result['lat_max'] * 1e3:.1f} ms",
        ),
        ("connected", str(result["connected"])),
        (
            "degree min / mean / max",
            f"{result['degree_min']} / {result['degree_mean']:.2f} / {result['degree_max']}",
        ),
        ("clustering coefficient", f"{result['clustering']:.4f}"),
        ("asymmetric active edges", str(result["asymmetric"])),
    ]
    for name, key in (("crash", "crash"), ("partition", "partition")):
        if key in result:
            for k, v in result[key].items():
                rows.append((f"{name}: {k}", f"{v:.4f}" if isinstance(v, float) else str(v)))
    rows += [
        ("simulated time", f"{result['sim_time']:.1f} s"),
        ("events", f"{result['events']:,}"),
        ("events/s", f"{result['events_per_s']:,.0f}"),
        ("wall time", f"{result['seconds']:.1f} s"),
    ]
    for r in rows:
        table.add_row(*r)
    Console().print(table)


@click.command("sim")
@click.option("--nodes", default=1000, show_default=True, type=click.IntRange(2, MAX_NODES))
@click.option(
    "--fail",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0.0, 0.99),
    help="Fraction of nodes crashed at once after the first broadcasts.",
)
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--broadcasts", default=10, show_default=True, type=click.IntRange(1))
@click.option(
    "--latency",
    default="10,50",
    show_default=True,
    help="Per-link latency range LO,HI in milliseconds (uniform).",
)
@click.option("--loss", default=0.0, show_default=True, type=click.FloatRange(0.0, 0.99))
@click.option(
    "--partition",
    "partition_s",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0.0),
    help="Split the nodes for this many simulated seconds (see --split), then heal.",
)
@click.option(
    "--split",
    "split_text",
    default="0.5,0.5",
    show_default=True,
    help="Shares of the --partition groups: 0.5,0.5 halves; 0.1,0.9 asymmetric; "
    "0.34,0.33,0.33 three-way.",
)
@click.option(
    "--config",
    "config_items",
    multiple=True,
    metavar="FIELD=JSON",
    help="Config override of every simulated node, e.g. tree_beacon_interval=0 (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on the last line.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a PNG (needs matplotlib).")
def sim_command(
    nodes: int,
    fail: float,
    seed: int,
    broadcasts: int,
    latency: str,
    loss: float,
    partition_s: float,
    split_text: str,
    config_items: tuple[str, ...],
    as_json: bool,
    plot: str | None,
) -> None:
    """Simulate a cluster of engines on a virtual network and report the figures."""
    lat = _parse_latency(latency)
    split = _parse_split(split_text)
    try:
        overrides = config_overrides(config_items)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--config") from e
    config = msgspec.structs.replace(SIM_CONFIG, **overrides) if overrides else None
    with cyclic_gc_paused():
        result = run_default(
            nodes,
            seed=seed,
            broadcasts=broadcasts,
            latency=lat,
            loss=loss,
            fail=fail,
            partition=partition_s,
            split=split,
            config=config,
        )
    if plot:
        msg = _plot(result, plot)
        if msg:
            click.echo(msg, err=True)
    result.pop("_figs")
    if as_json:
        sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    else:
        _table(result)
