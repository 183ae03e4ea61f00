"""TCP transport: the asyncio glue between sockets and the sans-IO :class:`Engine`.

The split follows asyncpg: the engine is a state machine that never touches asyncio or
a clock; :class:`Transport` owns the listening socket, one :class:`Connection`
(an ``asyncio.Protocol``) per TCP link, the handshake, heartbeats, write coalescing and
back-pressure, and feeds the engine one call per socket read.

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
  the peers that feed it past ``RELAY_DELAY_MAX`` (at most ``BACKPRESSURE_PAUSE_MAX``
  per episode). A link that makes no progress at all (``STALL_AFTER``) is stalled, not
  slow: it holds neither, its queue is bounded by ``send_queue_bytes`` and it is
  dropped as slow after ``heartbeat_timeout``. The verdict and the pauses live in
  :mod:`gossipfast._backpressure`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl as _ssl
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from . import wire
from ._admission import Admission
from ._backpressure import BackPressure
from ._codec import FrameDecoder, encode_frame, encode_frames
from .config import Config

log = logging.getLogger("gossipfast")

#: Kernel send and receive buffer of each connection (Linux doubles it). Left to
#: autotuning, loopback buffers grow to several MiB each way: under overload that is
#: seconds of queue per hop, which outlives the graft timers and the dedup window (late
#: copies were taken for old duplicates and lost). Bounded buffers turn overload into
#: back-pressure that reaches the publisher instead.
SOCKET_BUFFER = 64 << 10
#: Write-buffer high-water mark of a connection (at most send_queue_bytes / 4).
WRITE_HIGH_WATER = 64 << 10
#: Publishes (``broadcast()`` calls, or messages of one ``broadcast_many``) whose
#: outputs may wait for the end of the loop turn; at this many they are written at once.
PUBLISH_BATCH_MAX = 256
#: Exceptions of a dial that mean the TCP connection was up and TLS failed (a handshake
#: refused, reset or timed out by the peer).
_TLS_ERRORS = (_ssl.SSLError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError)

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


def parse_address(address: str) -> tuple[str, int]:
    """Split ``"host:port"`` (or ``"[v6]:port"``) into host and port; ValueError if bad."""
    host, sep, port_s = address.rpartition(":")
    if not sep or not host or not port_s.isdigit():
        raise ValueError(f"not a host:port address: {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_s)
    if port > 65535:
        raise ValueError(f"port out of range in {address!r}")
    return host, port


def format_address(host: str, port: int) -> str:
    """Join host and port as ``"host:port"`` (brackets around an IPv6 host)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _split(msgs: list[Any], limit: int) -> list[list[Any]]:
    """Cut a batch into frames whose bodies stay under ``limit`` bytes."""
    if len(encode_frame(msgs)) - 4 <= limit or len(msgs) == 1:
        return [msgs]
    mid = len(msgs) // 2
    return _split(msgs[:mid], limit) + _split(msgs[mid:], limit)


