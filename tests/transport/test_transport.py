"""The TCP transport against a scripted fake engine and raw sockets (loopback only).

Every test runs on both the asyncio loop and uvloop (``loop_kind`` in conftest.py).
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from typing import Any

import msgspec
import pytest
from support import nodekit

from gossipfast import wire
from gossipfast._backpressure import LINK_QUEUE_MAX
from gossipfast._codec import FrameDecoder, encode_frame
from gossipfast._procs import free_ports  # nobody listens there: dials are refused
from gossipfast.config import Config
from gossipfast.transport import (
    SOCKET_BUFFER,
    Transport,
    format_address,
    parse_address,
)

pytestmark = pytest.mark.network

CFG = Config(
    connect_timeout=0.5,
    heartbeat_interval=0.1,
    heartbeat_timeout=1.0,
    send_queue_bytes=256 << 10,
    max_payload_size=32 << 10,
    max_frame_size=64 << 10,
)


class FakeEngine:
    """Records inputs; outputs are scripted by the test through ``send``/``close``."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.frames: list[tuple[str, list[Any]]] = []
        self.down: list[tuple[str, str]] = []
        self.ticks = 0
        self.deadline: float | None = None
        self.active: tuple[str, ...] = ()
        self._outbox: dict[str, list[Any]] = {}
        self._closing: list[str] = []

    # inputs
    def on_frame(self, peer: str, msgs: list[Any], now: float) -> None:
        self.frames.append((peer, list(msgs)))

    def on_disconnected(self, peer: str, reason: str, now: float) -> None:
        self.down.append((peer, reason))

    def tick(self, now: float) -> None:
        self.ticks += 1
        self.deadline = None

    def next_deadline(self) -> float | None:
        return self.deadline

    def drain(self) -> tuple[dict[str, list[Any]], list[str], list[Any], list[Any]]:
        out, self._outbox = self._outbox, {}
        closing, self._closing = self._closing, []
        return out, closing, [], []

    @property
    def active_view(self) -> tuple[str, ...]:
        return self.active

    # test helpers
    def send(self, peer: str, *msgs: Any) -> None:
        self._outbox.setdefault(peer, []).extend(msgs)

    def close(self, peer: str) -> None:
        self._closing.append(peer)

    def received(self, peer: str | None = None) -> list[Any]:
        return [m for p, ms in self.frames for m in ms if peer is None or p == peer]


async def make(cfg: Config = CFG, node_id: str = "n") -> tuple[Transport, FakeEngine]:
    tr = Transport(cfg, deliver=lambda d: None, emit=lambda e: None)
    host, port = await tr.listen("127.0.0.1", 0)
    eng = FakeEngine(format_address(host, port))
    await tr.start(eng, address=eng.address, node_id=node_id, incarnation=1)
    return tr, eng


def poke(tr: Transport) -> None:
    """An engine input with no payload: makes the transport drain the engine."""
    assert tr.engine is not None
    tr.run(lambda now: None)


async def until(pred: Any, timeout: float = 5.0) -> None:
    """Wait until ``pred()`` holds (AssertionError naming its line after ``timeout`` s)."""
    await nodekit.until(pred, timeout, what=f"condition at line {pred.__code__.co_firstlineno}")


