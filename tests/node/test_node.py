"""The public Node API over real loopback TCP, on both event loops."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from support.nodekit import FAST, until

import gossipfast
from gossipfast import wire
from gossipfast._codec import encode_frame
from gossipfast.transport import parse_address

pytestmark = pytest.mark.network


class Inbox:
    """Collects a node's messages() in a background task (the node queues deliveries
    until they are read: the task needs no head start)."""

    def __init__(self, node: gossipfast.Node) -> None:
        self.items: list[Any] = []
        self.task = asyncio.ensure_future(self._run(node))

    async def _run(self, node: gossipfast.Node) -> None:
        async for m in node.messages():
            self.items.append(m)

    def payloads(self) -> list[bytes]:
        return [m.payload for m in self.items if isinstance(m, gossipfast.Message)]


async def cluster(n: int, cfg: gossipfast.Config = FAST) -> list[gossipfast.Node]:
    nodes = [gossipfast.Node("127.0.0.1:0", config=cfg) for _ in range(n)]
    for node in nodes:
        await node.start()
    for node in nodes[1:]:
        await node.join([nodes[0].address])
    await until(lambda: all(x.active_view for x in nodes), what="everyone has a neighbour")
    return nodes


async def close_all(nodes: list[gossipfast.Node]) -> None:
    for node in nodes:
        await node.leave()


@pytest.mark.timeout(60)
def test_broadcast_delivered_once_to_others_only(arun: Any) -> None:
    async def main() -> None:
        nodes = await cluster(4)
        boxes = [Inbox(x) for x in nodes]
        ids = {}
        for i, node in enumerate(nodes):
            for k in range(5):
                mid = await node.broadcast(f"{i}:{k}".encode())
                assert isinstance(mid, gossipfast.MessageId) and len(mid) == 16
                ids[mid] = (i, node.origin)
        want = {f"{i}:{k}".encode() for i in range(4) for k in range(5)}
        for i, box in enumerate(boxes):
            mine = {f"{i}:{k}".encode() for k in range(5)}
            await until(lambda box=box, mine=mine: set(box.payloads()) == want - mine)
        await asyncio.sleep(0.3)  # under test: no duplicate shows up in this window
        for i, box in enumerate(boxes):
            assert len(box.payloads()) == 15, "each message exactly once, never our own"
            for m in box.items:
                sender, origin = ids[m.id]
                assert sender != i and m.origin == origin and m.hops >= 1
                assert m.id.origin == int(origin, 16)
        for node in nodes:
            s = node.stats()
            for key in ("sent", "received", "delivered", "dups", "bad_frames", "connections"):
                assert key in s, key
            assert s["delivered"] == 15 and s["bad_frames"] == 0
        await close_all(nodes)

    arun(main())


@pytest.mark.timeout(60)
def test_identity_views_and_errors(arun: Any) -> None:
    async def main() -> None:
        a, b = await cluster(2)
        host, port = parse_address(a.address)
        assert host == "127.0.0.1" and port > 0
        assert a.id != b.id and a.address in a.id
        assert len(a.origin) == 16 and a.origin != b.origin
        assert a.active_view == (b.address,) and b.active_view == (a.address,)
        assert isinstance(a.passive_view, tuple)
        with pytest.raises(gossipfast.PayloadTooLarge) as e:
            await a.broadcast(b"x" * (FAST.max_payload_size + 1))
        assert str(FAST.max_payload_size) in str(e.value)
        await a.broadcast(b"x" * FAST.max_payload_size)  # the limit itself is fine
        await b.leave()
        await b.leave()  # idempotent
        with pytest.raises(gossipfast.NodeClosed):
            await b.broadcast(b"late")
        await a.leave()

    arun(main())


@pytest.mark.timeout(60)
def test_join_error_names_seeds(arun: Any) -> None:
    async def main() -> None:
        cfg = msgspec.structs.replace(FAST, join_timeout=0.5)
        async with gossipfast.Node("127.0.0.1:0", config=cfg) as a:
            t0 = time.monotonic()
            with pytest.raises(gossipfast.JoinError) as e:
                await a.join(["127.0.0.1:1"])
            assert time.monotonic() - t0 < 5
            assert "127.0.0.1:1" in str(e.value)
            assert a.seeds == ("127.0.0.1:1",)

    arun(main())


@pytest.mark.timeout(60)
def test_slow_consumer_gets_lagged(arun: Any) -> None:
    async def main() -> None:
        cfg = msgspec.structs.replace(FAST, message_queue_size=4)
        a, b = await cluster(2, cfg)
        for k in range(10):
            await b.broadcast(b"%d" % k)
        await until(lambda: a.stats()["delivered"] == 10)
        it = a.messages().__aiter__()
        first = await it.__anext__()
        assert first == gossipfast.Lagged(6)
        rest = [await it.__anext__() for _ in range(4)]
        assert [m.payload for m in rest] == [b"6", b"7", b"8", b"9"]
        assert a.stats()["lagged"] == 6
        await close_all([a, b])

    arun(main())


@pytest.mark.timeout(60)
def test_hook_subclass_and_failing_hook(arun: Any) -> None:
    class Counting(gossipfast.Node):
        calls = 0

        def handle_broadcast(self, message: gossipfast.Message) -> None:
            Counting.calls += 1
            if message.payload == b"boom":
                raise RuntimeError("user bug")
            super().handle_broadcast(message)

    async def main() -> None:
        a = Counting("127.0.0.1:0", config=FAST)
        b = gossipfast.Node("127.0.0.1:0", config=FAST)
        await a.start()
        await b.start()
        await b.join([a.address])
        await until(lambda: a.active_view)
        box = Inbox(a)
        await b.broadcast(b"boom")
        await b.broadcast(b"fine")
        await until(lambda: box.payloads() == [b"fine"])
        assert Counting.calls == 2 and a.stats()["hook_errors"] == 1
        await close_all([a, b])

    arun(main())


@pytest.mark.timeout(60)
def test_graceful_leave_is_seen_with_reason(arun: Any) -> None:
    async def main() -> None:
        a, b, c = await cluster(3)
        events: list[Any] = []

        async def watch() -> None:
            async for ev in a.events():
                events.append(ev)

        w = asyncio.ensure_future(watch())
        await until(lambda: c.address in a.active_view or c.address in a.passive_view)
        was_active = c.address in a.active_view
        await c.leave()
        if was_active:
            await until(
                lambda: gossipfast.NeighborDown(c.address, "left") in events, what="left event"
            )
        await until(lambda: c.address not in a.active_view and c.address not in b.active_view)
        # the others still talk
        box = Inbox(b)
        await a.broadcast(b"after")
        await until(lambda: box.payloads() == [b"after"])
        w.cancel()
        await close_all([a, b])

    arun(main())


@pytest.mark.timeout(90)
def test_crash_detected_and_restart_at_same_address_is_new_member(arun: Any) -> None:
    async def main() -> None:
        nodes = await cluster(4)
        victim = nodes[3]
        addr, old_origin = victim.address, victim.origin
        await until(lambda: sum(addr in x.active_view for x in nodes[:3]) >= 1)
        victim._abort()  # vanish without a word, like kill -9
        survivors = nodes[:3]
        await until(
            lambda: all(addr not in x.active_view for x in survivors),
            timeout=10,
            what="crash detected",
        )
        # a new incarnation at the same address
        reborn = gossipfast.Node(addr, config=FAST)
        await reborn.start()
        assert reborn.address == addr and reborn.origin != old_origin
        await reborn.join([survivors[0].address])
        box = Inbox(reborn)
        boxes = [Inbox(x) for x in survivors]
        await survivors[1].broadcast(b"welcome")
        await until(lambda: box.payloads() == [b"welcome"], what="reborn receives")
        await reborn.broadcast(b"i am back")
        for bx in boxes:
            await until(lambda bx=bx: b"i am back" in bx.payloads(), what="others receive")
        m = [x for x in boxes[0].items if x.payload == b"i am back"][0]
        assert m.origin == reborn.origin
        await close_all([*survivors, reborn])

    arun(main())


@pytest.mark.timeout(90)
def test_bad_peers_are_counted_and_honest_nodes_keep_delivering(arun: Any) -> None:
    async def main() -> None:
        a, b, c = await cluster(3)
        box_b, box_c = Inbox(b), Inbox(c)
        host, port = parse_address(a.address)
        body = wire.encoder.encode([wire.Join()])
        other = wire.Hello(wire.PROTOCOL_VERSION, "other-cluster", "x", "127.0.0.1:9", 1)
        cases = [
            ("random bytes", os.urandom(200), "bad_frames"),
            ("oversize length", struct.pack(">I", FAST.max_frame_size + 1), "bad_frames"),
            ("frame before hello", struct.pack(">I", len(body)) + body, "bad_frames"),
            ("other cluster", encode_frame([other]), "handshake_failures"),
            ("never sends", b"", "handshake_failures"),
        ]
        for k, (name, data, counter) in enumerate(cases):
            before = a.stats()[counter]
            r, w = await asyncio.open_connection(host, port)
            if data:
                w.write(data)
            # the node closes that connection (EOF), within the handshake timeout at most
            with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
                async with asyncio.timeout(5):
                    await r.readexactly(1 << 20)
            w.close()
            assert a.stats()[counter] == before + 1, name
            payload = f"still fine {k}".encode()
            await a.broadcast(payload)
            await until(lambda p=payload: p in box_b.payloads() and p in box_c.payloads())
        s = a.stats()
        assert s["bad_frames"] == 3 and s["handshake_failures"] == 2
        assert s["cluster_mismatches"] == 1 and s["handshake_timeouts"] == 1
        assert b.address in a.active_view or c.address in a.active_view
        await close_all([a, b, c])

    arun(main())


@pytest.mark.timeout(60)
def test_tight_broadcast_loop_is_flushed_and_delivered(arun: Any) -> None:
    async def main() -> None:
        a, b = await cluster(2)
        box = Inbox(b)
        n = 3000
        for k in range(n):  # never yields unless back-pressure says so
            await a.broadcast(b"m%d" % k)
        await until(lambda: len(box.payloads()) == n, timeout=30)
        assert box.payloads() == [b"m%d" % k for k in range(n)]
        assert b.stats()["dups"] == 0
        await close_all([a, b])

    arun(main())


@pytest.mark.timeout(60)
def test_broadcasts_of_one_turn_are_kept_in_order_and_flushed_by_leave(arun: Any) -> None:
    """broadcast() drains the engine once per loop turn: what a turn accepted is
    counted at once, leaves in order with the next turn, and a leave() in the same
    turn still sends it (before the goodbye)."""

    async def main() -> None:
        a, b = await cluster(2)
        box = Inbox(b)
        n = 100  # fewer than one synchronous flush: all wait for the end of the turn
        for k in range(n):
            await a.broadcast(b"t%d" % k)
            if k == 50:
                with pytest.raises(gossipfast.PayloadTooLarge):
                    await a.broadcast(b"x" * (a.config.max_payload_size + 1))
        assert a.stats()["broadcasts"] == n
        assert a.stats()["sent_gossip"] == n
        await a.leave()  # same turn: nothing written yet
        await until(lambda: len(box.payloads()) == n, timeout=10)
        assert box.payloads() == [b"t%d" % k for k in range(n)]
        await close_all([b])

    arun(main())


def _make_cert(tmp: Path) -> tuple[Path, Path]:
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


@pytest.mark.timeout(60)
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
def test_tls_links(arun: Any, tmp_path: Path) -> None:
    key, cert = _make_cert(tmp_path)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))

    async def main() -> None:
        a = gossipfast.Node("127.0.0.1:0", config=FAST, ssl=server, client_ssl=client)
        b = gossipfast.Node("127.0.0.1:0", config=FAST, ssl=server, client_ssl=client)
        await a.start()
        await b.start()
        await b.join([a.address])
        box = Inbox(a)
        await b.broadcast(b"secret")
        await until(lambda: box.payloads() == [b"secret"])
        # a plain-TCP node cannot talk to them
        plain = gossipfast.Node("127.0.0.1:0", config=msgspec.structs.replace(FAST, join_timeout=1))
        await plain.start()
        with pytest.raises(gossipfast.JoinError):
            await plain.join([a.address])
        await close_all([a, b, plain])

    arun(main())


@pytest.mark.timeout(60)
def test_advertise_and_node_id(arun: Any) -> None:
    from gossipfast._procs import free_ports

    async def main() -> None:
        (port,) = free_ports(1)
        a = gossipfast.Node(
            f"127.0.0.1:{port}", config=FAST, node_id="alpha", advertise=f"localhost:{port}"
        )
        await a.start()
        assert a.id == "alpha" and a.address == f"localhost:{port}"
        b = gossipfast.Node("127.0.0.1:0", config=FAST)
        await b.start()
        await b.join([a.address])  # dials the advertised name
        assert b.active_view == (f"localhost:{port}",)
        await until(lambda: a.active_view == (b.address,))
        await close_all([a, b])

    arun(main())


def _has_ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.timeout(60)
@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback (::1) here")
def test_ipv6_loopback(arun: Any) -> None:
    async def main() -> None:
        a = gossipfast.Node("[::1]:0", config=FAST)
        b = gossipfast.Node("[::1]:0", config=FAST)
        await a.start()
        await b.start()
        assert a.address.startswith("[::1]:") and not a.address.endswith(":0")
        await b.join([a.address])
        box = Inbox(a)
        await b.broadcast(b"six")
        await until(lambda: box.payloads() == [b"six"])
        await close_all([a, b])

    arun(main())


@pytest.mark.timeout(60)
def test_broadcast_many_is_a_batch_of_broadcasts(arun: Any) -> None:
    async def main() -> None:
        nodes = await cluster(3)
        boxes = [Inbox(x) for x in nodes]
        a = nodes[0]
        one = await a.broadcast(b"first")
        batch = [b"m%d" % k for k in range(500)]
        ids = await a.broadcast_many(batch)
        assert len(ids) == 500 and all(isinstance(i, gossipfast.MessageId) for i in ids)
        # the same ids n broadcast() calls would give: consecutive seqs after `one`
        assert [i.seq for i in ids] == list(range(one.seq + 1, one.seq + 501))
        assert await a.broadcast_many([]) == []
        big = b"x" * (a.config.max_payload_size + 1)
        with pytest.raises(gossipfast.PayloadTooLarge):
            await a.broadcast_many([b"ok", big])
        last = await a.broadcast(b"last")
        assert last.seq == one.seq + 501, "the refused batch used no ids, sent nothing"
        want = [b"first", *batch, b"last"]
        for box in boxes[1:]:
            await until(lambda box=box: len(box.payloads()) == len(want))
        await asyncio.sleep(0.2)  # under test: no duplicate shows up in this window
        for box in boxes[1:]:
            # exactly once (order across the tree is FIFO only with Config.fifo)
            assert sorted(box.payloads()) == sorted(want)
        assert boxes[0].payloads() == []
        await close_all(nodes)

    arun(main())
