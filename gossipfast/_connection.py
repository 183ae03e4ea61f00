"""One TCP connection's state machine: the handshake, read budgets, heartbeats, and the
per-connection checks of the transport's ticker.

A :class:`Connection` is the ``asyncio.Protocol`` of one socket. It says ``Hello`` and
checks the peer's (version, cluster, advertised address: :func:`hello_refusal`, sans-IO),
decodes frames, answers ``Ping``, charges each read to its :class:`ReadBudget` (pausing
reads while in debt), and closes itself on a handshake timeout, a dribbled frame, a
silent peer or bad input. What concerns the set of links (which connection is a peer's
link, what waits for it, what the engine hears) stays with its owner,
:class:`gossipfast.transport.Transport`, through the few ``_conn_*`` and ``_link_*``
calls below.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from typing import TYPE_CHECKING, Any

from . import wire
from ._codec import FrameDecoder, encode_frame
from .config import Config

if TYPE_CHECKING:
    from .transport import Transport

#: Kernel send and receive buffer of each connection (Linux doubles it): bounded, so
#: that overload becomes back-pressure, not seconds of queue per hop (docs/internals.md).
SOCKET_BUFFER = 64 << 10
#: Write-buffer high-water mark of a connection (at most send_queue_bytes / 4).
WRITE_HIGH_WATER = 64 << 10


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


def control_cost(msgs: list[Any], catch_up_max: int) -> tuple[int, bool]:
    """What a batch costs against ``peer_control_rate``, and whether it holds a ``Ping``,
    ``Pong`` or ``Hello`` (the transport's own). Payload messages cost nothing here (the
    byte bucket pays for them); a Graft or Want costs what it may make us resend."""
    ctrl = 0
    beats = False
    for m in msgs:
        t = type(m)
        if t is wire.Gossip or t is wire.IHave:
            continue
        if t is wire.Graft:
            ctrl += 1 + (len(m.ids) >> 1)
        elif t is wire.Want:
            ctrl += 1 + want_cost(m.ranges, catch_up_max)
        else:
            ctrl += 1
            if t is wire.Ping or t is wire.Pong or t is wire.Hello:
                beats = True
    return ctrl, beats


def want_cost(ranges: list[int], cap: int) -> int:
    """Payloads a Want may make us resend: its ranges' spans, each at most ``cap``
    (``catch_up_max``, what the engine answers); a 20-byte request must not buy 100,000
    resends."""
    cost = 0
    for i in range(0, len(ranges) - 2, 3):
        span = ranges[i + 2] - ranges[i + 1] + 1
        if span > 0:
            cost += span if span < cap else cap
    return cost


#: Why a peer is refused at its first message: the counter, the cause it is logged under
#: once, and the log message with its arguments (see :meth:`Connection.reject`).
Refusal = tuple[str, str, str, tuple[Any, ...]]


def hello_refusal(first: Any, cluster: str, ours: str, inbound: bool, who: str) -> Refusal | None:
    """Why the peer's first message is refused, or None for a Hello we accept.

    It must be a ``Hello`` of our protocol version and ``cluster``; an inbound peer's
    advertised address, which becomes its name, must be well-formed and not ``ours``.
    ``who`` names the socket in logs.
    """
    if type(first) is not wire.Hello:
        return (
            "bad_frames",
            "before-hello",
            "closing connection from %s: %s before Hello",
            (who, type(first).__name__),
        )
    if first.version != wire.PROTOCOL_VERSION:
        return (
            "version_mismatches",
            "version",
            "refusing %s: protocol version %r, ours is %r",
            (first.address or who, first.version, wire.PROTOCOL_VERSION),
        )
    if first.cluster != cluster:
        return (
            "cluster_mismatches",
            "cluster",
            "refusing %s: cluster %r, ours is %r",
            (first.address or who, first.cluster, cluster),
        )
    if inbound:
        try:
            parse_address(first.address)
        except ValueError:
            return (
                "bad_frames",
                "hello-address",
                "refusing %s: bad advertised address %r",
                (who, first.address),
            )
        if first.address == ours:
            return (
                "handshake_failures",
                "self",
                "refusing a connection that claims our own address %s",
                (first.address,),
            )
    return None


def tune(tr: asyncio.Transport, send_queue_bytes: int) -> None:
    """No Nagle delay; bounded kernel and transport buffers (see ``SOCKET_BUFFER``)."""
    sock = tr.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
    with contextlib.suppress(AttributeError, NotImplementedError):
        # Room to batch, bounded memory and latency.
        tr.set_write_buffer_limits(high=min(WRITE_HIGH_WATER, send_queue_bytes // 4))


class ReadBudget:
    """The two token buckets of one connection's reads: bytes (``peer_read_rate``, one
    second's worth and at least one whole frame) and control messages
    (``peer_control_rate``), refilled by time."""

    __slots__ = ("at", "burst", "bytes", "ctrl", "ctrl_rate", "rate")

    def __init__(self, config: Config, burst: int, now: float) -> None:
        self.rate = config.peer_read_rate
        self.ctrl_rate = config.peer_control_rate
        self.burst = burst
        self.bytes = float(burst)
        self.ctrl = float(config.peer_control_rate)
        self.at = now

    def charge(self, nbytes: int, ctrl: int, now: float) -> float:
        """Take a read from the buckets; return how long reading must pause to pay the
        debt (0.0: none)."""
        dt = now - self.at
        self.at = now
        b = min(float(self.burst), self.bytes + dt * self.rate) - nbytes
        k = min(float(self.ctrl_rate), self.ctrl + dt * self.ctrl_rate) - ctrl
        self.bytes = b
        self.ctrl = k
        if b >= 0.0 and k >= 0.0:
            return 0.0
        return max(-b / self.rate, -k / self.ctrl_rate)


class Connection(asyncio.Protocol):
    """One TCP connection, before and after its handshake."""

    def __init__(self, owner: Transport, outbound: bool, peer: str | None) -> None:
        self.owner = owner
        self.config = owner.config
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
        self.budget = ReadBudget(owner.config, owner.read_burst, now)
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
        """Decode the whole buffer; the Hello first, then heartbeats here and the rest
        to the engine; charge the read to the budget."""
        if self.closing:
            return
        owner = self.owner
        now = owner.loop.time()
        self.last_recv = now
        owner._c["bytes_received"] += len(data)
        decoder = self.decoder
        msgs, fault = decoder.feed(data)
        if decoder.buffered:
            if msgs or not self.partial_since:
                self.partial_since = now  # a new partial frame started in this read
        else:
            self.partial_since = 0.0
        if not self.ready:
            rest = self._handshake(msgs, fault)
            if rest is None:
                return
            msgs = rest
        ctrl = 0
        if msgs:
            ctrl, beats = control_cost(msgs, self.config.catch_up_max)
            app = self._heartbeats(msgs, now) if beats else msgs
            if app and self.peer is not None and owner.engine is not None:
                self.last_app = now
                owner._conn_received(self, app)
            bp = owner.bp
            if bp.paused_links:  # (the common case skips the call)
                bp.maybe_pause(self, msgs, now)
        if fault is not None:
            self.reject(
                "bad_frames",
                f"frame-{fault.kind}",
                "closing connection to %s: bad frame (%s): %s",
                self.peer or self.peername(),
                fault.kind,
                fault.detail,
            )
            return
        self._charge(len(data), ctrl, now)

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

    # -- the handshake ------------------------------------------------------------------
    def start(self, hello: bytes, now: float) -> None:
        """The connection is usable (TLS done, if any): tune it, say Hello, start the
        handshake timer."""
        assert self.tr is not None
        tune(self.tr, self.config.send_queue_bytes)
        self.write(hello, now)
        self.hs_timer = self.owner.loop.call_later(self.config.connect_timeout, self._hs_timeout)

    def _handshake(self, msgs: list[Any], fault: Any) -> list[Any] | None:
        """Before the peer's Hello: the messages after an accepted Hello, or None (no
        Hello yet, or the connection was refused)."""
        if msgs:
            return msgs[1:] if self._on_hello(msgs[0]) else None
        if fault is not None:
            return msgs  # no message, a fault: data_received rejects it
        if self.decoder.buffered > self.config.max_hello_bytes:
            # A Hello is tiny: an unauthenticated peer may not make us buffer up to
            # max_frame_size before saying who it is.
            self.reject(
                "bad_frames",
                "hello-size",
                "closing connection from %s: %d bytes before a complete Hello",
                self.peername(),
                self.decoder.buffered,
            )
        return None

    def _on_hello(self, first: Any) -> bool:
        """Check the peer's first message (:func:`hello_refusal`); if it is a good Hello,
        become ready and let the owner make us the peer's link (it may still refuse a
        stale incarnation)."""
        owner = self.owner
        refusal = hello_refusal(
            first, self.config.cluster, owner.address, not self.outbound, self.peername()
        )
        if refusal is not None:
            counter, cause, msg, args = refusal
            self.reject(counter, cause, msg, *args)
            return False
        h: wire.Hello = first
        if self.outbound:
            assert self.peer is not None
            owner.admission.mark_good(self.peer, owner.loop.time())
            if h.address != self.peer:
                owner._log_once(
                    "address-alias",
                    "peer dialled as %s advertises %s; keeping %s",
                    self.peer,
                    h.address,
                    self.peer,
                )
        else:
            self.peer = h.address  # checked by hello_refusal
        self.cancel_handshake_timer()
        self.ready = True
        self.incarnation = h.incarnation
        self.node_id = h.node_id
        return owner._link_ready(self)

    def _hs_timeout(self) -> None:
        self.hs_timer = None
        if self.ready or self.closing:
            return
        c = self.owner._c
        c["handshake_timeouts"] += 1
        c["handshake_failures"] += 1
        self.owner._log_once(
            "handshake-timeout",
            "closing connection %s: no Hello within connect_timeout=%.3gs",
            self.peer or self.peername(),
            self.config.connect_timeout,
        )
        self.close("handshake", abort=True)

    def cancel_handshake_timer(self) -> None:
        """Stop the handshake timer (Hello accepted, or the connection is gone)."""
        if self.hs_timer is not None:
            self.hs_timer.cancel()
            self.hs_timer = None

    def reject(self, counter: str, cause: str, msg: str, *args: Any) -> None:
        """Refuse the peer: count under ``counter`` (and as a handshake failure), log once
        per ``cause``, abort the connection."""
        c = self.owner._c
        c[counter] += 1
        if counter not in ("bad_frames", "handshake_failures"):
            c["handshake_failures"] += 1  # a version/cluster mismatch is one too
        self.owner._log_once(cause, msg, *args)
        self.close("rejected", abort=True)

    # -- heartbeats and read budgets ----------------------------------------------------
    def _heartbeats(self, msgs: list[Any], now: float) -> list[Any]:
        """Answer Pings; return the messages for the engine."""
        app = []
        for m in msgs:
            t = type(m)
            if t is wire.Ping:
                if not self.paused and not self.closing:
                    self.write(encode_frame([wire.Pong(m.nonce)]), now)
            elif t is wire.Pong:
                pass
            elif t is wire.Hello:
                self.owner._log_once("second-hello", "ignoring a second Hello from %s", self.peer)
            else:
                app.append(m)
        return app

    def _charge(self, nbytes: int, ctrl: int, now: float) -> None:
        """Take a read from the budget; pause reading while in debt.

        Pausing (not dropping) keeps the protocol intact for an honest peer that bursts,
        while TCP pushes back on a flooding one: its kernel buffers fill and it blocks.
        """
        wait = self.budget.charge(nbytes, ctrl, now)
        if not wait or self.read_paused or self.closing or self.tr is None:
            return
        cfg = self.config
        self.owner._c["read_throttles"] += 1
        self.owner._log_once(
            "throttle",
            "pausing reads from %s for %.3gs: over peer_read_rate=%d B/s or "
            "peer_control_rate=%d msg/s",
            self.peer or self.peername(),
            wait,
            cfg.peer_read_rate,
            cfg.peer_control_rate,
        )
        with contextlib.suppress(AttributeError, NotImplementedError, RuntimeError):
            self.tr.pause_reading()
            self.read_paused = True
            # Our pause, not the peer's silence: do not count it against heartbeats.
            self.last_recv = now + wait
            if self.partial_since:
                self.partial_since += wait
            self.owner.loop.call_later(wait, self.resume_reading)

    def resume_reading(self) -> None:
        """The read budget's pause is over: read again unless back-pressure holds it."""
        self.read_paused = False
        if self.closing or self.tr is None or self.bp_paused:
            return
        self.last_recv = max(self.last_recv, self.owner.loop.time())
        with contextlib.suppress(AttributeError, NotImplementedError, RuntimeError):
            self.tr.resume_reading()

    def check(self, now: float) -> bool:
        """The ticker's look at this connection: finish a half-close the peer never
        answered, close on a dribbled frame or a silent peer. True when it is a ready,
        open link whose link-level checks (idle, duplicate, slow, ping) are due."""
        cfg = self.config
        if self.eof_sent:
            if now - self.closing_since > cfg.heartbeat_timeout and self.tr is not None:
                self.tr.close()
            return False
        if self.partial_since and now - self.partial_since > cfg.frame_timeout and not self.closing:
            self.owner._c["frame_timeouts"] += 1
            self.owner._log_once(
                "frame-timeout",
                "closing connection to %s: a frame of %d+ bytes not whole within "
                "frame_timeout=%.3gs",
                self.peer or self.peername(),
                self.decoder.buffered,
                cfg.frame_timeout,
            )
            self.close("slowloris", abort=True)
            return False
        if self.closing or not self.ready or self.peer is None:
            return False
        if now - self.last_recv > cfg.heartbeat_timeout and not self.bp_paused:
            self.owner._c["heartbeat_timeouts"] += 1
            self.owner._log_once(
                "heartbeat",
                "closing link to %s: silent for %.3gs (heartbeat_timeout)",
                self.peer,
                now - self.last_recv,
            )
            self.close("heartbeat", abort=True)
            return False
        return True

    def is_slow(self, now: float) -> bool:
        """Writes paused for longer than ``heartbeat_timeout``: it has taken no byte from
        us for that long (its link drops it as slow when output waits for it)."""
        return self.paused and now - self.paused_since > self.config.heartbeat_timeout

    def ping_due(self, now: float) -> bool:
        """Nothing sent for a heartbeat interval and writes not paused."""
        return now - self.last_send >= self.config.heartbeat_interval and not self.paused

    # -- writing and closing ------------------------------------------------------------
    def write(self, data: bytes | list[bytes], now: float) -> None:
        """Write framed bytes (or a list of buffers, written in order without joining
        them) and note the time.

        A transport that died under us (uvloop raises RuntimeError on a closed handle,
        both loops on a write after EOF) fails this connection instead of raising into
        the caller (flush() runs as a loop callback and serves every other peer too).
        """
        assert self.tr is not None
        try:
            if isinstance(data, list):
                self.tr.writelines(data)
                size = sum(map(len, data))
            else:
                self.tr.write(data)
                size = len(data)
        except (RuntimeError, OSError) as e:
            self.owner._c["send_drops"] += 1
            self.owner._log_once("write-failed", "write to %s failed: %s", self.peer, e)
            self.close("write-failed", abort=True)
            return
        self.last_send = now
        self.sent_bytes += size
        self.owner._c["bytes_sent"] += size
        marks = self.marks
        if self.tr.get_write_buffer_size():
            if not marks or marks[-1][1] < self.sent_bytes:
                marks.append((now, self.sent_bytes))
        else:
            while marks and marks[0][1] <= self.sent_bytes:
                marks.popleft()

    def note_progress(self, now: float) -> int:
        """Move ``drained_at`` to ``now`` if bytes left for the kernel since the last
        look; return how many bytes of our stream have left so far."""
        assert self.tr is not None
        head = self.sent_bytes - self.tr.get_write_buffer_size()
        if head != self.drained:
            self.drained = head
            self.drained_at = now
        return head

    def queue_delay(self, now: float) -> float:
        """How long the oldest byte queued for this connection (in the transport's
        buffer, or in the link's queue behind it) has waited (0: none).

        Also notes progress (:meth:`note_progress`).
        """
        tr = self.tr
        if tr is None:
            return 0.0
        head = self.note_progress(now)
        marks = self.marks
        while marks and marks[0][1] <= head:
            marks.popleft()
        return now - marks[0][0] if marks else 0.0

    def close(self, reason: str, abort: bool = False) -> None:
        """Close on purpose; ``reason`` decides what the engine is told."""
        if self.close_reason is None:
            self.close_reason = reason
        self.cancel_handshake_timer()
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

    def peername(self) -> str:
        """The remote ``host:port`` as the socket reports it (for logs)."""
        if self.tr is None:
            return "?"
        name = self.tr.get_extra_info("peername")
        if isinstance(name, tuple) and len(name) >= 2:
            return format_address(str(name[0]), int(name[1]))
        return str(name)

    def remote_host(self) -> str:
        """The remote IP (what the per-host limits count)."""
        name = self.tr.get_extra_info("peername") if self.tr is not None else None
        if isinstance(name, tuple) and name:
            return str(name[0])
        return str(name)


__all__ = [
    "SOCKET_BUFFER",
    "WRITE_HIGH_WATER",
    "Connection",
    "ReadBudget",
    "Refusal",
    "control_cost",
    "format_address",
    "hello_refusal",
    "parse_address",
    "want_cost",
]