class Raw:
    """A hand-driven peer on a raw stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder(1 << 20)
        self.msgs: list[Any] = []

    @classmethod
    async def connect(cls, address: str) -> Raw:
        host, port = parse_address(address)
        r, w = await asyncio.open_connection(host, port)
        return cls(r, w)

    def hello(
        self,
        address: str,
        cluster: str = CFG.cluster,
        version: int = wire.PROTOCOL_VERSION,
        inc: int = 1,
    ) -> None:
        self.write(encode_frame([wire.Hello(version, cluster, "raw", address, inc)]))

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def read_until_eof(self, timeout: float = 5.0) -> bytes:
        """Everything until the transport closes us (fails the test on timeout)."""
        chunks = []
        async with asyncio.timeout(timeout):
            while True:
                try:
                    data = await self.reader.read(65536)
                except ConnectionError:
                    break
                if not data:
                    break
                chunks.append(data)
        return b"".join(chunks)

    async def read_msgs(self, n: int, timeout: float = 5.0) -> list[Any]:
        async with asyncio.timeout(timeout):
            while len(self.msgs) < n:
                data = await self.reader.read(65536)
                assert data, "closed early"
                got, fault = self.decoder.feed(data)
                assert fault is None
                self.msgs += got
        return self.msgs

    def close(self) -> None:
        self.writer.close()


def test_parse_and_format_address() -> None:
    assert parse_address("127.0.0.1:80") == ("127.0.0.1", 80)
    assert parse_address("[::1]:7000") == ("::1", 7000)
    assert format_address("::1", 7000) == "[::1]:7000"
    for bad in ("", "nohost", ":80", "h:", "h:x", "h:70000"):
        with pytest.raises(ValueError):
            parse_address(bad)


@pytest.mark.timeout(30)
def test_handshake_and_frames_both_ways(arun: Any) -> None:
    async def main() -> None:
        a, ea = await make(node_id="a")
        b, eb = await make(node_id="b")
        ea.send(eb.address, wire.Join(), wire.Neighbor(True))
        poke(a)
        await until(lambda: len(eb.received()) == 2)
        assert eb.frames[0][0] == ea.address  # named by the advertised address
        assert eb.received() == [wire.Join(), wire.Neighbor(True)]
        eb.send(ea.address, wire.NeighborReply(True))
        poke(b)
        await until(lambda: ea.received() == [wire.NeighborReply(True)])
        # one connection each side, reused for both directions
        assert a.counters()["connections"] == 1 and b.counters()["connections"] == 1
        assert a.counters()["dials"] == 1 and b.counters()["dials"] == 0
        # heartbeats keep an idle active link alive and never reach the engine
        ea.active, eb.active = (eb.address,), (ea.address,)
        await asyncio.sleep(CFG.heartbeat_timeout * 2.5)  # under test: idle this long
        assert a.counters()["connections"] == 1 and not ea.down and not eb.down
        assert all(type(m) not in (wire.Ping, wire.Pong, wire.Hello) for m in eb.received())
        await a.close()
        await until(lambda: eb.down)
        assert eb.down == [(ea.address, "closed")]
        await b.close()

    arun(main())


def _data_frames(buf: bytes) -> list[list[Any]]:
    """The messages of each complete frame in ``buf`` that is not a heartbeat (Ping)."""
    frames = []
    i = 0
    while i + 4 <= len(buf):
        (length,) = struct.unpack(">I", buf[i : i + 4])
        if i + 4 + length > len(buf):
            break
        msgs, fault = FrameDecoder(1 << 20).feed(buf[i : i + 4 + length])
        assert fault is None
        if any(type(m) is not wire.Ping for m in msgs):
            frames.append(msgs)
        i += 4 + length
    return frames


@pytest.mark.timeout(30)
def test_one_write_per_peer_per_loop_turn(arun: Any) -> None:
    async def main() -> None:
        a, ea = await make()
        got: list[bytes] = []
        ready = asyncio.Event()

        async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(
                encode_frame(
                    [wire.Hello(wire.PROTOCOL_VERSION, CFG.cluster, "raw", "127.0.0.1:9", 1)]
                )
            )
            while data := await r.read(1 << 20):
                got.append(data)
                ready.set()

        srv = await asyncio.start_server(serve, "127.0.0.1", 0)
        peer = format_address("127.0.0.1", srv.sockets[0].getsockname()[1])
        ea.send(peer, wire.Join())
        poke(a)
        # wait for the whole Join frame (on a loaded machine it may come in pieces)
        await until(
            lambda: (
                a.counters()["frames_sent"] == 1 and [wire.Join()] in _data_frames(b"".join(got))
            )
        )
        got.clear()
        before = a.counters()["frames_sent"]
        # 100 engine inputs in one loop turn, 3 messages each
        for i in range(100):
            ea.send(peer, wire.Gossip(1, i + 1, 0, b"x"), wire.IHave([1, i, i, 0]), wire.Prune())
            poke(a)
        # all 300 messages arrived (heartbeats have their own frames: skipped)
        await until(lambda: sum(map(len, _data_frames(b"".join(got)))) >= 300)
        assert a.counters()["frames_sent"] - before == 1
        frames = _data_frames(b"".join(got))
        assert len(frames) == 1, "expected exactly one data frame"
        assert len(frames[0]) == 300
        await a.close()
        srv.close()

    arun(main())


@pytest.mark.timeout(30)
def test_oversize_batch_is_split_into_frames_within_limit(arun: Any) -> None:
    async def main() -> None:
        cfg = msgspec.structs.replace(CFG, send_queue_bytes=4 << 20)
        a, ea = await make(cfg)
        b, eb = await make(cfg)
        payload = os.urandom(CFG.max_payload_size)
        msgs = [wire.Gossip(7, i + 1, 0, payload) for i in range(10)]  # 10x the frame limit/2
        ea.send(eb.address, *msgs)
        poke(a)
        await until(lambda: len(eb.received()) == 10)
        assert eb.received() == msgs
        assert b.counters()["bad_frames"] == 0
        await a.close()
        await b.close()

    arun(main())


@pytest.mark.timeout(30)
def test_simultaneous_dials_keep_one_link(arun: Any) -> None:
    async def main() -> None:
        a, ea = await make(node_id="a")
        b, eb = await make(node_id="b")
        ea.active, eb.active = (eb.address,), (ea.address,)
        ea.send(eb.address, wire.Neighbor(True))
        eb.send(ea.address, wire.Neighbor(True))
        poke(a)
        poke(b)
        await until(lambda: eb.received() and ea.received())
        # the duplicate is closed by its dialler once quiet
        await until(lambda: a.counters()["connections"] == 1 and b.counters()["connections"] == 1)
        assert a.counters()["duplicate_links"] + b.counters()["duplicate_links"] >= 1
        assert not ea.down and not eb.down
        # traffic still flows both ways on the survivor
        for i in range(20):
            ea.send(eb.address, wire.Gossip(1, i + 1, 0, b"a"))
            eb.send(ea.address, wire.Gossip(2, i + 1, 0, b"b"))
            poke(a)
            poke(b)
            await asyncio.sleep(0)  # yield: one loop turn per round
        await until(lambda: len(eb.received()) == 21 and len(ea.received()) == 21)
        await a.close()
        await b.close()

    arun(main())


@pytest.mark.timeout(30)
def test_failed_dial_reports_failed(arun: Any) -> None:
    async def main() -> None:
        a, ea = await make()
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead = format_address("127.0.0.1", s.getsockname()[1])
        s.close()
        ea.send(dead, wire.Join())
        ea.send("not-an-address", wire.Join())
        poke(a)
        await until(lambda: len(ea.down) == 2)
        assert sorted(ea.down) == sorted([(dead, "failed"), ("not-an-address", "failed")])
        assert a.counters()["dial_failures"] == 2
        await a.close()

    arun(main())


@pytest.mark.timeout(30)
def test_engine_closing_closes_link_after_flush(arun: Any) -> None:
    async def main() -> None:
        a, ea = await make()
        b, eb = await make()
        ea.send(eb.address, wire.Disconnect(True))
        ea.close(eb.address)
        poke(a)
        await until(lambda: eb.received() == [wire.Disconnect(True)])
        await until(lambda: a.counters()["connections"] == 0)
        await until(lambda: eb.down == [(ea.address, "closed")])
        assert ea.down == []  # the engine asked for it: not reported back
        await a.close()
        await b.close()

    arun(main())


@pytest.mark.timeout(30)
def test_idle_passive_link_closes(arun: Any) -> None:
    async def main() -> None:
        a, ea = await make()
        # b would close the idle link too, a few ms after a: under load it may win the
        # race, and a then sees a clean EOF. A longer timeout at b makes a the closer.
        b, eb = await make(msgspec.structs.replace(CFG, heartbeat_timeout=3.0))
        ea.send(eb.address, wire.Shuffle("x:1", 1, []))
        poke(a)
        await until(lambda: eb.received())
        # not in anyone's active view: closed after heartbeat_timeout without app traffic
        await until(lambda: a.counters()["connections"] == 0, timeout=3)
        assert ea.down == []
        await a.close()
        await b.close()

    arun(main())


@pytest.mark.timeout(30)
def test_engine_timer_is_driven(arun: Any) -> None:
    async def main() -> None:
        a, ea = await make()
        loop = asyncio.get_running_loop()
        ea.deadline = loop.time() + 0.05
        poke(a)
        await until(lambda: ea.ticks == 1)
        await asyncio.sleep(0.1)  # under test: no further tick within this window
        assert ea.ticks == 1  # tick cleared the deadline: no further ticks
        await a.close()

    arun(main())


def _bad_inputs(addr: str) -> dict[str, tuple[bytes, str]]:
    body = wire.encoder.encode([wire.Join()])
    return {
        "random bytes": (os.urandom(64) + b"\x00\x00\x00\x10" + os.urandom(16), "bad_frames"),
        "oversize length": (struct.pack(">I", CFG.max_frame_size + 1), "bad_frames"),
        "zero length": (b"\x00\x00\x00\x00", "bad_frames"),
        "frame before hello": (struct.pack(">I", len(body)) + body, "bad_frames"),
        "other cluster": (
            encode_frame([wire.Hello(wire.PROTOCOL_VERSION, "other", "raw", "127.0.0.1:9", 1)]),
            "cluster_mismatches",
        ),
        "other version": (
            encode_frame([wire.Hello(99, CFG.cluster, "raw", "127.0.0.1:9", 1)]),
            "version_mismatches",
        ),
        "not msgpack after hello": (
            encode_frame([wire.Hello(wire.PROTOCOL_VERSION, CFG.cluster, "raw", "127.0.0.1:9", 1)])
            + b"\x00\x00\x00\x03\xc1\xc1\xc1",
            "bad_frames",
        ),
    }


@pytest.mark.timeout(60)
def test_bad_input_closes_only_that_connection(arun: Any, caplog: Any) -> None:
    async def main() -> None:
        a, ea = await make()
        b, eb = await make()
        ea.active, eb.active = (eb.address,), (ea.address,)
        ea.send(eb.address, wire.Neighbor(True))
        poke(a)
        await until(lambda: eb.received())
        for name, (data, counter) in _bad_inputs(a.address).items():
            before = a.counters()
            raw = await Raw.connect(a.address)
            raw.write(data)
            await raw.read_until_eof()  # closed by the transport
            after = a.counters()
            assert after[counter] == before[counter] + 1, name
            raw.close()
            # the honest link is untouched
            n = len(eb.received())
            ea.send(eb.address, wire.Gossip(1, n + 1, 0, name.encode()))
            poke(a)
            await until(lambda n=n: len(eb.received()) == n + 1)
        # only the raw peer that completed a handshake and then misbehaved is reported
        assert set(ea.down) <= {("127.0.0.1:9", "failed")} and not eb.down
        assert b.counters()["bad_frames"] == 0
        await a.close()
        await b.close()

    caplog.set_level("WARNING", logger="gossipfast")
    arun(main())
    text = caplog.text
    assert "'other'" in text and repr(CFG.cluster) in text  # names both clusters
    assert "99" in text


@pytest.mark.timeout(30)
def test_bad_input_is_logged_once_per_cause(arun: Any, caplog: Any) -> None:
    async def main() -> None:
        a, _ = await make()
        for _ in range(5):
            raw = await Raw.connect(a.address)
            raw.write(struct.pack(">I", CFG.max_frame_size + 1))
            await raw.read_until_eof()
            raw.close()
        assert a.counters()["bad_frames"] == 5
        await a.close()

    caplog.set_level("WARNING", logger="gossipfast")
    arun(main())
    warnings = [r for r in caplog.records if "oversize" in r.getMessage()]
    assert len(warnings) == 1


@pytest.mark.timeout(30)
def test_silent_connection_closed_after_handshake_timeout(arun: Any) -> None:
    async def main() -> None:
        a, _ = await make()
        raw = await Raw.connect(a.address)
        t0 = time.monotonic()
        data = await raw.read_until_eof(timeout=5)
        waited = time.monotonic() - t0
        assert CFG.connect_timeout * 0.8 <= waited < CFG.connect_timeout + 2
        msgs, _ = FrameDecoder(1 << 20).feed(data)
        assert isinstance(msgs[0], wire.Hello)  # it greeted us, then gave up
        c = a.counters()
        assert c["handshake_timeouts"] == 1 and c["handshake_failures"] == 1
        assert c["connections"] == 0
        raw.close()
        await a.close()

    arun(main())


@pytest.mark.timeout(30)
def test_ping_answered_and_silence_fails_the_link(arun: Any) -> None:
    async def main() -> None:
        a, ea = await make()
        raw = await Raw.connect(a.address)
        me = "127.0.0.1:9"
        raw.hello(me)
        raw.write(encode_frame([wire.Ping(42)]))
        msgs = await raw.read_msgs(2)
        assert isinstance(msgs[0], wire.Hello) and wire.Pong(42) in msgs
        ea.active = (me,)
        # we never answer its pings: after heartbeat_timeout the link is declared failed
        await raw.read_until_eof(timeout=5)
        await until(lambda: ea.down == [(me, "failed")])
        assert a.counters()["heartbeat_timeouts"] == 1
        raw.close()
        await a.close()

    arun(main())


@pytest.mark.timeout(30)
def test_new_incarnation_replaces_old_link(arun: Any) -> None:
    async def main() -> None:
        a, ea = await make()
        me = "127.0.0.1:9"
        old = await Raw.connect(a.address)
        old.hello(me, inc=1)
        old.write(encode_frame([wire.Join()]))
        await until(lambda: ea.received(me) == [wire.Join()])
        new = await Raw.connect(a.address)
        new.hello(me, inc=2)
        new.write(encode_frame([wire.Neighbor(True)]))
        await until(lambda: len(ea.received(me)) == 2)
        assert ea.down == [(me, "failed")]  # the old incarnation is gone
        await old.read_until_eof()
        # sends now go to the new incarnation
        ea.send(me, wire.Prune())
        poke(a)
        msgs = await new.read_msgs(2)
        assert msgs[-1] == wire.Prune()
        old.close()
        new.close()
        await a.close()

    arun(main())


@pytest.mark.timeout(60)
def test_slow_peer_is_dropped(arun: Any) -> None:
    async def main() -> None:
        a, ea = await make()
        me = "127.0.0.1:9"
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, parse_address(a.address))
        await loop.sock_sendall(
            sock, encode_frame([wire.Hello(wire.PROTOCOL_VERSION, CFG.cluster, "raw", me, 1)])
        )
        await until(lambda: linked(a, me))  # its Hello was taken: the link is named
        ea.active = (me,)
        payload = b"z" * 16384
        seq = 0
        # it never reads: keep sending until the transport gives up on it
        while not ea.down and seq < 10_000:
            for _ in range(8):
                seq += 1
                ea.send(me, wire.Gossip(1, seq, 0, payload))
            poke(a)
            await asyncio.sleep(0.002)  # the sender's pace, not a synchronisation
        assert ea.down == [(me, "slow")]
        assert a.counters()["slow_drops"] == 1
        # dropped only once more than the bound was queued, and nothing else holds it:
        # the kernel takes at most SOCKET_BUFFER (doubled by Linux) of the rest
        assert seq * len(payload) > CFG.send_queue_bytes
        assert seq * len(payload) <= CFG.send_queue_bytes + 2 * SOCKET_BUFFER + (256 << 10)
        sock.close()
        await a.close()

    arun(main())


class Relay(FakeEngine):
    """Forwards every Gossip it receives to each address of ``sinks`` (a relay of the
    broadcast tree)."""

    sinks: tuple[str, ...] = ()

    def on_frame(self, peer: str, msgs: list[Any], now: float) -> None:
        super().on_frame(peer, msgs, now)
        fwd = [m for m in msgs if type(m) is wire.Gossip]
        if fwd:
            for d in self.sinks:
                self.send(d, *fwd)


class Sink:
    """A raw peer that says Hello, then reads nothing until ``gate`` is set (a stalled
    link) and from then on at most ``rate`` bytes/s (None: as fast as it can), with a
    small receive buffer so that its reads follow what it was sent. It pings every
    50 ms, so it is never taken for dead. ``got`` counts the bytes it read; with
    ``keep`` they are kept in ``stream`` as well."""

    def __init__(
        self, node_id: str, rate: float | None = None, open_: bool = True, keep: bool = False
    ) -> None:
        self.node_id = node_id
        self.rate = rate
        self.keep = keep
        self.stream = bytearray()
        self.gate = asyncio.Event()
        if open_:
            self.gate.set()
        self.got = 0
        self.address = ""
        self.server: asyncio.Server | None = None

    async def start(self) -> Sink:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.address = format_address("127.0.0.1", self.server.sockets[0].getsockname()[1])
        return self

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        sock = w.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        hello = wire.Hello(wire.PROTOCOL_VERSION, CFG.cluster, self.node_id, "127.0.0.1:9", 1)
        w.write(encode_frame([hello]))

        async def pings() -> None:
            while True:
                w.write(encode_frame([wire.Ping(1)]))
                await asyncio.sleep(0.05)  # the heartbeat's period

        pinger = asyncio.ensure_future(pings())
        try:
            await self.gate.wait()
            while data := await r.read(16 << 10):
                self.got += len(data)
                if self.keep:
                    self.stream += data
                if self.rate:
                    await asyncio.sleep(len(data) / self.rate)  # under test: a slow reader
        finally:
            pinger.cancel()

    def close(self) -> None:
        assert self.server is not None
        self.server.close()


def linked(tr: Transport, peer: str) -> bool:
    """True once the transport holds a connection named ``peer`` (its Hello was taken)."""
    link = tr._links.get(peer)
    return link is not None and link.conn is not None


def queued(tr: Transport, peer: str) -> int:
    """Bytes the transport holds for ``peer``: its own queue and the socket's buffer."""
    link = tr._links.get(peer)
    if link is None:
        return 0
    c = link.conn
    held = c.tr.get_write_buffer_size() if c is not None and c.tr is not None else 0
    return link.pending_bytes + held