class Connection(asyncio.Protocol):
    """One TCP connection, before and after its handshake."""

    def __init__(self, owner: Transport, outbound: bool, peer: str | None) -> None:
        self.owner = owner
        #: True when this side dialled.
        self.outbound = outbound
        #: Peer address (dialled address, or the address its Hello advertised).
        self.peer: str | None = peer
        self.tr: asyncio.Transport | None = None
        self.decoder = FrameDecoder(owner.config.max_frame_size)
        self.ready = False  # the peer's Hello arrived and was accepted
        self.incarnation = -1
        self.node_id = ""
        self.paused = False
        #: Why we closed it (None: the peer closed it or the socket failed).
        self.close_reason: str | None = None
        now = owner.loop.time()
        self.last_recv = now
        self.last_send = now
        self.last_app = now
        self.hs_timer: asyncio.TimerHandle | None = None
        self.eof_sent = False
        self.closing_since = 0.0
        self.paused_since = 0.0
        #: Remote IP of an inbound connection counted against max_connections_per_host.
        self.host: str | None = None
        #: Token buckets of the read limits (bytes, control messages), refilled by time.
        self.bucket_bytes = float(owner.read_burst)
        self.bucket_ctrl = float(owner.config.peer_control_rate)
        self.bucket_at = now
        self.read_paused = False
        #: Reading paused because another link of ours is congested (back-pressure).
        self.bp_paused = False
        #: Bytes handed to this connection's transport so far.
        self.sent_bytes = 0
        #: (when, position in this connection's byte stream) of bytes queued: in the
        #: transport's buffer, or in the link's queue until written. They tell the
        #: age of the oldest byte still queued (``queue_delay``).
        self.marks: deque[tuple[float, int]] = deque()
        #: Bytes passed on to the kernel, as last seen, and when that count last grew.
        self.drained = 0
        self.drained_at = now
        #: When the partial frame held by the decoder started (0: none held).
        self.partial_since = 0.0
        #: Its dial failed or was cancelled: it is no link of ours (see ``_abandon``).
        self.abandoned = False
        #: ``_conn_lost`` ran for it (it runs once, whoever calls it first).
        self.lost = False

    # -- asyncio.Protocol -----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Socket is up: send our Hello, start the handshake timer."""
        # uvloop's transports are not asyncio.Transport subclasses, only look alike.
        self.tr = transport  # type: ignore[assignment]
        self.owner._conn_made(self)

    def data_received(self, data: bytes) -> None:
        """Hand the whole buffer to the decoder and the batch to the engine."""
        self.owner._conn_data(self, data)

    def eof_received(self) -> bool | None:
        """Peer closed its side: close ours too."""
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """Socket gone: tell the owner (who may tell the engine)."""
        self.owner._conn_lost(self, exc)

    def pause_writing(self) -> None:
        """The kernel buffer is full: queue further output ourselves."""
        now = self.owner.loop.time()
        if not self.paused:
            self.owner.bp.writes_paused()
            self.drained_at = now  # a new episode: moving until it stops
        self.paused = True
        self.paused_since = now

    def resume_writing(self) -> None:
        """The kernel buffer drained: send what was queued."""
        was_paused = self.paused
        self.paused = False
        self.owner._conn_resumed(self, was_paused)

    # -- helpers ----------------------------------------------------------------------
    def write(self, data: bytes, now: float) -> None:
        """Write bytes (already framed) and note the time.

        A transport that died under us (uvloop raises RuntimeError on a closed handle,
        both loops on a write after EOF) fails this connection instead of raising into
        the caller (flush() runs as a loop callback and serves every other peer too).
        """
        assert self.tr is not None
        try:
            self.tr.write(data)
        except (RuntimeError, OSError) as e:
            self.owner._c["send_drops"] += 1
            self.owner._log_once("write-failed", "write to %s failed: %s", self.peer, e)
            self.close("write-failed", abort=True)
            return
        self.last_send = now
        self.sent_bytes += len(data)
        self.owner._c["bytes_sent"] += len(data)
        marks = self.marks
        if self.tr.get_write_buffer_size():
            if not marks or marks[-1][1] < self.sent_bytes:
                marks.append((now, self.sent_bytes))
        else:
            while marks and marks[0][1] <= self.sent_bytes:
                marks.popleft()

    def queue_delay(self, now: float) -> float:
        """How long the oldest byte queued for this connection (in the transport's
        buffer, or in the link's queue behind it) has waited (0: none).

        Also notes progress: ``drained_at`` moves when bytes left for the kernel since
        the last look.
        """
        tr = self.tr
        if tr is None:
            return 0.0
        head = self.sent_bytes - tr.get_write_buffer_size()
        if head != self.drained:
            self.drained = head
            self.drained_at = now
        marks = self.marks
        while marks and marks[0][1] <= head:
            marks.popleft()
        return now - marks[0][0] if marks else 0.0

    def close(self, reason: str, abort: bool = False) -> None:
        """Close on purpose; ``reason`` decides what the engine is told."""
        if self.close_reason is None:
            self.close_reason = reason
        if self.hs_timer is not None:
            self.hs_timer.cancel()
            self.hs_timer = None
        tr = self.tr
        if tr is not None and not tr.is_closing():
            if abort:
                tr.abort()
            elif tr.can_write_eof() and not self.eof_sent:
                # Half-close and let the peer close its side: closing with unread
                # bytes in our receive buffer would send an RST that can destroy what
                # we just wrote. The ticker closes it for good if the peer never does.
                self.eof_sent = True
                self.closing_since = self.owner.loop.time()
                try:
                    tr.write_eof()
                except (OSError, RuntimeError):
                    # The peer reset the socket already (ENOTCONN), or uvloop's handle is
                    # closed: nothing to drain.
                    tr.abort()
            else:
                tr.close()

    @property
    def closing(self) -> bool:
        """True once closing started (by either side)."""
        return self.close_reason is not None or self.tr is None or self.tr.is_closing()


