"""What the engine sent during one event-loop turn, by peer, until the transport's
flush: then one ``write()`` per peer, and the links the engine closed close once their
queue is written.

The :class:`Outbox` decides no timing (the transport's ``flush`` is scheduled by the
transport) and opens no socket: it encodes and hands bytes to :class:`Links`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._codec import encode_frame, encode_frame_parts, encode_frames
from ._links import Links


def _split(msgs: list[Any], limit: int) -> list[list[Any]]:
    """Cut a batch into frames whose bodies stay under ``limit`` bytes."""
    if len(encode_frame(msgs)) - 4 <= limit or len(msgs) == 1:
        return [msgs]
    mid = len(msgs) // 2
    return _split(msgs[:mid], limit) + _split(msgs[mid:], limit)


class Outbox:
    """The turn's messages by peer (:meth:`add`), written by :meth:`write`.

    ``address`` is ours (set once known): messages to it are dropped. ``counters`` gets
    ``frames_sent``, ``send_drops`` and ``engine_errors``; ``log_once(cause, msg, *args,
    exc=)`` logs a batch that cannot be encoded.
    """

    def __init__(
        self,
        links: Links,
        max_frame_size: int,
        counters: dict[str, int],
        log_once: Callable[..., None],
    ) -> None:
        self.links = links
        self.address = ""
        self._limit = max_frame_size
        self._c = counters
        self._log_once = log_once
        self._out: dict[str, list[Any]] = {}
        self._closing: set[str] = set()

    def add(self, outbox: dict[str, list[Any]], closing: list[str]) -> None:
        """Take one drain of the engine: messages by peer, peers whose link it closed."""
        out = self._out
        for peer, msgs in outbox.items():
            if not msgs:
                continue
            have = out.get(peer)
            if have is None:
                out[peer] = list(msgs)
            else:
                have.extend(msgs)
        if closing:
            self._closing.update(closing)

    def write(self, now: float) -> None:
        """Hand each peer's messages to its link: one frame, or a list of buffers, or
        frames under ``max_frame_size`` when one would exceed it."""
        out, self._out = self._out, {}
        limit = self._limit
        links = self.links
        for peer, msgs in out.items():
            if peer == self.address:
                self._c["send_drops"] += len(msgs)
                continue
            data: bytes | list[bytes]
            try:
                data = encode_frame_parts(msgs, limit) or encode_frame(msgs)
                if type(data) is bytes and len(data) - 4 > limit:
                    data = encode_frames(_split(msgs, limit))
            except Exception:
                # A message the engine built that msgpack cannot carry (an engine bug):
                # drop that peer's batch, keep serving the others.
                self._c["engine_errors"] += 1
                self._c["send_drops"] += len(msgs)
                self._log_once("encode", "cannot encode a batch for %s", peer, exc=True)
                continue
            self._c["frames_sent"] += 1
            links.send(links.link(peer), data, now)

    def close_links(self) -> None:
        """Close the links the engine closed: at once, or once their queue is written."""
        if not self._closing:
            return
        by_peer = self.links.by_peer
        for peer in self._closing:
            link = by_peer.get(peer)
            if link is None:
                continue
            if link.pending:
                link.close_after_flush = True  # closed once the queue is written
            elif link.conn is not None:
                link.conn.close("engine")
        self._closing.clear()
