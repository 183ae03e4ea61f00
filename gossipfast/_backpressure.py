"""Back-pressure: when a link counts as congested, and what waits while one is.

Congestion is measured per link as the age of its oldest queued byte, and as bytes
queued for bursts that have no age yet. A publisher's ``broadcast()`` waits
(:meth:`BackPressure.wait_writable`) past ``QUEUE_DELAY_MAX`` or ``LINK_QUEUE_MAX``; a
relay stops reading the connections that feed it (:meth:`BackPressure.maybe_pause`) only
past a quarter of ``Config.send_queue_bytes`` queued for one link, for at most
``BACKPRESSURE_PAUSE_MAX`` per episode. A link that passed nothing on for
``STALL_AFTER`` is stalled, not slow, and holds neither. The figures behind the
constants are in docs/internals.md (the transport's "Back-pressure") and bench/README.md
("Back-pressure by queue age").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from . import wire

if TYPE_CHECKING:
    from .transport import Connection

#: A publisher's ``broadcast()`` waits while the oldest byte queued for one of its
#: links (above the kernel's buffer) has waited longer than this. Time, not bytes: the
#: same backlog is 6 ms of 1 KiB messages at 10,000/s and 60 ms of 100 B ones at
#: 1,000/s, and what must stay short is the delay each hop adds before the graft
#: timers (``graft_timeout_1``) take the message for lost.
QUEUE_DELAY_MAX = 0.02
#: Bytes queued for one link (the transport's buffer and our own queue) that hold a
#: publisher at once, whatever their age: a burst queued in one go has no age yet.
#: A relay's only bound is in bytes too, a quarter of ``Config.send_queue_bytes``
#: (8 MiB at the default), never an age: pausing a relay's reads holds every tree
#: through it, relays that feed each other then wait on each other in cycles, and the
#: age of a queue on a busy host says more about scheduling than about a slow peer.
LINK_QUEUE_MAX = 1 << 20
#: A link that passed nothing on to the kernel for this long is stalled, not slow:
#: back-pressure would only spread its stall to every other tree, so it is left out of
#: the congestion test; its queue is bounded by ``Config.send_queue_bytes`` and it is
#: dropped as slow after ``heartbeat_timeout`` without progress. Not much shorter:
#: the kernel's buffers (``SOCKET_BUFFER`` each way) hold about 100 ms of a peer that
#: reads 3 MB/s, and the link shows no progress until they drain.
STALL_AFTER = 0.5
#: While readers are paused or a publisher waits, congestion is looked at this often.
BACKPRESSURE_CHECK = 0.01
#: Longest back-pressure pause of one episode: then every paused reader gets a read,
#: so a chain of slowly draining links cannot starve a connection (its heartbeats wait
#: while it is paused).
BACKPRESSURE_PAUSE_MAX = 0.5


def feeds_congestion(msgs: list[Any]) -> bool:
    """True if a batch carries payloads or requests that make us send some.

    Back-pressure pauses only such inputs: pausing a peer that merely announces (IHave)
    or prunes relieves nothing, and such pauses chained links into cycles.
    """
    for m in msgs:
        t = type(m)
        if t is wire.Gossip or t is wire.Graft or t is wire.Want:
            return True
    return False


class BackPressure:
    """The congestion verdict over a transport's connections, the readers it paused and
    the publishers waiting for it.

    ``conns`` and ``links`` are the transport's own collections (read, never changed);
    ``pending_bytes(c)`` is what the link of connection ``c`` still holds in our own
    queue; ``resume_reading(c)`` lets ``c`` read again (unless another limit holds it);
    ``counters`` gets ``backpressure_pauses`` and ``backpressure_stalls``.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        conns: Collection[Connection],
        pending_bytes: Callable[[Connection], int],
        resume_reading: Callable[[Connection], None],
        counters: dict[str, int],
        relay_queue_max: int,
    ) -> None:
        self.loop = loop
        self._conns = conns
        self._pending_bytes = pending_bytes
        self._resume_reading = resume_reading
        self._c = counters
        self._relay_queue_max = relay_queue_max
        #: Connections whose writes are paused now (cheap pre-check of congestion).
        self.paused_links = 0
        #: Connections whose reading we paused, since when, and the timer that looks at
        #: the congestion again while readers are paused or writers wait.
        self._paused: list[Connection] = []
        self._since = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._closed = False
        #: The publishers' last verdict and when it was reached: kept for a
        #: millisecond, or until :meth:`stale`.
        self._cg_at = -1.0
        self._cg = False

    # -- the verdicts ------------------------------------------------------------------
    def overfull(self, now: float) -> bool:
        """True while a link that still moves holds more bytes than the relay bound (a
        link that passed nothing on for ``STALL_AFTER`` does not count)."""
        if self.paused_links:
            limit = self._relay_queue_max
            for c in self._conns:
                if not c.paused or c.closing or c.tr is None:
                    continue
                c.note_progress(now)
                if now - c.drained_at >= STALL_AFTER:
                    continue
                if c.tr.get_write_buffer_size() + self._pending_bytes(c) > limit:
                    return True
        return False

    def congested(self, now: float) -> bool:
        """True while a link that still moves holds more than ``LINK_QUEUE_MAX`` or bytes
        queued for longer than ``QUEUE_DELAY_MAX`` (a publisher's bound). A link that
        passed nothing on for ``STALL_AFTER`` does not count."""
        if now - self._cg_at < 0.001:
            return self._cg
        self._cg_at = now
        cg = False
        if self.paused_links:
            for c in self._conns:
                if not c.paused or c.closing or c.tr is None:
                    continue
                delay = c.queue_delay(now)  # (notes progress first)
                if now - c.drained_at >= STALL_AFTER:
                    continue
                if delay > QUEUE_DELAY_MAX:
                    cg = True
                    break
                if c.tr.get_write_buffer_size() + self._pending_bytes(c) > LINK_QUEUE_MAX:
                    cg = True
                    break
        self._cg = cg
        return cg

    def stale(self) -> None:
        """Queues grew (a flush): the next question gets a fresh verdict."""
        self._cg_at = -1.0

    # -- writes paused by the kernel -----------------------------------------------------
    def writes_paused(self) -> None:
        """A connection's writes were paused (its kernel buffer is full)."""
        self.paused_links += 1

    def writes_resumed(self) -> None:
        """A connection's writes resumed, or a paused one closed."""
        self.paused_links -= 1
        if not self.paused_links and self._paused:
            self.release()
        self.wake_writers()

    # -- relays: reads paused while a link they feed is congested -------------------------
    def maybe_pause(self, c: Connection, msgs: list[Any], now: float) -> None:
        """Stop reading ``c`` if it just fed us payloads or requests while one of our
        links holds more than the relay bound: reading on would only queue its input
        in our memory; pausing lets TCP push back on the sender, hop by hop, until the
        publisher's :meth:`wait_writable` holds ``broadcast()``."""
        if (
            self.paused_links
            and not c.paused
            and not c.bp_paused
            and c.ready
            and feeds_congestion(msgs)
            and self.overfull(now)
        ):
            self._pause(c)

    def _pause(self, c: Connection) -> None:
        tr = c.tr
        if tr is None or c.closing:
            return
        try:
            tr.pause_reading()
        except (AttributeError, NotImplementedError, RuntimeError):
            return
        if not self._paused:
            self._since = self.loop.time()
        c.bp_paused = True
        self._paused.append(c)
        self._c["backpressure_pauses"] += 1
        self._arm()

    def _arm(self) -> None:
        if self._timer is None and not self._closed:
            self._timer = self.loop.call_later(BACKPRESSURE_CHECK, self._check)

    def _check(self) -> None:
        self._timer = None
        now = self.loop.time()
        overfull = self.overfull(now)
        if self._paused and (not overfull or now - self._since >= BACKPRESSURE_PAUSE_MAX):
            if overfull:
                self._c["backpressure_stalls"] += 1
            self.release()
        if self._waiters and not self.congested(now):
            self.wake_writers()
        if (overfull and self._paused) or self._waiters:
            self._arm()

    def release(self) -> None:
        """Let every reader we paused read again."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        paused, self._paused = self._paused, []
        now = self.loop.time()
        for c in paused:
            c.bp_paused = False
            # our pause, not the peer's silence: not counted against heartbeats
            c.last_recv = max(c.last_recv, now)
            if not c.read_paused:  # else the read-rate limit resumes it in its own time
                self._resume_reading(c)

    # -- publishers ------------------------------------------------------------------------
    async def wait_writable(self) -> None:
        """Return once no link is congested (or :meth:`close` was called)."""
        while not self._closed and self.congested(self.loop.time()):
            fut: asyncio.Future[None] = self.loop.create_future()
            self._waiters.append(fut)
            self._arm()
            await fut

    def wake_writers(self) -> None:
        """Let every waiting publisher look again."""
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for f in waiters:
                if not f.done():
                    f.set_result(None)

    def close(self) -> None:
        """Stop the timer and release every waiting publisher (the transport closed)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.wake_writers()


__all__ = [
    "BACKPRESSURE_CHECK",
    "BACKPRESSURE_PAUSE_MAX",
    "LINK_QUEUE_MAX",
    "QUEUE_DELAY_MAX",
    "STALL_AFTER",
    "BackPressure",
    "feeds_congestion",
]