async def relay_with(
    *sinks: Sink, heartbeat_timeout: float = 5.0, **config: Any
) -> tuple[Transport, Relay, Raw]:
    """A relay forwarding to ``sinks`` (send_queue_bytes 16 MiB: it pauses its reads
    beyond 4 MiB queued for one link; ``config`` overrides more fields), and an upstream
    raw peer ``127.0.0.1:8`` connected to it."""
    cfg = msgspec.structs.replace(
        CFG, send_queue_bytes=16 << 20, heartbeat_timeout=heartbeat_timeout, **config
    )
    tr = Transport(cfg, deliver=lambda d: None, emit=lambda e: None)
    host, port = await tr.listen("127.0.0.1", 0)
    relay = Relay(format_address(host, port))
    await tr.start(relay, address=relay.address, node_id="relay", incarnation=1)
    relay.sinks = tuple(s.address for s in sinks)
    up = await Raw.connect(relay.address)
    up.hello("127.0.0.1:8")
    return tr, relay, up


def gossip_frames(n: int, size: int, first: int = 1) -> bytes:
    payload = b"u" * size
    return b"".join(encode_frame([wire.Gossip(1, s, 0, payload)]) for s in range(first, first + n))


@pytest.mark.timeout(60)
def test_back_pressure_reaches_upstream_hop_by_hop(arun: Any) -> None:
    """A relay whose downstream reads slowly stops reading its upstream once the queue
    toward it holds a quarter of send_queue_bytes (TCP then pushes back on the sender)
    instead of queueing the stream in memory; everything arrives, nothing is dropped."""

    async def main() -> None:
        slow = await Sink("down", rate=4 << 20).start()
        tr, relay, up = await relay_with(slow)
        bound = tr.config.send_queue_bytes // 4
        total, size = 2000, 8000  # 16 MB offered upstream at once: 4 s of the sink
        up.writer.write(gossip_frames(total, size))
        peak = 0
        while slow.got < total * size:
            peak = max(peak, queued(tr, slow.address))
            await asyncio.sleep(0.005)  # the sampling period of the peak
        # Without the pause the relay reads the 16 MB of loopback within milliseconds
        # and holds nearly all of it. With it: a quarter of send_queue_bytes (the
        # burst has no age yet), plus what arrives before the pause (reads of up to
        # 256 KiB) and one read per release.
        assert peak < bound + 2 * LINK_QUEUE_MAX, peak
        assert tr.counters()["backpressure_pauses"] > 0
        assert len(relay.received("127.0.0.1:8")) == total
        assert tr.counters()["slow_drops"] == 0
        up.writer.close()
        await tr.close()
        slow.close()

    arun(main())


