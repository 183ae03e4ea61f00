"""The Connection state machine (gossipfast._connection) driven without sockets: a fake
asyncio transport, a fake owner and a hand-turned clock."""

from __future__ import annotations

from typing import Any

import pytest

from gossipfast import wire
from gossipfast._admission import Admission
from gossipfast._codec import FrameDecoder, encode_frame
from gossipfast._connection import (
    Connection,
    ReadBudget,
    control_cost,
    hello_refusal,
    want_cost,
)
from gossipfast.config import Config
from gossipfast.transport import COUNTER_NAMES

CFG = Config(
    cluster="c",
    connect_timeout=0.5,
    heartbeat_interval=0.1,
    heartbeat_timeout=1.0,
    frame_timeout=2.0,
    peer_read_rate=100_000,
    peer_control_rate=100,
    max_payload_size=32 << 10,
    max_frame_size=64 << 10,
    max_hello_bytes=1024,
)


class FakeLoop:
    """time() and call_later() on a clock the test turns."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[FakeTimer] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, fn: Any, *args: Any) -> FakeTimer:
        t = FakeTimer(self.now + delay, fn, args)
        self.timers.append(t)
        return t

    def advance(self, dt: float) -> None:
        self.now += dt
        due = [t for t in self.timers if t.when <= self.now and not t.cancelled]
        self.timers = [t for t in self.timers if t not in due]
        for t in due:
            t.fn(*t.args)


class FakeTimer:
    def __init__(self, when: float, fn: Any, args: tuple[Any, ...]) -> None:
        self.when, self.fn, self.args = when, fn, args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeSocketTransport:
    """What Connection uses of an asyncio transport."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False
        self.aborted = False
        self.reading = True
        self.eof = False

    def write(self, data: bytes) -> None:
        self.written += data

    def writelines(self, data: list[bytes]) -> None:
        for d in data:
            self.written += d

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> Any:
        return ("10.0.0.9", 4242) if name == "peername" else None

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def sent(self) -> list[Any]:
        msgs, fault = FrameDecoder(1 << 20).feed(bytes(self.written))
        assert fault is None
        return msgs


class FakeBackPressure:
    paused_links = 0

    def writes_paused(self) -> None:
        pass


class FakeOwner:
    """The Transport side a Connection calls into, recording what it was told."""

    def __init__(self) -> None:
        self.config = CFG
        self.loop = FakeLoop()
        self.read_burst = max(CFG.peer_read_rate, CFG.max_frame_size + 4)
        self.bp = FakeBackPressure()
        self._c = dict.fromkeys(COUNTER_NAMES, 0)
        self.logged: list[str] = []
        self.engine = object()
        self.address = "10.0.0.1:7000"
        self.admission = Admission(CFG, 0.0, self._c, self._log_once)
        self.received: list[Any] = []
        self.ready: list[Connection] = []
        self.link_ok = True

    def _log_once(self, cause: str, msg: str, *args: Any, exc: bool = False) -> None:
        self.logged.append(cause)

    def _conn_made(self, c: Connection) -> None:
        c.start(encode_frame([hello(self.address)]), self.loop.time())

    def _conn_received(self, c: Connection, msgs: list[Any]) -> None:
        self.received.extend(msgs)

    def _link_ready(self, c: Connection) -> bool:
        self.ready.append(c)
        return self.link_ok

    def _conn_lost(self, c: Connection, exc: Exception | None) -> None:
        pass

    def _conn_resumed(self, c: Connection, was_paused: bool) -> None:
        pass


def hello(address: str, *, version: int = wire.PROTOCOL_VERSION, cluster: str = "c") -> Any:
    return wire.Hello(version, cluster, "n", address, 7)


def inbound() -> tuple[FakeOwner, Connection, FakeSocketTransport]:
    owner = FakeOwner()
    c = Connection(owner, False, None)  # type: ignore[arg-type]
    tr = FakeSocketTransport()
    c.connection_made(tr)  # type: ignore[arg-type]
    return owner, c, tr


