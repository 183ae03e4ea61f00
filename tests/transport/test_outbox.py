"""Outbox (gossipfast._outbox) without sockets: fake links that record what they are
handed."""

from __future__ import annotations

from typing import Any

from gossipfast import wire
from gossipfast._codec import FrameDecoder
from gossipfast._links import Link
from gossipfast._outbox import Outbox
from gossipfast.transport import COUNTER_NAMES

ME = "10.0.0.1:7000"
PEER = "10.0.0.2:7000"


class FakeConn:
    def __init__(self) -> None:
        self.closed: list[str] = []

    def close(self, reason: str) -> None:
        self.closed.append(reason)


class FakeLinks:
    """What the Outbox uses of Links: ``link``, ``send``, ``by_peer``."""

    def __init__(self) -> None:
        self.by_peer: dict[str, Link] = {}
        self.sent: list[tuple[str, bytes, float]] = []

    def link(self, peer: str) -> Link:
        return self.by_peer.setdefault(peer, Link(peer))

    def send(self, link: Link, data: bytes | list[bytes], now: float) -> None:
        self.sent.append((link.peer, data if type(data) is bytes else b"".join(data), now))


def make(limit: int = 1 << 20) -> tuple[Outbox, FakeLinks, dict[str, int], list[str]]:
    links = FakeLinks()
    counters = dict.fromkeys(COUNTER_NAMES, 0)
    logged: list[str] = []

    def log_once(cause: str, *args: Any, **kw: Any) -> None:
        logged.append(cause)

    box = Outbox(links, limit, counters, log_once)  # type: ignore[arg-type]
    box.address = ME
    return box, links, counters, logged


def frames(data: bytes) -> list[Any]:
    decoder = FrameDecoder(1 << 20)
    msgs, fault = decoder.feed(data)
    assert fault is None and not decoder.buffered
    return msgs


def test_one_write_per_peer_for_the_whole_turn() -> None:
    box, links, c, _ = make()
    box.add({PEER: [wire.Ping(1)], "10.0.0.3:7000": []}, [])
    box.add({PEER: [wire.Ping(2)]}, [])
    box.write(5.0)
    assert [(p, now) for p, _, now in links.sent] == [(PEER, 5.0)]
    assert frames(links.sent[0][1]) == [wire.Ping(1), wire.Ping(2)]
    assert c["frames_sent"] == 1
    box.write(6.0)  # nothing new
    assert len(links.sent) == 1


def test_a_batch_over_the_frame_limit_leaves_in_several_frames() -> None:
    box, links, c, _ = make(limit=40)
    pings = [wire.Ping(i) for i in range(30)]
    box.add({PEER: pings}, [])
    box.write(0.0)
    ((_, data, _),) = links.sent
    decoder = FrameDecoder(1 << 20)
    got, fault = decoder.feed(data)
    assert fault is None and got == pings
    assert c["frames_sent"] == 1  # one write, several frames


def test_messages_to_ourselves_are_dropped_and_counted() -> None:
    box, links, c, _ = make()
    box.add({ME: [wire.Ping(1), wire.Ping(2)]}, [])
    box.write(0.0)
    assert links.sent == [] and c["send_drops"] == 2


def test_a_batch_that_cannot_be_encoded_is_dropped_alone() -> None:
    box, links, c, logged = make()
    box.add({"10.0.0.3:7000": [object()], PEER: [wire.Ping(1)]}, [])
    box.write(0.0)
    assert [p for p, _, _ in links.sent] == [PEER]
    assert c["engine_errors"] == 1 and c["send_drops"] == 1 and logged == ["encode"]


def test_closed_links_close_now_or_after_their_queue() -> None:
    box, links, _, _ = make()
    idle, busy = links.link("10.0.0.3:7000"), links.link("10.0.0.4:7000")
    idle.conn, busy.conn = FakeConn(), FakeConn()  # type: ignore[assignment]
    busy.pending.append(b"x")
    box.add({}, ["10.0.0.3:7000", "10.0.0.4:7000", "10.0.0.5:7000"])
    box.close_links()
    assert idle.conn.closed == ["engine"] and not idle.close_after_flush  # type: ignore[union-attr]
    assert busy.conn.closed == [] and busy.close_after_flush  # type: ignore[union-attr]
    box.close_links()  # once only
    assert idle.conn.closed == ["engine"]  # type: ignore[union-attr]