@pytest.mark.timeout(60)
def test_relay_reads_on_while_its_queue_is_old_but_small(arun: Any) -> None:
    """A queue that is old but below the relay's byte bound does not pause the relay's
    reads: a pause would hold every other tree through the relay, and on a busy host
    a queue's age says more about scheduling than about a slow peer."""

    async def main() -> None:
        slow = await Sink("down", rate=2 << 20).start()
        tr, relay, up = await relay_with(slow)
        # 6.4 MB over 2 s to a sink of 2 MB/s: the queue ages past a second and stays
        # under the 4 MiB bound
        total, size = 800, 8000
        for burst in range(40):  # paced, so that the relay reads while its queue is old
            up.writer.write(gossip_frames(20, size, first=1 + 20 * burst))
            await asyncio.sleep(0.05)
        await until(lambda: slow.got >= total * size, timeout=20)
        assert len(relay.received("127.0.0.1:8")) == total
        c = tr._links[slow.address].conn
        assert c is not None and c.paused_since > 0  # its writes did wait (queue aged)
        assert tr.counters()["backpressure_pauses"] == 0
        assert tr.counters()["slow_drops"] == 0
        up.writer.close()
        await tr.close()
        slow.close()

    arun(main())


@pytest.mark.timeout(60)
def test_relay_forwards_large_payloads_intact(arun: Any) -> None:
    """Payloads above the codec's parts threshold leave as their own buffers
    (``writelines``); what the next hop decodes is exactly what was sent, in order,
    across frames split at ``max_frame_size``."""

    async def main() -> None:
        sink = await Sink("down", keep=True).start()
        limit = 512 << 10
        tr, _, up = await relay_with(sink, max_payload_size=400 << 10, max_frame_size=limit)
        sizes = [100, 16 << 10, 300 << 10, 9000, 8192, 70_000, 400 << 10] * 3
        sent = [wire.Gossip(1, i + 1, 0, bytes([i]) * n) for i, n in enumerate(sizes)]
        for m in sent:
            up.write(encode_frame([m]))
        total = sum(sizes)
        await until(lambda: sink.got >= total, timeout=20)

        def forwarded() -> list[Any]:
            msgs, fault = FrameDecoder(limit).feed(bytes(sink.stream))
            assert fault is None
            return [m for m in msgs if type(m) is wire.Gossip]

        await until(lambda: len(forwarded()) == len(sent), timeout=20)
        assert forwarded() == sent
        up.writer.close()
        await tr.close()
        sink.close()

    arun(main())


