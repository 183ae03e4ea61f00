"""Mutual TLS between nodes, with certificates made by the test (``trustme``).

A cluster CA signs one certificate per node (for ``127.0.0.1``); every node's server
context requires a client certificate from that CA, and its client context presents its
own certificate and checks the server's. Then:

- trusted nodes join and deliver;
- a node whose certificate comes from another CA, a client with no certificate and a
  plain-TCP peer can neither join nor inject a message (their bytes never reach the
  engine), and a stalled TLS handshake is cut after ``connect_timeout``;
- inside TLS, the handshake still refuses another cluster name or protocol version.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

import msgspec
import pytest
from support.nodekit import FAST, until

import gossipfast
from gossipfast import wire
from gossipfast._codec import encode_frame
from gossipfast.transport import parse_address

trustme = pytest.importorskip("trustme")

pytestmark = pytest.mark.network

CFG = FAST


def contexts(ca: Any, name: str = "127.0.0.1") -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts of one node: its own certificate, trusting ``ca``."""
    cert = ca.issue_cert(name)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.verify_mode = ssl.CERT_REQUIRED  # mutual: a peer must show a certificate
    cert.configure_cert(server)
    ca.configure_trust(server)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    cert.configure_cert(client)
    ca.configure_trust(client)
    return server, client


class Inbox:
    def __init__(self, node: gossipfast.Node) -> None:
        self.payloads: list[bytes] = []
        self.task = asyncio.ensure_future(self._run(node))

    async def _run(self, node: gossipfast.Node) -> None:
        async for m in node.messages():
            if isinstance(m, gossipfast.Message):
                self.payloads.append(m.payload)


async def tls_pair(ca: Any) -> tuple[gossipfast.Node, gossipfast.Node]:
    nodes = []
    for _ in range(2):
        server, client = contexts(ca)
        node = gossipfast.Node("127.0.0.1:0", config=CFG, ssl=server, client_ssl=client)
        await node.start()
        nodes.append(node)
    await nodes[1].join([nodes[0].address])
    return nodes[0], nodes[1]


async def inject(address: str, ctx: ssl.SSLContext | None) -> str:
    """Try to say Hello and push a Gossip over (TLS) ``ctx``; return how it ended."""
    host, port = parse_address(address)
    hello = wire.Hello(wire.PROTOCOL_VERSION, CFG.cluster, "intruder", "127.0.0.1:9", 1)
    try:
        r, w = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ctx, server_hostname=host if ctx else None),
            5,
        )
    except (ssl.SSLError, OSError) as e:
        return f"refused at connect: {type(e).__name__}"
    try:
        w.write(encode_frame([hello, wire.Neighbor(True), wire.Gossip(77, 1, 0, b"injected")]))
        async with asyncio.timeout(5):
            while await r.read(65536):
                pass
        return "closed by the node"
    except (ssl.SSLError, OSError) as e:
        return f"refused: {type(e).__name__}"
    finally:
        w.close()


@pytest.mark.timeout(60)
def test_trusted_nodes_deliver_and_intruders_cannot_inject(arun: Any) -> None:
    ca = trustme.CA()
    other_ca = trustme.CA()

    async def main() -> None:
        a, b = await tls_pair(ca)
        box_a, box_b = Inbox(a), Inbox(b)
        await b.broadcast(b"from b")
        await a.broadcast(b"from a")
        await until(lambda: box_a.payloads == [b"from b"] and box_b.payloads == [b"from a"])
        before = a.stats()
        # 1. a certificate from another CA; 2. no certificate; 3. not TLS at all
        wrong_server, wrong_client = contexts(other_ca)
        ca.configure_trust(wrong_client)  # it trusts us; we do not trust it
        bare = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        ca.configure_trust(bare)
        outcomes = [await inject(a.address, ctx) for ctx in (wrong_client, bare, None)]
        await asyncio.sleep(0.3)  # under test: nothing injected shows up in this window
        after = a.stats()
        assert all(o.startswith(("refused", "closed")) for o in outcomes), outcomes
        assert box_a.payloads == [b"from b"]  # nothing injected was delivered
        assert after["received_gossip"] == before["received_gossip"]
        assert after["received_neighbor"] == before["received_neighbor"]
        assert a.active_view == (b.address,)
        # an untrusted node cannot join either
        intruder = gossipfast.Node(
            "127.0.0.1:0",
            config=msgspec.structs.replace(CFG, join_timeout=1.0),
            ssl=wrong_server,
            client_ssl=wrong_client,
        )
        await intruder.start()
        with pytest.raises(gossipfast.JoinError):
            await intruder.join([a.address])
        assert intruder.address not in a.active_view + a.passive_view
        # the cluster still works
        await b.broadcast(b"still private")
        await until(lambda: box_a.payloads == [b"from b", b"still private"])
        for n in (intruder, a, b):
            await n.leave()

    arun(main())