def test_handshake_then_messages_to_the_engine() -> None:
    owner, c, tr = inbound()
    assert type(tr.sent()[0]) is wire.Hello  # we speak first
    assert c.hs_timer is not None
    g = wire.Gossip(1, 1, 0, b"x")
    c.data_received(encode_frame([hello("10.0.0.9:7000"), g]))
    assert c.ready and c.peer == "10.0.0.9:7000" and c.incarnation == 7
    assert owner.ready == [c] and owner.received == [g]
    assert c.hs_timer is None  # cancelled
    owner.loop.advance(1.0)
    assert not tr.aborted and owner._c["handshake_timeouts"] == 0


@pytest.mark.parametrize(
    ("first", "counter", "cause"),
    [
        (hello("10.0.0.9:7000", version=999), "version_mismatches", "version"),
        (hello("10.0.0.9:7000", cluster="other"), "cluster_mismatches", "cluster"),
        (hello("not-an-address"), "bad_frames", "hello-address"),
        (hello("10.0.0.1:7000"), "handshake_failures", "self"),  # claims our address
        (wire.Ping(1), "bad_frames", "before-hello"),
    ],
)
def test_bad_hello_is_refused(first: Any, counter: str, cause: str) -> None:
    owner, c, tr = inbound()
    c.data_received(encode_frame([first]))
    assert tr.aborted and c.close_reason == "rejected" and not c.ready
    assert owner._c[counter] == 1 and owner.logged == [cause]
    # a refusal of a valid Hello is a handshake failure; bad bytes are only bad frames
    assert owner._c["handshake_failures"] == (counter != "bad_frames")
    assert owner.ready == []


def test_hello_refusal_names_counter_cause_and_log() -> None:
    ours = "10.0.0.1:7000"

    def refusal(first: Any, inbound: bool = True) -> Any:
        return hello_refusal(first, "c", ours, inbound, "10.0.0.9:4242")

    assert refusal(hello("10.0.0.9:7000")) is None
    assert refusal(wire.Ping(1)) == (
        "bad_frames",
        "before-hello",
        "closing connection from %s: %s before Hello",
        ("10.0.0.9:4242", "Ping"),
    )
    assert refusal(hello("", version=999)) == (
        "version_mismatches",
        "version",
        "refusing %s: protocol version %r, ours is %r",
        ("10.0.0.9:4242", 999, wire.PROTOCOL_VERSION),  # the socket when no address
    )
    assert refusal(hello("10.0.0.9:7000", cluster="x"))[3] == ("10.0.0.9:7000", "x", "c")
    assert refusal(hello("nope"))[:2] == ("bad_frames", "hello-address")
    assert refusal(hello(ours))[:2] == ("handshake_failures", "self")
    # a peer we dialled keeps the address we dialled: what it advertises is not checked
    assert refusal(hello("nope"), inbound=False) is None
    assert refusal(hello(ours), inbound=False) is None
    assert refusal(hello("x", cluster="x"), inbound=False)[0] == "cluster_mismatches"


def test_oversized_bytes_before_hello_are_refused() -> None:
    owner, c, tr = inbound()
    c.data_received(b"\x00\x00\x10\x00" + b"\x00" * CFG.max_hello_bytes)  # a partial frame
    assert tr.aborted and owner._c["bad_frames"] == 1 and owner.logged == ["hello-size"]


def test_handshake_timeout() -> None:
    owner, c, tr = inbound()
    owner.loop.advance(CFG.connect_timeout - 0.01)
    assert not tr.aborted
    owner.loop.advance(0.02)
    assert tr.aborted and c.close_reason == "handshake"
    assert owner._c["handshake_timeouts"] == owner._c["handshake_failures"] == 1