@pytest.mark.timeout(60)
def test_back_pressure_pauses_only_the_inputs_that_feed_it(arun: Any) -> None:
    """While a downstream link is congested, a peer that brings payloads is paused but
    one that only announces them is read on: pausing it would not lighten the congested
    link, and links that wait on each other through announcements formed cycles."""

    async def main() -> None:
        slow = await Sink("down", rate=2 << 20).start()
        tr, relay, up = await relay_with(slow)
        lazy = await Raw.connect(relay.address)
        lazy.hello("127.0.0.1:7")
        await until(lambda: "127.0.0.1:7" in tr._links and "127.0.0.1:8" in tr._links)
        up.writer.write(gossip_frames(800, 8000))  # 3 s of the sink, over 4 MiB

        def conn(peer: str) -> Any:
            return tr._links[peer].conn

        await until(lambda: conn("127.0.0.1:8").bp_paused)
        for i in range(20):
            lazy.write(encode_frame([wire.IHave([1, 2000 + i, 2000 + i, 1])]))
            await until(lambda i=i: len(relay.received("127.0.0.1:7")) == i + 1)
            assert not conn("127.0.0.1:7").bp_paused
        await until(lambda: slow.got >= 800 * 8000, timeout=20)
        assert tr.counters()["slow_drops"] == 0
        up.writer.close()
        lazy.writer.close()
        await tr.close()
        slow.close()

    arun(main())