@pytest.mark.timeout(60)
def test_stalled_tls_handshake_is_cut(arun: Any) -> None:
    ca = trustme.CA()

    async def main() -> None:
        server, client = contexts(ca)
        a = gossipfast.Node("127.0.0.1:0", config=CFG, ssl=server, client_ssl=client)
        await a.start()
        host, port = parse_address(a.address)
        r, w = await asyncio.open_connection(host, port)  # TCP only: never says ClientHello
        t0 = time.monotonic()
        async with asyncio.timeout(10):
            while await r.read(1024):
                pass
        waited = time.monotonic() - t0
        assert waited < CFG.connect_timeout + 3, waited  # not asyncio's default 60 s
        w.close()
        await a.leave()

    arun(main())


@pytest.mark.timeout(60)
def test_cluster_and_version_are_checked_inside_tls(arun: Any) -> None:
    ca = trustme.CA()

    async def main() -> None:
        server, client = contexts(ca)
        a = gossipfast.Node("127.0.0.1:0", config=CFG, ssl=server, client_ssl=client)
        await a.start()
        s2, c2 = contexts(ca)
        other = gossipfast.Node(
            "127.0.0.1:0",
            config=msgspec.structs.replace(CFG, cluster="other", join_timeout=1.0),
            ssl=s2,
            client_ssl=c2,
        )
        await other.start()
        with pytest.raises(gossipfast.JoinError):
            await other.join([a.address])
        await until(lambda: a.stats()["cluster_mismatches"] >= 1)
        # a trusted certificate with a wrong protocol version
        host, port = parse_address(a.address)
        r, w = await asyncio.open_connection(host, port, ssl=c2, server_hostname=host)
        w.write(encode_frame([wire.Hello(99, CFG.cluster, "x", "127.0.0.1:9", 1)]))
        async with asyncio.timeout(5):
            while await r.read(65536):
                pass
        w.close()
        await until(lambda: a.stats()["version_mismatches"] == 1)
        assert a.active_view == ()
        await other.leave()
        await a.leave()

    arun(main())


@pytest.mark.timeout(60)
def test_tls_handshake_failures_are_counted_both_ways(arun: Any, caplog: Any) -> None:
    """Inbound: a certificate from another CA, no certificate, plain TCP and a stalled
    handshake each add one to ``tls_failures`` (nothing reached the engine). Outbound:
    a dial to a node of another CA, and to a plain-TCP node, count at the dialler.
    A node logs each direction once at WARNING (repeats at DEBUG)."""
    ca = trustme.CA()
    other_ca = trustme.CA()

    async def main() -> None:
        server, client = contexts(ca)
        a = gossipfast.Node("127.0.0.1:0", config=CFG, ssl=server, client_ssl=client)
        await a.start()
        assert a.stats()["tls_failures"] == 0
        wrong_server, wrong_client = contexts(other_ca)
        ca.configure_trust(wrong_client)  # it trusts us; we do not trust it
        bare = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        ca.configure_trust(bare)
        for k, ctx in enumerate((wrong_client, bare, None), 1):
            await inject(a.address, ctx)
            await until(lambda k=k: a.stats()["tls_failures"] == k, what=f"inbound {k}")
        host, port = parse_address(a.address)
        _r, w = await asyncio.open_connection(host, port)  # TCP, never a ClientHello
        await until(lambda: a.stats()["tls_failures"] == 4, what="stalled handshake")
        w.close()
        assert a.stats()["received"] == 0 and a.active_view == ()
        tls_warnings = [r for r in caplog.records if "TLS handshake" in r.getMessage()]
        assert len(tls_warnings) == 1, [r.getMessage() for r in tls_warnings]  # once
        # outbound: a node of another CA (its certificate is not trusted by us) ...
        foreign = gossipfast.Node("127.0.0.1:0", config=CFG, ssl=wrong_server)
        plain = gossipfast.Node("127.0.0.1:0", config=CFG)  # ... and one without TLS
        for target in (foreign, plain):
            await target.start()
            d = gossipfast.Node("127.0.0.1:0", config=CFG, ssl=server, client_ssl=client)
            await d.start()
            with pytest.raises(gossipfast.JoinError):
                await d.join([target.address])
            assert d.stats()["tls_failures"] >= 1, target
            assert d.stats()["dial_failures"] >= 1
            await d.leave()
            await target.leave()
        await a.leave()

    caplog.set_level("WARNING", logger="gossipfast")
    arun(main())
