"""TCP transport: the asyncio glue between sockets and the sans-IO :class:`Engine`.

The split follows asyncpg: the engine is a state machine that never touches asyncio or
a clock; :class:`Transport` owns the listening socket, the engine's inputs and
outputs and when they are written. Each TCP link is a :class:`Connection`
(:mod:`gossipfast._connection`: handshake, read budgets, heartbeats); the links by peer
are :mod:`gossipfast._links`, the open connections :mod:`gossipfast._conns`, dialling
:mod:`gossipfast._dialer`, admission :mod:`gossipfast._admission`, the turn's writes
:mod:`gossipfast._outbox`, the engine's timer :mod:`gossipfast._engine_timer`,
back-pressure :mod:`gossipfast._backpressure`, the TLS accept loop
:mod:`gossipfast._tls_listener`.

Rules kept here:

- One link per peer address. Simultaneous dials are resolved the same way on both ends:
  the connection dialled by the lower address (string order) wins; the other one is
  drained and closed by its dialler.
- The first frame each way is :class:`~gossipfast.wire.Hello`. A version or cluster
  mismatch, a frame fault or a message before ``Hello`` closes that connection only,
  is counted and logged once per cause.
- Everything the engine wants to send to one peer during one event-loop turn leaves in
  a single ``write()`` (flushed by ``loop.call_soon``).
- ``Ping``/``Pong`` and ``Hello`` are the transport's own and never reach the engine.
- Hostile peers meet explicit ``Config`` limits, each counted and logged once per cause:
  ``max_connections``, ``max_handshaking``, ``max_connections_per_host`` and
  ``accept_rate`` (refused at accept), ``max_hello_bytes`` and ``connect_timeout`` (the
  handshake, TLS included), ``frame_timeout`` (a frame dribbled byte by byte),
  ``peer_read_rate`` and ``peer_control_rate`` (reading pauses while a connection is
  over its token bucket), ``send_queue_bytes`` and the write stall bound (slow readers).
- Overload becomes back-pressure, never unbounded queues. Kernel buffers are bounded
  (``SOCKET_BUFFER``). Congestion is measured per link as the age of its oldest queued
  byte, and as bytes queued for bursts that have no age yet (``LINK_QUEUE_MAX``): a
  publisher's ``broadcast()`` awaits past ``QUEUE_DELAY_MAX``; a relay stops reading
  the peers that feed it only past a byte bound, a quarter of ``send_queue_bytes`` for
  one link (at most ``BACKPRESSURE_PAUSE_MAX`` per episode). A link that makes no
  progress at all (``STALL_AFTER``) is stalled, not slow: it holds neither, its queue
  is bounded by ``send_queue_bytes`` and it is dropped as slow after
  ``heartbeat_timeout``. The verdict and the pauses live in
  :mod:`gossipfast._backpressure`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as _ssl
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from . import wire
from ._admission import Admission
from ._backpressure import BackPressure
from ._codec import encode_frame
from ._connection import SOCKET_BUFFER as SOCKET_BUFFER
from ._connection import Connection, format_address, parse_address
from ._conns import OpenConnections
from ._dialer import Dialer
from ._engine_timer import EngineTimer
from ._links import Link, Links
from ._outbox import Outbox
from ._tls_listener import TlsListener
from .config import Config

log = logging.getLogger("gossipfast")

#: Publishes (``broadcast()`` calls, or messages of one ``broadcast_many``) whose
#: outputs may wait for the end of the loop turn; at this many they are written at once.
PUBLISH_BATCH_MAX = 256

#: Transport counters reported by :meth:`Transport.counters` (all start at 0).
COUNTER_NAMES: tuple[str, ...] = (
    "connections",  # currently open TCP connections
    "connections_opened",
    "connections_accepted",
    "connections_refused",
    "dials",
    "dial_failures",
    "handshake_failures",
    "version_mismatches",
    "cluster_mismatches",
    "handshake_timeouts",
    "bad_frames",
    "heartbeat_timeouts",
    "slow_drops",
    "send_drops",
    "duplicate_links",
    "bytes_sent",
    "bytes_received",
    "frames_sent",
    "engine_errors",
    "host_refusals",  # inbound refused: max_connections_per_host or accept_rate
    "read_throttles",  # reading paused: peer_read_rate or peer_control_rate exceeded
    "frame_timeouts",  # a frame not whole within frame_timeout (slowloris)
    "backpressure_pauses",  # reading paused because one of our links was congested
    "backpressure_stalls",  # ... and released after BACKPRESSURE_PAUSE_MAX, still congested
    "dials_limited",  # dials to never-reached addresses refused: over dial_rate
    "tls_failures",  # TLS handshakes that failed, inbound and outbound
)


class EngineLike(Protocol):
    """What the transport needs from an engine (see ``docs/internals.md``)."""

    address: str

    def on_frame(self, peer: str, msgs: list[Any], now: float) -> None:
        """A decoded batch of wire messages from ``peer``."""

    def on_disconnected(self, peer: str, reason: str, now: float) -> None:
        """The link to ``peer`` is gone or could not be opened."""

    def tick(self, now: float) -> None:
        """Fire due timers."""

    def next_deadline(self) -> float | None:
        """Earliest pending timer, or None."""

    def drain(self) -> tuple[dict[str, list[Any]], list[str], list[Any], list[Any]]:
        """Take the outputs: (outbox, closing, deliveries, events)."""

    @property
    def active_view(self) -> tuple[str, ...]:
        """Peers of the active view."""


def loss_report(reason: str | None, exc: Exception | None, ready: bool) -> str | None:
    """What the engine is told when a connection that was a link ends with
    ``close_reason`` ``reason`` and ``exc``: None if we closed it on purpose, "slow",
    "closed" for a clean close by a peer that had said Hello, else "failed"."""
    if reason in ("engine", "idle", "replaced", "shutdown"):
        return None
    if reason == "slow":
        return "slow"
    if reason is None and exc is None and ready:
        return "closed"
    return "failed"


class Transport:
    """Drives one engine over TCP: listen, dial, handshake, heartbeats, batching.

    ``deliver`` and ``emit`` receive the engine's deliveries and events after every
    engine input. Time given to the engine is ``loop.time()``.
    """

    def __init__(
        self,
        config: Config,
        *,
        deliver: Callable[[list[Any]], None],
        emit: Callable[[list[Any]], None],
        ssl: _ssl.SSLContext | None = None,
        client_ssl: _ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        self._deliver = deliver
        self._emit = emit
        self._ssl = ssl
        self._client_ssl = client_ssl
        self.engine: EngineLike | None = None
        self.address = ""
        self.node_id = ""
        self.incarnation = 0
        self._closed = False
        self._c: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)
        self._logged: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # Sockets: listening, open connections, links, dials.
        self._server: asyncio.AbstractServer | None = None
        #: Behind TLS: the listening socket, its accept loop and the TLS handshakes
        #: under way (see gossipfast._tls_listener).
        self._tls: TlsListener | None = None
        #: Who may connect to us and whom we may dial (see gossipfast._admission).
        self.admission = Admission(config, self.loop.time(), self._c, self._log_once)
        self.conns = OpenConnections(self.loop, self.admission, self._c)
        #: The links by peer address (``_links`` is ``links.by_peer``).
        self.links = Links(self)
        self._links = self.links.by_peer
        self.dialer = self._make_dialer()
        self.bp = BackPressure(
            self.loop,
            self.conns.all,
            self.links.pending_of,
            Connection.resume_reading,
            self._c,
            config.send_queue_bytes // 4,
        )
        #: Bucket size of peer_read_rate: one second, and at least one whole frame.
        self.read_burst = max(config.peer_read_rate, config.max_frame_size + 4)
        # Engine glue: this turn's outputs, the engine's timer, the heartbeat ticker.
        #: The turn's messages by peer until :meth:`flush` (see gossipfast._outbox).
        self.outbox = Outbox(self.links, config.max_frame_size, self._c, self._log_once)
        #: Messages published since the last drain whose outputs wait for the end of the
        #: loop turn (see :meth:`publish`).
        self.deferred = 0
        self._flush_handle: asyncio.Handle | None = None
        self.timer = EngineTimer(self.loop, self._on_timer)
        self._ticker: asyncio.TimerHandle | None = None
        hb = config.heartbeat_interval
        self._tick_every = max(0.005, min(hb, config.connect_timeout) / 4)

    def _make_dialer(self) -> Dialer:
        """Opens our links' connections (see gossipfast._dialer)."""
        return Dialer(
            self.loop,
            self.config,
            self._client_ssl,
            self.admission,
            self._c,
            connection=lambda peer: Connection(self, True, peer),
            spawn=self._spawn,
            lost=self._conn_lost,
            tls_failed=self._tls_failed,
            failed=self._dial_failed,
        )

    # ------------------------------------------------------------------ lifecycle
    async def listen(self, host: str, port: int) -> tuple[str, int]:
        """Bind the server socket (not yet accepting); return the bound host and port."""
        if self._ssl is not None:
            self._tls = TlsListener(self, self._ssl, host, port)
            return host, self._tls.port
        self._server = await self.loop.create_server(
            lambda: Connection(self, False, None),
            host,
            port,
            reuse_address=True,
            start_serving=False,
        )
        sockname = self._server.sockets[0].getsockname()
        return host, int(sockname[1])

    async def start(
        self, engine: EngineLike, *, address: str, node_id: str, incarnation: int
    ) -> None:
        """Attach the engine and start accepting connections."""
        self.engine = engine
        self.address = address
        self.node_id = node_id
        self.incarnation = incarnation
        self.outbox.address = address
        self._hello = encode_frame(
            [wire.Hello(wire.PROTOCOL_VERSION, self.config.cluster, node_id, address, incarnation)]
        )
        self._ticker = self.loop.call_later(self._tick_every, self._on_ticker)
        if self._server is not None:
            await self._server.start_serving()
        if self._tls is not None:
            self._tls.start()
        self._arm_timer()

    async def close(self, grace: float = 1.0) -> None:
        """Flush, close every connection (up to ``grace`` seconds), stop listening."""
        if self._closed:
            return
        self.flush()
        self._stop()
        await self.conns.close(grace)
        await asyncio.sleep(0)
        self.bp.wake_writers()

    def abort(self) -> None:
        """Drop everything at once, telling no one (used to simulate a crash in tests)."""
        self._stop()
        self.conns.abort()
        self.bp.wake_writers()

    def _stop(self) -> None:
        """Closed: no more timers, tasks, pauses or accepts (the connections remain)."""
        self._closed = True
        for h in (self._flush_handle, self._ticker):
            if h is not None:
                h.cancel()
        self.timer.cancel()
        self.bp.close()
        for t in list(self._tasks):
            t.cancel()
        if self._server is not None:
            self._server.close()
        if self._tls is not None:
            self._tls.close()

    @property
    def closed(self) -> bool:
        """True after :meth:`close` or :meth:`abort`."""
        return self._closed

    # ------------------------------------------------------------------ engine glue
    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call an engine input ``fn(*args, now)``, then dispatch its outputs."""
        try:
            result = fn(*args, self.loop.time())
        finally:
            self.dispatch()
        return result

    def _engine_call(self, fn: Callable[..., Any], *args: Any) -> None:
        # An engine bug must not kill the event loop or the connection's reader.
        try:
            fn(*args, self.loop.time())
        except Exception:
            self._c["engine_errors"] += 1
            self._log_once(f"engine:{getattr(fn, '__name__', fn)}", "engine raised", exc=True)
        self.dispatch()

    async def publish(self, fn: Callable[[Any, float], Any], arg: Any, count: int) -> Any:
        """Run the publishing engine input ``fn(arg, now)`` (``Engine.broadcast`` or
        ``broadcast_many``) for ``count`` messages; return its result.

        The node's one way to publish. The engine's outbox collects the turn's messages
        in order and :meth:`flush` (scheduled here) drains and writes them once, or at
        once when more than ``PUBLISH_BATCH_MAX`` messages would wait (a caller that
        never yields still meets back-pressure, and a turn's batch stays bounded). Any
        other input drains first, so the order of outputs is the order of inputs either
        way. Then awaits while a link is congested (:meth:`wait_writable`).
        """
        try:
            result = fn(arg, self.loop.time())
        except BaseException:
            self.dispatch()  # whatever earlier calls of this turn queued leaves as usual
            raise
        self.deferred += count
        if self.deferred > PUBLISH_BATCH_MAX:
            self.flush()  # (drains the engine: deferred > 0)
        elif self._flush_handle is None and not self._closed:
            self._flush_handle = self.loop.call_soon(self.flush)
        bp = self.bp
        if bp.paused_links and bp.congested(self.loop.time()):
            await bp.wait_writable()
        return result

    def dispatch(self) -> None:
        """Drain the engine's outputs now: route its messages to this turn's flush, hand
        deliveries and events to their callbacks, re-arm the timer."""
        engine = self.engine
        if engine is None:
            return
        self.deferred = 0
        outbox, closing, deliveries, events = engine.drain()
        if not (outbox or closing or deliveries or events):
            self._arm_timer()
            return
        if outbox or closing:
            self.outbox.add(outbox, closing)
            self._schedule_flush()
        if deliveries:
            self._deliver(deliveries)
        if events:
            self._emit(events)
        self._arm_timer()

    def _schedule_flush(self) -> None:
        if self._flush_handle is None and not self._closed:
            self._flush_handle = self.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write everything collected this turn: one ``write()`` per peer."""
        if self.deferred:
            self.dispatch()  # the outputs of deferred inputs first
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self.outbox.write(self.loop.time())
        self.bp.stale()  # queues grew: the congestion verdict is stale
        self.outbox.close_links()

    def _arm_timer(self) -> None:
        engine = self.engine
        if engine is not None and not self._closed:
            self.timer.arm(engine.next_deadline())

    def _on_timer(self) -> None:
        engine = self.engine
        if engine is not None and not self._closed:
            self._engine_call(engine.tick)

    # ------------------------------------------------------------------ dialling
    def _dial(self, link: Link) -> None:
        self.dialer.dial(link)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task of ours: cancelled when the transport closes."""
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _dial_failed(self, link: Link, up: bool) -> None:
        """A dial to ``link.peer`` failed or was refused by ``dial_rate``; ``up``: its
        connection had come up (``_conn_lost`` told the engine if it was the link)."""
        if up:
            if link.conn is None and link.pending and not self._closed:
                self._dial(link)  # sent to since: dial again
            else:
                self.links.drop_if_idle(link)
        elif link.conn is None:
            self.links.drop_if_idle(link, force=True)
            if self.engine is not None and not self._closed:
                self._engine_call(self.engine.on_disconnected, link.peer, "failed")

    # ------------------------------------------------------------------ connections
    def _tls_failed(self, cause: str, who: str, exc: BaseException) -> None:
        self._c["tls_failures"] += 1
        self._log_once(cause, "TLS handshake with %s failed: %s: %s", who, type(exc).__name__, exc)

    def _conn_made(self, c: Connection) -> None:
        if self._closed or c.abandoned:
            # abandoned: its dial timed out before it came up (see Dialer._abandon).
            c.close("shutdown" if self._closed else "dial-failed", abort=True)
            return
        if not self.conns.add(c, self._tls_handshaking(), self.loop.time()):
            c.close("refused", abort=True)
            return
        c.start(self._hello, self.loop.time())
        if c.outbound:
            assert c.peer is not None
            link = self.links.link(c.peer)
            if link.conn is None:
                link.conn = c
                # Pipeline: what waited for the dial follows our Hello at once.
                self.links.write_pending(link, c)

    def _admit(self, host: str) -> bool:
        """True if a new inbound connection from ``host`` is admitted (see
        :meth:`OpenConnections.admit`)."""
        return self.conns.admit(host, self._tls_handshaking(), self.loop.time())

    def _tls_handshaking(self) -> int:
        return self._tls.handshaking if self._tls is not None else 0

    def _conn_received(self, c: Connection, msgs: list[Any]) -> None:
        """Messages of a ready connection for the engine."""
        assert self.engine is not None and c.peer is not None
        self._engine_call(self.engine.on_frame, c.peer, msgs)

    def _link_ready(self, c: Connection) -> bool:
        """``c`` accepted its peer's Hello: see :meth:`Links.adopt`."""
        return self.links.adopt(c)

    def _conn_resumed(self, c: Connection, was_paused: bool) -> None:
        link = self.links.primary(c)
        if link is not None:
            self.links.write_pending(link, c)
        if was_paused:
            self.bp.writes_resumed()
        else:
            self.bp.wake_writers()

    def _conn_lost(self, c: Connection, exc: Exception | None) -> None:
        if c.lost:
            return  # already ended by Dialer._abandon
        c.lost = True
        if exc is not None and not c.ready and isinstance(exc, _ssl.SSLError):
            self._tls_refused(c, exc)
        c.cancel_handshake_timer()
        if c.paused:
            c.paused = False
            self.bp.writes_resumed()
        self.conns.remove(c)
        self.bp.wake_writers()
        link = self.links.primary(c)
        if link is None:
            return
        link.conn = None
        if not self._closed:
            self._link_lost(link, loss_report(c.close_reason, exc, c.ready))

    def _tls_refused(self, c: Connection, exc: _ssl.SSLError) -> None:
        # TLS 1.3: the server checks the client's certificate after the client's
        # handshake is done; its refusal arrives as an alert on the first read.
        if self._ssl is not None or self._client_ssl is not None:
            self._tls_failed("tls-out" if c.outbound else "tls-in", c.peer or "a peer", exc)

    def _link_lost(self, link: Link, report: str | None) -> None:
        """The connection of ``link`` is gone: with ``report`` None (we closed it), dial
        again if sent to since, else forget the link; otherwise forget it and tell the
        engine ``report``."""
        if report is None:
            if link.pending and not link.dialing:
                self._dial(link)
            else:
                self.links.drop_if_idle(link)
            return
        self.links.drop_if_idle(link, force=True)
        if self.engine is not None:
            self._engine_call(self.engine.on_disconnected, link.peer, report)

    # ------------------------------------------------------------------ heartbeats
    def _on_ticker(self) -> None:
        if self._closed:
            return
        self._ticker = self.loop.call_later(self._tick_every, self._on_ticker)
        now = self.loop.time()
        active = set(self.engine.active_view) if self.engine is not None else set()
        ping: bytes | None = None
        for c in self.conns:
            if c.check(now) and self.links.check(c, now, active):
                if ping is None:
                    ping = encode_frame([wire.Ping(int(now * 1000) & 0xFFFFFFFF)])
                c.write(ping, now)

    # ------------------------------------------------------------------ back-pressure
    @property
    def congested(self) -> bool:
        """True while a link is congested (see :mod:`gossipfast._backpressure`)."""
        return self.bp.congested(self.loop.time())

    async def wait_writable(self) -> None:
        """Return once no link is congested (or the transport closed)."""
        await self.bp.wait_writable()

    # ------------------------------------------------------------------ figures
    def counters(self) -> dict[str, int]:
        """A copy of the transport counters (see :data:`COUNTER_NAMES`)."""
        return dict(self._c)

    def _log_once(self, cause: str, msg: str, *args: Any, exc: bool = False) -> None:
        # The first occurrence of each cause is a warning; repeats go to debug so a
        # misbehaving peer cannot flood the log. `cause` comes from a small fixed set.
        if cause in self._logged:
            log.debug(msg, *args)
            return
        self._logged.add(cause)
        log.warning(msg + " (further occurrences logged at DEBUG)", *args, exc_info=exc)


__all__ = [
    "COUNTER_NAMES",
    "Connection",
    "EngineLike",
    "Transport",
    "format_address",
    "parse_address",
]