@pytest.mark.timeout(60)
def test_stalled_link_does_not_stall_the_others(arun: Any) -> None:
    """A relay with one stalled downstream (a peer that reads nothing) and one healthy
    one: the healthy one gets the whole stream at once (the stalled link is not waited
    for), the stalled one's queue stays within send_queue_bytes, and it is dropped as
    slow after heartbeat_timeout without progress."""

    async def main() -> None:
        stalled = await Sink("stalled", open_=False).start()
        healthy = await Sink("healthy").start()
        tr, relay, up = await relay_with(stalled, healthy, heartbeat_timeout=4.0)
        cfg = tr.config
        total, size = 500, 8000  # 4 MB, a quarter of send_queue_bytes
        up.writer.write(gossip_frames(total, size))
        await until(lambda: healthy.got >= total * size, timeout=20)
        # the healthy peer had it all before the stalled one was given up: the stalled
        # link did not hold the relay's reading meanwhile
        assert tr.counters()["slow_drops"] == 0
        assert stalled.got == 0
        assert 0 < queued(tr, stalled.address) <= cfg.send_queue_bytes
        # (the upstream, which never pings, may time out around the same time)
        await until(
            lambda: (stalled.address, "slow") in relay.down, timeout=cfg.heartbeat_timeout * 3
        )
        assert tr.counters()["slow_drops"] == 1
        assert queued(tr, stalled.address) == 0
        up.writer.close()
        await tr.close()
        stalled.close()
        healthy.close()

    arun(main())


@pytest.mark.timeout(30)
def test_back_pressure_holds_the_publisher_to_a_slow_peer(arun: Any) -> None:
    """A publisher that waits on ``wait_writable()`` whenever the transport is congested
    sends into a peer that reads 10x slower than loopback with a bounded queue, and
    every byte arrives."""

    async def main() -> None:
        cfg = msgspec.structs.replace(CFG, send_queue_bytes=64 << 20, heartbeat_timeout=5.0)
        a, ea = await make(cfg)
        slow = await Sink("raw", rate=2 << 20).start()
        payload = b"p" * 16384
        total = 256  # 4 MB: 2 s of the sink
        peak = waits = 0
        for seq in range(1, total + 1):
            ea.send(slow.address, wire.Gossip(1, seq, 0, payload))
            poke(a)
            await asyncio.sleep(0)  # yield: the transport flushes
            peak = max(peak, queued(a, slow.address))
            if a.congested:
                waits += 1
                await asyncio.wait_for(a.wait_writable(), 10)
        assert waits > 0
        # A publisher this fast queues a burst in a few milliseconds, before any byte
        # has aged past QUEUE_DELAY_MAX: LINK_QUEUE_MAX holds each burst.
        assert peak < LINK_QUEUE_MAX + 2 * len(payload), peak
        await until(lambda: slow.got >= total * len(payload), timeout=20)
        assert a.counters()["slow_drops"] == 0
        await a.close()
        slow.close()

    arun(main())


@pytest.mark.timeout(60)
def test_stalled_peer_does_not_hold_writers_and_is_dropped_as_slow(arun: Any) -> None:
    """A peer that is alive (it pings) but never reads: a writer waiting on
    ``wait_writable()`` is released once the link shows no progress (it is stalled,
    not slow), and the peer is dropped as slow after heartbeat_timeout."""

    async def main() -> None:
        # a queue bound too large to overflow: only the stall bound can drop the peer
        cfg = msgspec.structs.replace(CFG, send_queue_bytes=1 << 30, heartbeat_timeout=1.5)
        a, ea = await make(cfg)
        me = "127.0.0.1:9"
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, parse_address(a.address))
        await loop.sock_sendall(
            sock, encode_frame([wire.Hello(wire.PROTOCOL_VERSION, CFG.cluster, "raw", me, 1)])
        )

        async def keepalive() -> None:  # alive (it pings) but never reads
            while True:
                await loop.sock_sendall(sock, encode_frame([wire.Ping(1)]))
                await asyncio.sleep(0.05)  # the heartbeat's period

        ka = asyncio.ensure_future(keepalive())
        await until(lambda: a.counters()["connections"] == 1)
        ea.active = (me,)
        seq = 0
        while not a.congested and seq < 100_000:
            seq += 1
            ea.send(me, wire.Gossip(1, seq, 0, b"s" * 16384))
            poke(a)
            if seq % 16 == 0:
                await asyncio.sleep(0)  # yield: the transport writes
        assert a.congested
        t0 = time.monotonic()
        await asyncio.wait_for(a.wait_writable(), 10)
        assert time.monotonic() - t0 < cfg.heartbeat_timeout / 2
        assert not ea.down
        await until(lambda: ea.down == [(me, "slow")], timeout=cfg.heartbeat_timeout * 3)
        assert a.counters()["slow_drops"] == 1
        assert a.counters()["heartbeat_timeouts"] == 0
        ka.cancel()
        sock.close()
        await a.close()

    arun(main())


@pytest.mark.timeout(30)
def test_no_large_buffering_before_hello(arun: Any) -> None:
    async def main() -> None:
        cfg = msgspec.structs.replace(CFG, max_frame_size=1 << 20)
        a, _ = await make(cfg)
        raw = await Raw.connect(a.address)
        raw.write(struct.pack(">I", 512 << 10) + b"\x91" * (100 << 10))  # legal size, no Hello
        await raw.read_until_eof()
        assert a.counters()["bad_frames"] == 1 and a.counters()["connections"] == 0
        raw.close()
        await a.close()

    arun(main())


