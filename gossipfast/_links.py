"""The transport's links: at most one primary connection per peer address, and the bytes
queued for it while it is dialled, paused or not ready (bounded by
``Config.send_queue_bytes``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._connection import Connection

if TYPE_CHECKING:
    from .transport import Transport


def _size(data: bytes | list[bytes]) -> int:
    """Bytes in one write: framed bytes, or a list of buffers."""
    return sum(map(len, data)) if isinstance(data, list) else len(data)


class Link:
    """Per-peer state: the primary connection and the writes waiting for it (each framed
    bytes or a list of buffers, kept whole so that a dropped write drops whole frames)."""

    __slots__ = ("close_after_flush", "conn", "dialing", "peer", "pending", "pending_bytes")

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.conn: Connection | None = None
        self.dialing = False
        self.pending: list[bytes | list[bytes]] = []
        self.pending_bytes = 0
        self.close_after_flush = False

    def clear(self) -> None:
        """Forget the queued bytes."""
        self.pending.clear()
        self.pending_bytes = 0


class Links:
    """Every link of one transport, by peer address (``by_peer``)."""

    def __init__(self, owner: Transport) -> None:
        self.owner = owner
        self.config = owner.config
        self.by_peer: dict[str, Link] = {}

    def link(self, peer: str) -> Link:
        """The link to ``peer`` (made when there is none)."""
        link = self.by_peer.get(peer)
        if link is None:
            link = self.by_peer[peer] = Link(peer)
        return link

    def primary(self, c: Connection) -> Link | None:
        """The link whose primary connection ``c`` is, or None."""
        link = self.by_peer.get(c.peer) if c.peer is not None else None
        return link if link is not None and link.conn is c else None

    def pending_of(self, c: Connection) -> int:
        """Bytes the link of ``c`` still holds in our own queue."""
        link = self.primary(c)
        return link.pending_bytes if link is not None else 0

    def send(self, link: Link, data: bytes | list[bytes], now: float) -> None:
        """Write framed bytes (or a list of buffers) to the link's connection, or queue
        them (bounded); dial a peer with no connection."""
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
        link.pending_bytes += _size(data)
        if c is not None:
            # where these bytes will sit in c's stream, and since when they wait
            c.marks.append((now, c.sent_bytes + link.pending_bytes))
        queued = link.pending_bytes
        if c is not None and c.tr is not None:
            queued += c.tr.get_write_buffer_size()
        limit = self.config.send_queue_bytes
        if queued > limit:
            if c is not None and c.ready and not c.closing:
                self.drop_slow(link, c, queued)
            else:
                # No link yet (dialling): keep the newest bytes, bounded.
                while link.pending and link.pending_bytes > limit:
                    link.pending_bytes -= _size(link.pending.pop(0))
                    self.owner._c["send_drops"] += 1
        if c is None and not link.dialing and not self.owner.closed:
            self.owner._dial(link)

    def drop_slow(self, link: Link, c: Connection, queued: int) -> None:
        """Drop a peer that does not take our output: its queue and its connection."""
        owner = self.owner
        owner._c["slow_drops"] += 1
        owner._log_once(
            "slow",
            "dropping slow peer %s: %d bytes queued (send_queue_bytes=%d), writes paused %.3gs",
            link.peer,
            queued,
            self.config.send_queue_bytes,
            owner.loop.time() - c.paused_since if c.paused else 0.0,
        )
        link.clear()
        c.close("slow", abort=True)
        owner.bp.wake_writers()

    def write_pending(self, link: Link, c: Connection) -> None:
        """Write what waited for ``c`` in one go (and close it if the engine asked)."""
        if not link.pending or c.closing:
            return
        now = self.owner.loop.time()
        data: bytes | list[bytes]
        if len(link.pending) == 1:
            data = link.pending[0]
        else:
            data = []
            for d in link.pending:
                if isinstance(d, list):
                    data.extend(d)
                else:
                    data.append(d)
        link.clear()
        c.write(data, now)
        c.last_app = now
        if link.close_after_flush:
            link.close_after_flush = False
            c.close("engine")

    def drop_if_idle(self, link: Link, force: bool = False) -> None:
        """Forget a link with no connection, dial or queue (``force``: its queue too)."""
        if force:
            link.clear()
        if (
            link.conn is None
            and not link.dialing
            and not link.pending
            and self.by_peer.get(link.peer) is link
        ):
            del self.by_peer[link.peer]

    def adopt(self, c: Connection) -> bool:
        """``c`` accepted its peer's Hello: make it the peer's link, or resolve it against
        the link we have (a restarted peer, a simultaneous dial). False if ``c`` was
        refused (a stale incarnation)."""
        owner = self.owner
        peer = c.peer
        assert peer is not None
        link = self.link(peer)
        cur = link.conn
        if cur is None or cur is c:
            link.conn = c
        elif cur.ready and cur.incarnation != c.incarnation:
            # The peer restarted: the newer incarnation wins.
            if c.incarnation < cur.incarnation:
                c.reject(
                    "handshake_failures",
                    "stale",
                    "refusing %s: stale incarnation %d",
                    peer,
                    c.incarnation,
                )
                return False
            link.conn = c
            cur.close("replaced")
            if owner.engine is not None:
                owner._engine_call(owner.engine.on_disconnected, peer, "failed")
        else:
            owner._c["duplicate_links"] += 1
            keep = self.prefer(cur, c)
            lose = c if keep is cur else cur
            link.conn = keep
            # The loser is drained; its dialler closes it once it is quiet (ticker).
            lose.last_app = owner.loop.time()
        if link.conn is c:
            self.write_pending(link, c)
        return True

    def prefer(self, a: Connection, b: Connection) -> Connection:
        """The connection both ends keep: the one dialled by the lower address."""
        assert b.peer is not None
        want_outbound = self.owner.address < b.peer
        if a.outbound == want_outbound and b.outbound != want_outbound:
            return a
        return b

    def check(self, c: Connection, now: float, active: set[str]) -> bool:
        """The ticker's link-level look at a ready connection: close a quiet duplicate
        (its dialler does) or an idle link out of the active view, drop a slow peer.
        True when a Ping is due on it."""
        cfg = self.config
        link = self.primary(c)
        if link is None:
            # A duplicate link: its dialler closes it once it has been quiet a while.
            if c.outbound and now - c.last_app > cfg.heartbeat_interval:
                c.close("duplicate")
            return False
        if c.peer not in active and now - c.last_app > cfg.heartbeat_timeout and not link.pending:
            c.close("idle")
            return False
        if c.paused and link.pending:
            if c.is_slow(now):
                # Output waits for it and it took nothing for a heartbeat timeout.
                # (broadcast() may be waiting on it.)
                self.drop_slow(link, c, link.pending_bytes)
            return False
        return c.ping_due(now)


__all__ = ["Link", "Links"]