def test_ping_is_answered_and_kept_from_the_engine() -> None:
    owner, c, tr = inbound()
    c.data_received(encode_frame([hello("10.0.0.9:7000")]))
    tr.written.clear()
    c.data_received(encode_frame([wire.Ping(5), wire.Pong(6), hello("10.0.0.9:7000")]))
    assert tr.sent() == [wire.Pong(5)]
    assert owner.received == []
    assert owner.logged == ["second-hello"]


def test_control_flood_pauses_reading_for_the_debt() -> None:
    owner, c, tr = inbound()
    c.data_received(encode_frame([hello("10.0.0.9:7000")]))
    c.data_received(encode_frame([wire.Prune() for _ in range(150)]))  # 50 over 100/s
    assert not tr.reading and c.read_paused and owner._c["read_throttles"] == 1
    assert c.last_recv == pytest.approx(owner.loop.now + 0.5)  # not held against heartbeats
    owner.loop.advance(0.49)
    assert not tr.reading
    owner.loop.advance(0.02)
    assert tr.reading and not c.read_paused


def test_check_closes_silent_and_dribbling_peers() -> None:
    owner, c, tr = inbound()
    c.data_received(encode_frame([hello("10.0.0.9:7000")]))
    assert c.check(owner.loop.now)
    owner.loop.now += CFG.heartbeat_timeout + 0.01
    assert not c.check(owner.loop.now)
    assert tr.aborted and c.close_reason == "heartbeat" and owner._c["heartbeat_timeouts"] == 1

    owner, c, tr = inbound()
    c.data_received(encode_frame([hello("10.0.0.9:7000")]))
    c.data_received(b"\x00\x00\x01\x00ab")  # the start of a 256-byte frame
    owner.loop.now += CFG.frame_timeout / 2
    c.data_received(b"cd")  # dribbled on: still the same frame
    assert c.check(owner.loop.now)
    owner.loop.now += CFG.frame_timeout / 2 + 0.01
    assert not c.check(owner.loop.now)
    assert c.close_reason == "slowloris" and owner._c["frame_timeouts"] == 1


def test_slow_and_ping_due() -> None:
    owner, c, _tr = inbound()
    now = owner.loop.now
    assert not c.ping_due(now)
    assert c.ping_due(now + CFG.heartbeat_interval + 0.001)
    c.pause_writing()
    assert not c.ping_due(now + CFG.heartbeat_interval + 0.001)  # no ping into a full buffer
    assert not c.is_slow(now + CFG.heartbeat_timeout)
    assert c.is_slow(now + CFG.heartbeat_timeout + 0.01)


def test_half_close_then_closed_for_good_by_the_ticker() -> None:
    owner, c, tr = inbound()
    c.close("engine")
    assert tr.eof and not tr.closed and c.closing
    assert not c.check(owner.loop.now + CFG.heartbeat_timeout)
    assert not tr.closed
    c.check(owner.loop.now + CFG.heartbeat_timeout + 0.01)
    assert tr.closed


def test_costs() -> None:
    assert want_cost([1, 10, 19], 100) == 10
    assert want_cost([1, 10, 1_000_000], 100) == 100  # capped by catch_up_max
    assert want_cost([1, 10, 5, 2], 100) == 0  # an empty span, a stray tail
    msgs = [wire.Gossip(1, 1, 0, b""), wire.Graft([1, 2, 3, 4]), wire.Want([1, 0, 4]), wire.Prune()]
    assert control_cost(msgs, 100) == (3 + 6 + 1, False)
    assert control_cost([wire.Ping(1)], 100) == (1, True)


def test_read_budget_refills() -> None:
    b = ReadBudget(CFG, 1000, 0.0)
    assert b.charge(1000, 0, 0.0) == 0.0
    assert b.charge(CFG.peer_read_rate // 10, 0, 0.0) == pytest.approx(0.1)
    assert b.charge(0, 0, 0.2) == 0.0  # paid back, refilled to the burst at most
    assert b.bytes == 1000.0