@pytest.mark.timeout(30)
def test_handshake_flood_is_refused(arun: Any) -> None:
    async def main() -> None:
        a, ea = await make(msgspec.structs.replace(CFG, max_handshaking=3))
        raws = [await Raw.connect(a.address) for _ in range(5)]
        await until(lambda: a.counters()["connections_refused"] == 2)
        assert a.counters()["connections"] == 3
        # an honest peer still gets in once the silent ones time out
        for r in raws:
            r.close()
        await until(lambda: a.counters()["connections"] == 0)
        b, eb = await make()
        eb.send(ea.address, wire.Join())
        poke(b)
        await until(lambda: ea.received() == [wire.Join()])
        await a.close()
        await b.close()

    arun(main())


@pytest.mark.timeout(30)
def test_hello_claiming_our_address_is_refused_once(arun: Any) -> None:
    async def main() -> None:
        a, ea = await make()
        raw = await Raw.connect(a.address)
        raw.hello(a.address)
        raw.write(encode_frame([wire.Join()]))
        await raw.read_until_eof()
        c = a.counters()
        assert c["handshake_failures"] == 1 and c["bad_frames"] == 0
        assert ea.received() == [] and ea.down == []
        raw.close()
        await a.close()

    arun(main())


@pytest.mark.timeout(30)
def test_read_rate_pauses_reading_and_loses_nothing(arun: Any) -> None:
    async def main() -> None:
        cfg = msgspec.structs.replace(CFG, peer_read_rate=512 << 10, heartbeat_timeout=2.0)
        a, ea = await make(cfg)
        raw = await Raw.connect(a.address)
        raw.hello("127.0.0.1:9")
        msgs = [wire.Gossip(1, i + 1, 0, b"r" * 25_000) for i in range(80)]  # 2 MB
        t0 = time.monotonic()
        for m in msgs:
            raw.write(encode_frame([m]))
        await until(lambda: len(ea.received()) == 80, timeout=20)
        took = time.monotonic() - t0
        assert ea.received() == msgs  # paused, never dropped
        c = a.counters()
        assert c["read_throttles"] >= 1 and c["bad_frames"] == 0 and not ea.down
        # Long-run rate: at most one burst (1 s) plus one socket read (256 KiB, charged
        # after it is handled) beyond peer_read_rate x elapsed.
        burst = max(cfg.peer_read_rate, cfg.max_frame_size + 4)
        assert took >= (2_000_000 - burst - (256 << 10)) / cfg.peer_read_rate * 0.8, took
        raw.close()
        await a.close()

    arun(main())


@pytest.mark.timeout(30)
def test_frame_timeout_closes_a_dribbled_frame(arun: Any) -> None:
    async def main() -> None:
        a, ea = await make(msgspec.structs.replace(CFG, frame_timeout=0.5))
        raw = await Raw.connect(a.address)
        me = "127.0.0.1:9"
        raw.hello(me)
        frame = encode_frame([wire.Gossip(1, 1, 0, b"d" * 500)])
        t0 = time.monotonic()
        for b in frame[:200]:  # alive byte by byte, never whole
            if a.counters()["frame_timeouts"]:
                break
            raw.write(bytes([b]))
            await asyncio.sleep(0.01)  # under test: a frame dribbled byte by byte
        await until(lambda: a.counters()["frame_timeouts"] == 1)
        assert time.monotonic() - t0 < 0.5 + 1.0
        await until(lambda: ea.down == [(me, "failed")])
        assert ea.received() == [] and a.counters()["heartbeat_timeouts"] == 0
        raw.close()
        await a.close()

    arun(main())


@pytest.mark.timeout(30)
def test_per_host_cap_and_accept_rate(arun: Any) -> None:
    async def main() -> None:
        a, ea = await make(msgspec.structs.replace(CFG, max_connections_per_host=3))
        raws = [await Raw.connect(a.address) for _ in range(5)]
        await until(lambda: a.counters()["host_refusals"] == 2)
        assert a.counters()["connections"] == 3
        for r in raws:
            r.close()
        await until(lambda: a.counters()["connections"] == 0)
        # the slots come back once those connections are gone
        b, _eb = await make()
        ok = await Raw.connect(a.address)
        ok.hello(b.address)
        ok.write(encode_frame([wire.Join()]))
        await until(lambda: ea.received() == [wire.Join()])
        ok.close()
        await a.close()
        await b.close()
        # accept_rate: a burst of one second's worth, then refusals
        c, _ec = await make(msgspec.structs.replace(CFG, accept_rate=2.0))
        raws = [await Raw.connect(c.address) for _ in range(4)]
        await until(lambda: c.counters()["host_refusals"] == 2)
        assert c.counters()["connections_accepted"] == 2
        for r in raws:
            r.close()
        await c.close()

    arun(main())


@pytest.mark.timeout(30)
def test_write_to_a_dead_transport_fails_the_link_without_raising(arun: Any) -> None:
    class Dead:
        """A transport whose handle is gone (as uvloop reports it) but not closing."""

        def __init__(self) -> None:
            self.aborted = False

        def write(self, data: bytes) -> None:
            raise RuntimeError("unable to perform operation; the handler is closed")

        def is_closing(self) -> bool:
            return False

        def get_write_buffer_size(self) -> int:
            return 0

        def abort(self) -> None:
            self.aborted = True

    async def main() -> None:
        a, ea = await make()
        b, eb = await make()
        ea.send(eb.address, wire.Join())
        poke(a)
        await until(lambda: eb.received() == [wire.Join()])
        link = a._links[eb.address]
        assert link.conn is not None and link.conn.ready
        real, dead = link.conn.tr, Dead()
        link.conn.tr = dead  # type: ignore[assignment]
        ea.send(eb.address, wire.Prune())
        ea.send("127.0.0.1:9", wire.Join())  # another peer in the same flush
        poke(a)
        a.flush()  # must not raise
        assert dead.aborted and link.conn.close_reason == "write-failed"
        assert a.counters()["send_drops"] == 1
        link.conn.tr = real
        assert real is not None
        real.abort()
        await until(lambda: (eb.address, "failed") in ea.down)
        await a.close()
        await b.close()

    arun(main())


