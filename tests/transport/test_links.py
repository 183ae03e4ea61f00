"""The link table (gossipfast._links) driven without sockets: which connection is a
peer's link, and what waits for it."""

from __future__ import annotations

from typing import Any

from transport.test_connection import FakeOwner, FakeSocketTransport

from gossipfast import wire
from gossipfast._codec import encode_frame
from gossipfast._connection import Connection
from gossipfast._links import Links


class LinkOwner(FakeOwner):
    """FakeOwner plus what Links calls: dialling, the engine, back-pressure wake-ups."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False
        self.dialled: list[str] = []
        self.down: list[tuple[str, str]] = []
        self.links = Links(self)  # type: ignore[arg-type]
        self.engine = self
        self.bp.wake_writers = lambda: None  # type: ignore[attr-defined]

    def _dial(self, link: Any) -> None:
        link.dialing = True
        self.dialled.append(link.peer)

    def on_disconnected(self, peer: str, reason: str, now: float) -> None:
        self.down.append((peer, reason))

    def _engine_call(self, fn: Any, *args: Any) -> None:
        fn(*args, self.loop.time())

    def _link_ready(self, c: Connection) -> bool:
        return self.links.adopt(c)


def conn(owner: LinkOwner, outbound: bool, incarnation: int = 7) -> Connection:
    c = Connection(owner, outbound, "10.0.0.9:7000" if outbound else None)  # type: ignore[arg-type]
    c.connection_made(FakeSocketTransport())  # type: ignore[arg-type]
    h = wire.Hello(wire.PROTOCOL_VERSION, "c", "n", "10.0.0.9:7000", incarnation)
    c.data_received(encode_frame([h]))
    return c


def test_send_without_a_link_queues_and_dials_once() -> None:
    owner = LinkOwner()
    links = owner.links
    link = links.link("10.0.0.9:7000")
    links.send(link, b"abc", 1.0)
    links.send(link, b"de", 1.0)
    assert owner.dialled == ["10.0.0.9:7000"]
    assert link.pending == [b"abc", b"de"] and link.pending_bytes == 5


def test_queue_without_a_link_keeps_the_newest_bytes_bounded() -> None:
    owner = LinkOwner()
    links = owner.links
    link = links.link("10.0.0.9:7000")
    chunk = b"x" * (owner.config.send_queue_bytes // 3)
    for _ in range(5):
        links.send(link, chunk, 1.0)
    assert link.pending_bytes <= owner.config.send_queue_bytes
    assert owner._c["send_drops"] == 2


def test_pending_bytes_follow_the_dial_and_empty_links_are_forgotten() -> None:
    owner = LinkOwner()
    links = owner.links
    link = links.link("10.0.0.9:7000")
    links.send(link, b"queued", 1.0)
    c = conn(owner, outbound=True)
    assert links.primary(c) is link and link.pending == []
    assert c.tr.written.endswith(b"queued")  # type: ignore[union-attr]
    link.conn = None
    link.dialing = False
    links.drop_if_idle(link)
    assert "10.0.0.9:7000" not in links.by_peer


def test_a_restarted_peer_replaces_its_link_and_a_stale_one_is_refused() -> None:
    owner = LinkOwner()
    old = conn(owner, outbound=False, incarnation=7)
    new = conn(owner, outbound=False, incarnation=8)
    assert owner.links.by_peer["10.0.0.9:7000"].conn is new
    assert old.close_reason == "replaced"
    assert owner.down == [("10.0.0.9:7000", "failed")]
    stale = conn(owner, outbound=False, incarnation=6)
    assert stale.close_reason == "rejected" and owner.logged[-1] == "stale"
    assert owner.links.by_peer["10.0.0.9:7000"].conn is new


def test_simultaneous_dials_keep_the_one_dialled_by_the_lower_address() -> None:
    owner = LinkOwner()  # we are 10.0.0.1:7000, lower than the peer: keep our dial
    inb = conn(owner, outbound=False)
    out = conn(owner, outbound=True)
    assert owner.links.by_peer["10.0.0.9:7000"].conn is out
    assert owner._c["duplicate_links"] == 1
    assert owner.links.primary(inb) is None and inb.close_reason is None  # drained
    owner.address = "10.1.0.0:7000"  # now the peer's dial wins
    assert owner.links.prefer(out, inb) is inb


def test_check_closes_quiet_duplicates_and_idle_links() -> None:
    owner = LinkOwner()
    inb = conn(owner, outbound=False)
    out = conn(owner, outbound=True)
    now = owner.loop.now + owner.config.heartbeat_interval + 0.01
    assert not owner.links.check(inb, now, set())  # not its dialler: left to the peer
    assert inb.close_reason is None
    active = {"10.0.0.9:7000"}
    assert owner.links.check(out, now, active)  # the primary: a Ping is due
    later = owner.loop.now + owner.config.heartbeat_timeout + 0.01
    assert not owner.links.check(out, later, set())  # out of the active view, idle
    assert out.close_reason == "idle"
