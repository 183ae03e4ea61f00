"""REFERENCE ONLY, not part of gossipfast's API: a naive eager flood for ``gossipfast bench``.

It is the floor that ``gossipfast bench`` compares the real protocol against: the same
sockets (TCP on the event loop gossipfast uses, uvloop when installed), the same framing
(4-byte big-endian length + msgspec msgpack) and the same write coalescing (one
``write()`` per peer per loop turn), but no protocol at all: every new message is sent
to every neighbour but the one it came from, and duplicates are dropped with a set.
No membership, no repair, no back-pressure beyond pausing the publisher.

:class:`Star` is the host's ceiling beside it: every member connected to every other, a
publisher writes each frame straight to all of them, nobody relays.

It imports nothing from gossipfast so that it stays an independent floor (and the bench
worker loads it by file path).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec


class _Msg(msgspec.Struct, array_like=True):
    origin: int
    seq: int
    payload: bytes


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Msg).decode


class _Link(asyncio.Protocol):
    def __init__(self, owner: Flood) -> None:
        self.owner = owner
        self.tr: asyncio.Transport | None = None
        self.buf = bytearray()  # inbound bytes not yet a whole frame
        self.out: list[bytes] = []  # outbound frames of this loop turn
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tr = transport  # type: ignore[assignment]
        self.owner.links.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.owner.links:
            self.owner.links.remove(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.owner.resumed()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        end = len(buf)
        owner = self.owner
        mv = memoryview(buf)
        try:
            while end - pos >= 4:
                n = int.from_bytes(mv[pos : pos + 4], "big")
                if end - pos - 4 < n:
                    break
                # Forward the frame's own bytes: the floor pays no re-encoding.
                owner.received(
                    _decode(mv[pos + 4 : pos + 4 + n]), bytes(mv[pos : pos + 4 + n]), self
                )
                pos += 4 + n
        finally:
            mv.release()
        if pos:
            del buf[:pos]


class Flood:
    """One flood member: ``listen``, ``connect`` to its overlay neighbours, ``publish``."""

    def __init__(self, origin: int, deliver: Callable[[bytes], None]) -> None:
        self.origin = origin
        self.deliver = deliver
        self.links: list[_Link] = []
        self.seen: set[tuple[int, int]] = set()
        self.seq = 0
        self.sent = 0  # payload messages written (for RMR)
        self._dirty: list[_Link] = []
        self._flush_scheduled = False
        self._writable: asyncio.Event | None = None
        self.address = ""

    async def listen(self) -> str:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Link(self), "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()[:2]
        self.address = f"{host}:{port}"
        return self.address

    async def connect(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        await asyncio.get_running_loop().create_connection(lambda: _Link(self), host, int(port))

    # -- sending ---------------------------------------------------------------------
    def _queue(self, frame: bytes, skip: _Link | None) -> None:
        for link in self.links:
            if link is not skip:
                if not link.out:
                    self._dirty.append(link)
                link.out.append(frame)
                self.sent += 1
        if not self._flush_scheduled and self._dirty:
            # Coalesce: everything queued during this loop turn leaves in one write().
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        for link in dirty:
            out, link.out = link.out, []
            if link.tr is not None and not link.tr.is_closing():
                link.tr.write(b"".join(out))

    def _frame(self, msg: _Msg) -> bytes:
        body = _encode(msg)
        return len(body).to_bytes(4, "big") + body

    async def publish(self, payload: bytes) -> None:
        """Flood ``payload`` to every neighbour; wait only while a link is paused."""
        self.seq += 1
        self.seen.add((self.origin, self.seq))
        self._queue(self._frame(_Msg(self.origin, self.seq, payload)), None)
        if len(self._dirty) and sum(len(lk.out) for lk in self._dirty[:1]) >= 256:
            self.flush()  # a publisher that never yields still reaches the kernel
        if any(lk.paused for lk in self.links):
            self.flush()
            self._writable = asyncio.Event()
            await self._writable.wait()

    def resumed(self) -> None:
        if self._writable is not None and not any(lk.paused for lk in self.links):
            self._writable.set()
            self._writable = None

    def received(self, msg: _Msg, frame: bytes, link: _Link) -> None:
        key = (msg.origin, msg.seq)
        if key in self.seen:
            return
        self.seen.add(key)
        self.deliver(msg.payload)
        self._queue(frame, link)


class Star(Flood):
    """The host's ceiling for ``gossipfast bench``: connected to every other member, a
    publisher writes each frame to all of them; a receiver delivers and relays nothing.

    The same sockets, framing and write coalescing as :class:`Flood`, no relay: what
    one publisher's writes and the receivers' reads cost on this host.
    """

    def received(self, msg: _Msg, frame: bytes, link: _Link) -> None:
        self.deliver(msg.payload)