@pytest.mark.timeout(30)
def test_unencodable_batch_is_dropped_and_others_still_sent(arun: Any) -> None:
    async def main() -> None:
        a, ea = await make()
        b, eb = await make()
        ea.send(eb.address, wire.Join())
        ea.send("127.0.0.1:9", wire.Gossip(1 << 70, 1, 0, b"x"))  # no msgpack integer
        poke(a)
        a.flush()  # must not raise
        await until(lambda: eb.received() == [wire.Join()])
        c = a.counters()
        assert c["engine_errors"] == 1 and c["send_drops"] == 1
        await a.close()
        await b.close()

    arun(main())


class ConnectTimeoutAfterConnectionMade:
    """An event loop whose ``create_connection`` is cut by the connect timeout just after
    the protocol's ``connection_made`` ran (once): what ``wait_for`` does when the
    timeout fires in that window (a SYN retransmit answered at ``connect_timeout``).
    uvloop then closes the handle without ``connection_lost``; asyncio closes the
    transport and calls ``connection_lost`` later."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.cut = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)

    async def create_connection(self, factory: Any, *args: Any, **kw: Any) -> Any:
        task = asyncio.current_task()
        assert task is not None

        def wrapped() -> Any:
            p = factory()
            made = p.connection_made

            def connection_made(t: Any) -> None:
                made(t)
                if not self.cut:
                    self.cut += 1
                    task.cancel()

            p.connection_made = connection_made
            return p

        try:
            return await self._loop.create_connection(wrapped, *args, **kw)
        except asyncio.CancelledError:
            if self.cut != 1:
                raise
            self.cut += 1
            raise asyncio.TimeoutError from None  # as wait_for reports its timeout


@pytest.mark.timeout(30)
def test_dial_timed_out_after_connection_made_leaves_no_dead_link(arun: Any) -> None:
    """The 'Exception in callback Transport.flush' of a long chaos run: a dial whose
    connect timeout fired after connection_made left, on uvloop, a connection with a
    closed handle as the peer's link (never lost, never closing): every later flush
    wrote to it. Now the dial ends that connection itself: the engine hears "failed"
    once, nothing is left open, and the next send dials again."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        errors: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        a, ea = await make(node_id="a")
        b, eb = await make(node_id="b")
        proxy = ConnectTimeoutAfterConnectionMade(a.loop)
        a.dialer.loop = proxy  # type: ignore[assignment]
        ea.send(eb.address, wire.Join())
        poke(a)
        await until(lambda: ea.down)
        assert proxy.cut == 2  # the connection came up, then the dial timed out
        assert ea.down == [(eb.address, "failed")]
        assert a.counters()["dial_failures"] == 1
        await until(lambda: a.counters()["connections"] == 0)
        assert eb.address not in a._links
        # the peer is reachable again: the next send dials it and arrives
        ea.send(eb.address, wire.Prune())
        poke(a)
        a.flush()
        await until(lambda: wire.Prune() in eb.received())
        assert a.counters()["dials"] == 2 and a.counters()["send_drops"] == 0
        assert ea.down == [(eb.address, "failed")]
        assert not errors, errors
        await a.close()
        await b.close()

    arun(main())


@pytest.mark.timeout(30)
def test_dials_to_new_addresses_are_rate_limited(arun: Any) -> None:
    """A forged view naming hundreds of addresses: at most dial_rate new addresses a
    second are dialled (burst: one second's worth); the rest fail at once as
    unreachable (the engine moves on) and are counted. A peer that answered one of our
    dials before is dialled again whatever the bucket holds."""

    async def main() -> None:
        rate = 10.0
        a, ea = await make(msgspec.structs.replace(CFG, dial_rate=rate))
        t_start = a.loop.time()
        b, eb = await make()
        ea.send(eb.address, wire.Join())
        poke(a)
        await until(lambda: eb.received() == [wire.Join()])
        ea.close(eb.address)
        poke(a)
        await until(lambda: a.counters()["connections"] == 0)

        def allowed() -> float:  # dials the bucket may have let through so far
            return rate + rate * (a.loop.time() - t_start)

        forged = [format_address("127.0.0.1", p) for p in free_ports(200)]
        for peer in forged:
            ea.send(peer, wire.Join())
        poke(a)
        await until(lambda: len(ea.down) == 200)
        c = a.counters()
        assert c["dials"] <= allowed()
        assert c["dials"] - 1 + c["dials_limited"] == 200  # every forged address once
        assert c["dials_limited"] >= 200 - allowed()
        assert sorted(ea.down) == sorted((p, "failed") for p in forged)
        # the known peer is dialled although the bucket is empty
        limited = c["dials_limited"]
        ea.send(eb.address, wire.Prune())
        poke(a)
        await until(lambda: wire.Prune() in eb.received())
        assert a.counters()["dials_limited"] == limited
        # a steady stream of new addresses: dialled at dial_rate at most
        more = [format_address("127.0.0.1", p) for p in free_ports(100)]
        for k in range(10):
            for peer in more[k * 10 : k * 10 + 10]:
                ea.send(peer, wire.Join())
            poke(a)
            await until(lambda k=k: len(ea.down) == 200 + (k + 1) * 10)
            await asyncio.sleep(0.05)  # the stream's pace, not a synchronisation
        assert a.counters()["dials"] <= allowed() + 1  # + the known peer's redial
        assert a.counters()["dials_limited"] > limited
        await a.close()
        await b.close()

    arun(main())