class _Link:
    """Per-peer state: the primary connection and bytes waiting for it."""

    __slots__ = ("close_after_flush", "conn", "dialing", "peer", "pending", "pending_bytes")

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.conn: Connection | None = None
        self.dialing = False
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.close_after_flush = False


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
        self._server: asyncio.AbstractServer | None = None
        #: Behind TLS: the listening socket, its accept loop and the TLS handshakes
        #: under way (see _listen_tls).
        self._lsock: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._tls_handshaking = 0
        self._links: dict[str, _Link] = {}
        self._conns: set[Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._out: dict[str, list[Any]] = {}
        self._out_count = 0
        #: Engine inputs since the last drain whose outputs wait for the end of the loop
        #: turn (``broadcast()`` calls: see :meth:`defer`).
        self.deferred = 0
        self._closing: set[str] = set()
        self._flush_handle: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._last_tick = 0.0
        self._ticker: asyncio.TimerHandle | None = None
        self._logged: set[str] = set()
        self._closed = False
        self._all_gone: asyncio.Future[None] | None = None
        self._c: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)
        self.bp = BackPressure(
            self.loop,
            self._conns,
            self._pending_of,
            self._resume_reading,
            self._c,
            config.send_queue_bytes // 4,
        )
        #: Who may connect to us and whom we may dial (see gossipfast._admission).
        self.admission = Admission(config, self.loop.time(), self._c, self._log_once)
        #: Bucket size of peer_read_rate: one second, and at least one whole frame.
        self.read_burst = max(config.peer_read_rate, config.max_frame_size + 4)
        hb = config.heartbeat_interval
        self._tick_every = max(0.005, min(hb, config.connect_timeout) / 4)

    # ------------------------------------------------------------------ lifecycle
    async def listen(self, host: str, port: int) -> tuple[str, int]:
        """Bind the server socket (not yet accepting); return the bound host and port."""
        if self._ssl is not None:
            return self._listen_tls(host, port)
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
        self._hello = encode_frame(
            [wire.Hello(wire.PROTOCOL_VERSION, self.config.cluster, node_id, address, incarnation)]
        )
        self._ticker = self.loop.call_later(self._tick_every, self._on_ticker)
        if self._server is not None:
            await self._server.start_serving()
        if self._lsock is not None:
            self._accept_task = self.loop.create_task(self._accept_loop(self._lsock))
            self._tasks.add(self._accept_task)
            self._accept_task.add_done_callback(self._tasks.discard)
        self._arm_timer()

    async def close(self, grace: float = 1.0) -> None:
        """Flush, close every connection (up to ``grace`` seconds), stop listening."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        for h in (self._flush_handle, self._timer, self._ticker):
            if h is not None:
                h.cancel()
        self.bp.close()
        for t in list(self._tasks):
            t.cancel()
        if self._server is not None:
            self._server.close()
        if self._lsock is not None and self._accept_task is None:
            self._lsock.close()  # (else the accept loop closes it as it ends)
        for c in list(self._conns):
            c.close("shutdown")
        if self._conns:
            self._all_gone = self.loop.create_future()
            try:
                await asyncio.wait_for(self._all_gone, grace)
            except asyncio.TimeoutError:
                pass
        for c in list(self._conns):
            c.close("shutdown", abort=True)
        await asyncio.sleep(0)
        self.bp.wake_writers()

    def abort(self) -> None:
        """Drop everything at once, telling no one (used to simulate a crash in tests)."""
        self._closed = True
        for h in (self._flush_handle, self._timer, self._ticker):
            if h is not None:
                h.cancel()
        self.bp.close()
        for t in list(self._tasks):
            t.cancel()
        if self._server is not None:
            self._server.close()
        if self._lsock is not None and self._accept_task is None:
            self._lsock.close()  # (else the accept loop closes it as it ends)
        for c in list(self._conns):
            c.close("shutdown", abort=True)
        self.bp.wake_writers()

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

    def defer(self) -> None:
        """The engine took an input whose outputs may wait for the end of this loop turn.

        ``broadcast()`` calls this instead of draining the engine after every call:
        the engine's outbox collects the turn's messages in order and :meth:`flush`
        (scheduled here) drains and writes them once. Any other input drains first, so
        the order of outputs is the order of inputs either way.
        """
        self.deferred += 1
        if self._flush_handle is None and not self._closed:
            self._flush_handle = self.loop.call_soon(self.flush)

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
        if outbox:
            out = self._out
            for peer, msgs in outbox.items():
                if not msgs:
                    continue
                self._out_count += len(msgs)
                have = out.get(peer)
                if have is None:
                    out[peer] = list(msgs)
                else:
                    have.extend(msgs)
        if closing:
            self._closing.update(closing)
        if outbox or closing:
            self._schedule_flush()
        if deliveries:
            self._deliver(deliveries)
        if events:
            self._emit(events)
        self._arm_timer()

    def published(self) -> bool:
        """The engine's ``broadcast`` just ran: its outputs leave with this loop turn's
        flush, or at once every ``PUBLISH_BATCH_MAX`` calls (a caller that never yields
        still meets back-pressure, and a turn's batch stays bounded). True when the
        publisher should await :meth:`wait_writable` now."""
        if self.deferred >= PUBLISH_BATCH_MAX:
            self.flush()
        else:
            self.defer()
        bp = self.bp
        return bp.paused_links > 0 and bp.congested(self.loop.time())

    def published_many(self) -> bool:
        """The engine's ``broadcast_many`` just ran and was dispatched (:meth:`run`):
        write at once when the turn holds ``PUBLISH_BATCH_MAX`` messages or more. True
        when the publisher should await :meth:`wait_writable` now."""
        if self._out_count >= PUBLISH_BATCH_MAX:
            self.flush()
        bp = self.bp
        return bp.paused_links > 0 and bp.congested(self.loop.time())

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
        out, self._out = self._out, {}
        self._out_count = 0
        limit = self.config.max_frame_size
        now = self.loop.time()
        for peer, msgs in out.items():
            if peer == self.address:
                self._c["send_drops"] += len(msgs)
                continue
            try:
                data = encode_frame(msgs)
                if len(data) - 4 > limit:
                    data = encode_frames(_split(msgs, limit))
            except Exception:
                # A message the engine built that msgpack cannot carry (an engine bug):
                # drop that peer's batch, keep serving the others.
                self._c["engine_errors"] += 1
                self._c["send_drops"] += len(msgs)
                self._log_once("encode", "cannot encode a batch for %s", peer, exc=True)
                continue
            self._c["frames_sent"] += 1
            self._send(self._link(peer), data, now)
        self.bp.stale()  # queues grew: the congestion verdict is stale
        if self._closing:
            for peer in self._closing:
                link = self._links.get(peer)
                if link is None:
                    continue
                if link.pending:
                    link.close_after_flush = True  # closed once the queue is written
                elif link.conn is not None:
                    link.conn.close("engine")
            self._closing.clear()

    def _link(self, peer: str) -> _Link:
        link = self._links.get(peer)
        if link is None:
            link = self._links[peer] = _Link(peer)
        return link

    def _send(self, link: _Link, data: bytes, now: float) -> None:
        c = link.conn
        if (
            c is not None
            and not c.paused
            and not link.pending
            and not c.closing
            and (c.ready or c.outbound)
        ):
            c.write(data, now)
            c.last_app = now
            return
        link.pending.append(data)
        link.pending_bytes += len(data)
        if c is not None:
            # where these bytes will sit in c's stream, and since when they wait
            c.marks.append((now, c.sent_bytes + link.pending_bytes))
        queued = link.pending_bytes
        if c is not None and c.tr is not None:
            queued += c.tr.get_write_buffer_size()
        if queued > self.config.send_queue_bytes:
            if c is not None and c.ready and not c.closing:
                self._drop_slow(link, c, queued)
            else:
                # No link yet (dialling): keep the newest bytes, bounded.
                while link.pending and link.pending_bytes > self.config.send_queue_bytes:
                    link.pending_bytes -= len(link.pending.pop(0))
                    self._c["send_drops"] += 1
        if c is None and not link.dialing and not self._closed:
            self._dial(link)

    def _drop_slow(self, link: _Link, c: Connection, queued: int) -> None:
        self._c["slow_drops"] += 1
        self._log_once(
            "slow",
            "dropping slow peer %s: %d bytes queued (send_queue_bytes=%d), writes paused %.3gs",
            link.peer,
            queued,
            self.config.send_queue_bytes,
            self.loop.time() - c.paused_since if c.paused else 0.0,
        )
        link.pending.clear()
        link.pending_bytes = 0
        c.close("slow", abort=True)
        self.bp.wake_writers()

    def _write_pending(self, link: _Link, c: Connection) -> None:
        if not link.pending or c.closing:
            return
        now = self.loop.time()
        data = b"".join(link.pending) if len(link.pending) > 1 else link.pending[0]
        link.pending.clear()
        link.pending_bytes = 0
        c.write(data, now)
        c.last_app = now
        if link.close_after_flush:
            link.close_after_flush = False
            c.close("engine")

    def _arm_timer(self) -> None:
        engine = self.engine
        if engine is None or self._closed:
            return
        when = engine.next_deadline()
        if when is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
                self._timer_at = None
            return
        # A wheel may report a deadline up to one slot early: never spin on it.
        when = max(when, self._last_tick + 0.001)
        if self._timer is not None:
            if self._timer_at == when:
                return
            self._timer.cancel()
        self._timer_at = when
        self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        engine = self.engine
        if engine is None or self._closed:
            return
        self._last_tick = self.loop.time()
        self._engine_call(engine.tick)

    # ------------------------------------------------------------------ dialling
    def _dial(self, link: _Link) -> None:
        link.dialing = True
        if not self.admission.dial_allowed(link.peer, self.loop.time()):
            # Over dial_rate for addresses never reached: fail at once, as an unreachable
            # peer would (the engine moves on), without a socket or a task.
            self.loop.call_soon(self._dial_failed, link, False)
            return
        self._c["dials"] += 1
        task = self.loop.create_task(self._dial_task(link))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dial_task(self, link: _Link) -> None:
        peer = link.peer
        made: list[Connection] = []

        def factory() -> Connection:
            c = Connection(self, True, peer)
            made.append(c)
            return c

        error: BaseException | None = None
        try:
            host, port = parse_address(peer)
            await asyncio.wait_for(
                self.loop.create_connection(
                    factory,
                    host,
                    port,
                    ssl=self._client_ssl,
                    server_hostname=host if self._client_ssl is not None else None,
                    ssl_handshake_timeout=(
                        self.config.connect_timeout if self._client_ssl is not None else None
                    ),
                ),
                self.config.connect_timeout,
            )
        except asyncio.CancelledError:
            link.dialing = False
            self._abandon(made)
            raise
        except (OSError, ValueError, asyncio.TimeoutError, _ssl.SSLError) as e:
            error = e
        link.dialing = False
        if error is None:
            return
        self._c["dial_failures"] += 1
        log.debug("dial %s failed: %s: %s", peer, type(error).__name__, error)
        if self._client_ssl is not None and isinstance(error, _TLS_ERRORS):
            self._tls_failed("tls-out", peer, error)
        if self._abandon(made):
            # Its connection was up: _conn_lost told the engine if it was the link.
            if link.conn is None and link.pending and not self._closed:
                self._dial(link)  # sent to since: dial again
            else:
                self._drop_link_if_idle(link)
            return
        self._dial_failed(link, True)

    def _dial_failed(self, link: _Link, tried: bool) -> None:
        """A dial to ``link.peer`` failed (``tried``) or was refused by ``dial_rate``."""
        if not tried:
            link.dialing = False
        if link.conn is None:
            self._drop_link_if_idle(link, force=True)
            if self.engine is not None and not self._closed:
                self._engine_call(self.engine.on_disconnected, link.peer, "failed")

    def _abandon(self, made: list[Connection]) -> bool:
        """Drop the connections of a dial that failed or was cancelled; True if one of
        them was already up (connection_made ran).

        A connect timeout may cancel ``create_connection`` after ``connection_made``:
        asyncio then closes the transport and calls ``connection_lost`` later, but uvloop
        closes the handle directly, never calls ``connection_lost`` and still reports
        ``is_closing()`` False. Left alone, such a connection stayed the peer's link for
        good: every write to it raised (``Exception in callback Transport.flush``), the
        peer was never reported nor redialled. So the dial ends it here, once.
        """
        up = False
        for c in made:
            c.abandoned = True
            if c.tr is not None:
                up = True
                if not c.lost:
                    c.close("dial-failed", abort=True)
                    self._conn_lost(c, None)
        return up

    def _drop_link_if_idle(self, link: _Link, force: bool = False) -> None:
        if force:
            link.pending.clear()
            link.pending_bytes = 0
        if (
            link.conn is None
            and not link.dialing
            and not link.pending
            and self._links.get(link.peer) is link
        ):
            del self._links[link.peer]

    # ------------------------------------------------------------------ connections
    def _tls_failed(self, cause: str, who: str, exc: BaseException) -> None:
        self._c["tls_failures"] += 1
        self._log_once(cause, "TLS handshake with %s failed: %s: %s", who, type(exc).__name__, exc)

    def _conn_made(self, c: Connection) -> None:
        if self._closed:
            c.close("shutdown", abort=True)
            return
        if c.abandoned:
            # Its dial timed out before the connection came up (see _abandon).
            c.close("dial-failed", abort=True)
            return
        if not c.outbound and c.host is None:  # behind TLS it was admitted at accept
            host = self._remote_host(c)
            if not self._admit(host):
                c.close("refused", abort=True)
                return
            c.host = host
        self._conns.add(c)
        self._c["connections"] += 1
        self._c["connections_opened"] += 1
        if not c.outbound:
            self._c["connections_accepted"] += 1
        self._conn_up(c)

    def _admit(self, host: str) -> bool:
        """True if a new inbound connection from ``host`` is admitted (then it counts
        against the host's limits until :meth:`Admission.host_closed`)."""
        unready = self._tls_handshaking + sum(
            1 for x in self._conns if not x.ready and not x.outbound
        )
        opened = len(self._conns) + self._tls_handshaking
        if self.admission.admit(host, opened, unready, self.loop.time()) is not None:
            return False
        self.admission.host_opened(host)
        return True

    # -- TLS listener: our own accept loop, so that TLS handshakes count against the
    # limits above and their failures are seen (the TLS servers of asyncio and uvloop
    # drop them silently).
    def _listen_tls(self, host: str, port: int) -> tuple[str, int]:
        family, kind, proto, _name, addr = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(511)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._lsock = sock
        return host, int(sock.getsockname()[1])

    async def _accept_loop(self, lsock: socket.socket) -> None:
        try:
            while not self._closed:
                try:
                    sock, addr = await self.loop.sock_accept(lsock)
                except OSError as e:  # out of descriptors and the like: retry shortly
                    self._log_once("accept", "accepting a connection failed: %s", e)
                    await asyncio.sleep(0.1)
                    continue
                host = str(addr[0])
                if not self._admit(host):
                    sock.close()
                    continue
                self._tls_handshaking += 1
                task = self.loop.create_task(self._tls_accept(sock, host, addr))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            lsock.close()

    async def _tls_accept(self, sock: socket.socket, host: str, addr: Any) -> None:
        made: list[Connection] = []

        def factory() -> Connection:
            c = Connection(self, False, None)
            c.host = host  # admitted, and counted per host, by _accept_loop
            made.append(c)
            return c

        try:
            await self.loop.connect_accepted_socket(
                factory,
                sock,
                ssl=self._ssl,
                ssl_handshake_timeout=self.config.connect_timeout,
            )
        except asyncio.CancelledError:
            if not any(c.tr is not None for c in made):
                self.admission.host_closed(host)
            raise
        except Exception as e:  # whatever the peer's bytes made the TLS layer raise
            # (the loop's transport owns the socket now and closes it)
            if not any(c.tr is not None for c in made):
                self.admission.host_closed(host)
            if not self._closed:
                self._tls_failed("tls-in", format_address(host, int(addr[1])), e)
        finally:
            self._tls_handshaking -= 1

    def _conn_up(self, c: Connection) -> None:
        """The connection is usable (TLS done, if any): tune it, say Hello."""
        assert c.tr is not None
        sock = c.tr.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (OSError, AttributeError):
                pass
            for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                with contextlib.suppress(OSError, AttributeError):
                    sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
        with contextlib.suppress(AttributeError, NotImplementedError):
            # Room to batch, bounded memory and latency (see SOCKET_BUFFER).
            c.tr.set_write_buffer_limits(
                high=min(WRITE_HIGH_WATER, self.config.send_queue_bytes // 4)
            )
        c.write(self._hello, self.loop.time())
        c.hs_timer = self.loop.call_later(self.config.connect_timeout, self._hs_timeout, c)
        if c.outbound:
            assert c.peer is not None
            link = self._link(c.peer)
            if link.conn is None:
                link.conn = c
                # Pipeline: what waited for the dial follows our Hello at once.
                self._write_pending(link, c)

    def _hs_timeout(self, c: Connection) -> None:
        c.hs_timer = None
        if c.ready or c.closing:
            return
        self._c["handshake_timeouts"] += 1
        self._c["handshake_failures"] += 1
        self._log_once(
            "handshake-timeout",
            "closing connection %s: no Hello within connect_timeout=%.3gs",
            c.peer or self._peername(c),
            self.config.connect_timeout,
        )
        c.close("handshake", abort=True)

    def _peername(self, c: Connection) -> str:
        if c.tr is None:
            return "?"
        name = c.tr.get_extra_info("peername")
        if isinstance(name, tuple) and len(name) >= 2:
            return format_address(str(name[0]), int(name[1]))
        return str(name)

    def _reject(self, c: Connection, counter: str, cause: str, msg: str, *args: Any) -> None:
        self._c[counter] += 1
        if counter not in ("bad_frames", "handshake_failures"):
            self._c["handshake_failures"] += 1  # a version/cluster mismatch is one too
        self._log_once(cause, msg, *args)
        c.close("rejected", abort=True)

    def _conn_data(self, c: Connection, data: bytes) -> None:
        if c.closing:
            return
        now = self.loop.time()
        c.last_recv = now
        self._c["bytes_received"] += len(data)
        msgs, fault = c.decoder.feed(data)
        if c.decoder.buffered:
            if msgs or not c.partial_since:
                c.partial_since = now  # a new partial frame started in this read
        else:
            c.partial_since = 0.0
        if not c.ready:
            if msgs:
                first = msgs[0]
                if type(first) is not wire.Hello:
                    self._reject(
                        c,
                        "bad_frames",
                        "before-hello",
                        "closing connection from %s: %s before Hello",
                        self._peername(c),
                        type(first).__name__,
                    )
                    return
                if not self._on_hello(c, first):
                    return
                msgs = msgs[1:]
            elif fault is None:
                if c.decoder.buffered > self.config.max_hello_bytes:
                    # A Hello is tiny: an unauthenticated peer may not make us buffer
                    # up to max_frame_size before saying who it is.
                    self._reject(
                        c,
                        "bad_frames",
                        "hello-size",
                        "closing connection from %s: %d bytes before a complete Hello",
                        self._peername(c),
                        c.decoder.buffered,
                    )
                return
        ctrl = 0
        if msgs:
            app = msgs
            beats = False
            for m in msgs:
                t = type(m)
                if t is wire.Gossip or t is wire.IHave:
                    continue
                # A Graft or Want costs what it asks for: each id may resend a payload.
                if t is wire.Graft:
                    ctrl += 1 + (len(m.ids) >> 1)
                elif t is wire.Want:
                    ctrl += 1 + self._want_cost(m.ranges)
                else:
                    ctrl += 1
                    if t is wire.Ping or t is wire.Pong or t is wire.Hello:
                        beats = True
            if beats:
                app = self._heartbeats(c, msgs, now)
            if app and c.peer is not None and self.engine is not None:
                c.last_app = now
                self._engine_call(self.engine.on_frame, c.peer, app)
            if self.bp.paused_links:  # (the common case skips the call)
                self.bp.maybe_pause(c, msgs, now)
        if fault is not None:
            self._reject(
                c,
                "bad_frames",
                f"frame-{fault.kind}",
                "closing connection to %s: bad frame (%s): %s",
                c.peer or self._peername(c),
                fault.kind,
                fault.detail,
            )
            return
        self._charge(c, len(data), ctrl, now)

    def _want_cost(self, ranges: list[int]) -> int:
        """Payloads a Want may make us resend: its ranges' spans, each at most catch_up_max
        (what the engine answers); a 20-byte request must not buy 100,000 resends."""
        cap = self.config.catch_up_max
        cost = 0
        for i in range(0, len(ranges) - 2, 3):
            span = ranges[i + 2] - ranges[i + 1] + 1
            if span > 0:
                cost += span if span < cap else cap
        return cost

    def _charge(self, c: Connection, nbytes: int, ctrl: int, now: float) -> None:
        """Take a read from the connection's buckets; pause reading while in debt.

        Pausing (not dropping) keeps the protocol intact for an honest peer that bursts,
        while TCP pushes back on a flooding one: its kernel buffers fill and it blocks.
        """
        cfg = self.config
        dt = now - c.bucket_at
        c.bucket_at = now
        b = min(float(self.read_burst), c.bucket_bytes + dt * cfg.peer_read_rate) - nbytes
        k = min(float(cfg.peer_control_rate), c.bucket_ctrl + dt * cfg.peer_control_rate) - ctrl
        c.bucket_bytes = b
        c.bucket_ctrl = k
        if (b >= 0.0 and k >= 0.0) or c.read_paused or c.closing or c.tr is None:
            return
        wait = max(-b / cfg.peer_read_rate, -k / cfg.peer_control_rate)
        self._c["read_throttles"] += 1
        self._log_once(
            "throttle",
            "pausing reads from %s for %.3gs: over peer_read_rate=%d B/s or "
            "peer_control_rate=%d msg/s",
            c.peer or self._peername(c),
            wait,
            cfg.peer_read_rate,
            cfg.peer_control_rate,
        )
        with contextlib.suppress(AttributeError, NotImplementedError, RuntimeError):
            c.tr.pause_reading()
            c.read_paused = True
            # Our pause, not the peer's silence: do not count it against heartbeats.
            c.last_recv = now + wait
            if c.partial_since:
                c.partial_since += wait
            self.loop.call_later(wait, self._resume_reading, c)

    def _resume_reading(self, c: Connection) -> None:
        c.read_paused = False
        if c.closing or c.tr is None or c.bp_paused:
            return
        c.last_recv = max(c.last_recv, self.loop.time())
        with contextlib.suppress(AttributeError, NotImplementedError, RuntimeError):
            c.tr.resume_reading()

    def _remote_host(self, c: Connection) -> str:
        name = c.tr.get_extra_info("peername") if c.tr is not None else None
        if isinstance(name, tuple) and name:
            return str(name[0])
        return str(name)

    def _heartbeats(self, c: Connection, msgs: list[Any], now: float) -> list[Any]:
        app = []
        for m in msgs:
            t = type(m)
            if t is wire.Ping:
                if not c.paused and not c.closing:
                    c.write(encode_frame([wire.Pong(m.nonce)]), now)
            elif t is wire.Pong:
                pass
            elif t is wire.Hello:
                self._log_once("second-hello", "ignoring a second Hello from %s", c.peer)
            else:
                app.append(m)
        return app

    def _on_hello(self, c: Connection, h: wire.Hello) -> bool:
        if h.version != wire.PROTOCOL_VERSION:
            self._reject(
                c,
                "version_mismatches",
                "version",
                "refusing %s: protocol version %r, ours is %r",
                h.address or self._peername(c),
                h.version,
                wire.PROTOCOL_VERSION,
            )
            return False
        if h.cluster != self.config.cluster:
            self._reject(
                c,
                "cluster_mismatches",
                "cluster",
                "refusing %s: cluster %r, ours is %r",
                h.address or self._peername(c),
                h.cluster,
                self.config.cluster,
            )
            return False
        if c.outbound:
            assert c.peer is not None
            self.admission.mark_good(c.peer, self.loop.time())
            if h.address != c.peer:
                self._log_once(
                    "address-alias",
                    "peer dialled as %s advertises %s; keeping %s",
                    c.peer,
                    h.address,
                    c.peer,
                )
        else:
            try:
                parse_address(h.address)
            except ValueError:
                self._reject(
                    c,
                    "bad_frames",
                    "hello-address",
                    "refusing %s: bad advertised address %r",
                    self._peername(c),
                    h.address,
                )
                return False
            if h.address == self.address:
                self._reject(
                    c,
                    "handshake_failures",
                    "self",
                    "refusing a connection that claims our own address %s",
                    h.address,
                )
                return False
            c.peer = h.address
        if c.hs_timer is not None:
            c.hs_timer.cancel()
            c.hs_timer = None
        c.ready = True
        c.incarnation = h.incarnation
        c.node_id = h.node_id
        peer = c.peer
        link = self._link(peer)
        cur = link.conn
        if cur is None or cur is c:
            link.conn = c
        elif cur.ready and cur.incarnation != c.incarnation:
            # The peer restarted: the newer incarnation wins.
            if c.incarnation < cur.incarnation:
                self._reject(
                    c,
                    "handshake_failures",
                    "stale",
                    "refusing %s: stale incarnation %d",
                    peer,
                    c.incarnation,
                )
                return False
            link.conn = c
            cur.close("replaced")
            if self.engine is not None:
                self._engine_call(self.engine.on_disconnected, peer, "failed")
        else:
            self._c["duplicate_links"] += 1
            keep = self._prefer(cur, c)
            lose = c if keep is cur else cur
            link.conn = keep
            # The loser is drained; its dialler closes it once it is quiet (ticker).
            lose.last_app = self.loop.time()
        if link.conn is c:
            self._write_pending(link, c)
        return True

    def _prefer(self, a: Connection, b: Connection) -> Connection:
        """The connection both ends keep: the one dialled by the lower address."""
        assert b.peer is not None
        want_outbound = self.address < b.peer
        if a.outbound == want_outbound and b.outbound != want_outbound:
            return a
        return b

    def _conn_resumed(self, c: Connection, was_paused: bool) -> None:
        if c.peer is not None:
            link = self._links.get(c.peer)
            if link is not None and link.conn is c:
                self._write_pending(link, c)
        if was_paused:
            self.bp.writes_resumed()
        else:
            self.bp.wake_writers()

    def _pending_of(self, c: Connection) -> int:
        """Bytes the link of ``c`` still holds in our own queue."""
        link = self._links.get(c.peer) if c.peer is not None else None
        return link.pending_bytes if link is not None and link.conn is c else 0

    def _conn_lost(self, c: Connection, exc: Exception | None) -> None:
        if c.lost:
            return  # already ended by _abandon
        c.lost = True
        if (
            exc is not None
            and not c.ready
            and isinstance(exc, _ssl.SSLError)
            and (self._ssl is not None or self._client_ssl is not None)
        ):
            # TLS 1.3: the server checks the client's certificate after the client's
            # handshake is done; its refusal arrives as an alert on the first read.
            self._tls_failed("tls-out" if c.outbound else "tls-in", c.peer or "a peer", exc)
        if c.host is not None:
            self.admission.host_closed(c.host)
            c.host = None
        if c.hs_timer is not None:
            c.hs_timer.cancel()
            c.hs_timer = None
        if c.paused:
            c.paused = False
            self.bp.writes_resumed()
        if c in self._conns:
            self._conns.discard(c)
            self._c["connections"] -= 1
            if not self._conns and self._all_gone is not None and not self._all_gone.done():
                self._all_gone.set_result(None)
        self.bp.wake_writers()
        peer = c.peer
        if peer is None:
            return
        link = self._links.get(peer)
        if link is None or link.conn is not c:
            return
        link.conn = None
        reason = c.close_reason
        if self._closed:
            return
        report: str | None
        if reason in ("engine", "idle", "replaced", "shutdown"):
            report = None
        elif reason == "slow":
            report = "slow"
        elif reason is None and exc is None and c.ready:
            report = "closed"
        else:
            report = "failed"
        if report is None:
            if link.pending and not link.dialing:
                self._dial(link)
            else:
                self._drop_link_if_idle(link)
            return
        self._drop_link_if_idle(link, force=True)
        if self.engine is not None:
            self._engine_call(self.engine.on_disconnected, peer, report)

    # ------------------------------------------------------------------ heartbeats
    def _on_ticker(self) -> None:
        if self._closed:
            return
        self._ticker = self.loop.call_later(self._tick_every, self._on_ticker)
        now = self.loop.time()
        cfg = self.config
        active = set(self.engine.active_view) if self.engine is not None else set()
        ping: bytes | None = None
        for c in list(self._conns):
            if c.eof_sent:
                if now - c.closing_since > cfg.heartbeat_timeout and c.tr is not None:
                    c.tr.close()
                continue
            if c.partial_since and now - c.partial_since > cfg.frame_timeout and not c.closing:
                self._c["frame_timeouts"] += 1
                self._log_once(
                    "frame-timeout",
                    "closing connection to %s: a frame of %d+ bytes not whole within "
                    "frame_timeout=%.3gs",
                    c.peer or self._peername(c),
                    c.decoder.buffered,
                    cfg.frame_timeout,
                )
                c.close("slowloris", abort=True)
                continue
            if c.closing or not c.ready or c.peer is None:
                continue
            if now - c.last_recv > cfg.heartbeat_timeout and not c.bp_paused:
                self._c["heartbeat_timeouts"] += 1
                self._log_once(
                    "heartbeat",
                    "closing link to %s: silent for %.3gs (heartbeat_timeout)",
                    c.peer,
                    now - c.last_recv,
                )
                c.close("heartbeat", abort=True)
                continue
            link = self._links.get(c.peer)
            primary = link is not None and link.conn is c
            if not primary:
                # A duplicate link: its dialler closes it once it has been quiet a while.
                if c.outbound and now - c.last_app > cfg.heartbeat_interval:
                    c.close("duplicate")
                continue
            if (
                c.peer not in active
                and now - c.last_app > cfg.heartbeat_timeout
                and link is not None
                and not link.pending
            ):
                c.close("idle")
                continue
            if c.paused and link is not None and link.pending:
                if now - c.paused_since > cfg.heartbeat_timeout:
                    # It has not taken a byte from us for a heartbeat timeout while we
                    # have output waiting: slow. (broadcast() may be waiting on it.)
                    self._drop_slow(link, c, link.pending_bytes)
                continue
            if now - c.last_send >= cfg.heartbeat_interval and not c.paused:
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
