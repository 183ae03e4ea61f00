"""Seeds: ``host:port`` and ``dns:NAME:PORT`` parsing, resolution, never dialling oneself,
and an isolated node resolving its names again (loopback and /etc/hosts only; the
multi-host test with a real resolver is tests/e2e/test_dns_netns.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

import gossipfast
from gossipfast._seeds import DnsRefresher, DnsSeed, is_self, parse_seed, resolve, resolve_all

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    "seed",
    ["10.0.0.1:7000", "[::1]:7000", "node-1.example:7000", "dns:gossip.default.svc:7000"],
)
def test_good_seeds_parse(seed: str) -> None:
    got = parse_seed(seed)
    assert str(got) == seed
    assert isinstance(got, DnsSeed) == seed.startswith("dns:")


@pytest.mark.parametrize(
    ("seed", "says"),
    [
        ("dns:gossip.default.svc", "a port is required"),
        ("dns::7000", "dns:NAME:PORT"),
        ("dns:name:70000", "dns:NAME:PORT"),
        ("localhost", "expected host:port"),
        ("host:port", "expected host:port"),
        ("10.0.0.1:0", "port 0"),
        (7000, "string"),
    ],
)
def test_bad_seeds_say_what_is_wrong(seed: Any, says: str) -> None:
    with pytest.raises(gossipfast.ConfigError, match=says):
        parse_seed(seed)


def test_is_self() -> None:
    assert is_self("10.1.2.3:7000", "10.1.2.3:7000", "0.0.0.0", 7000)
    assert is_self("127.0.0.2:7000", "10.1.2.3:7000", "0.0.0.0", 7000)  # a local address
    assert not is_self("127.0.0.2:7001", "10.1.2.3:7000", "0.0.0.0", 7000)  # other port
    assert not is_self("127.0.0.2:7000", "127.0.0.1:7000", "127.0.0.1", 7000)  # not bound
    assert not is_self("[::1]:7000", "127.0.0.1:7000", "0.0.0.0", 7000)  # IPv4 listener
    assert not is_self("192.0.2.1:7000", "127.0.0.1:7000", "0.0.0.0", 7000)  # not local


def test_localhost_resolves_through_the_system_resolver(arun: Callable[..., Any]) -> None:
    found = arun(resolve(DnsSeed("localhost", 7000), 5.0))
    assert "127.0.0.1:7000" in found
    assert len(found) == len(set(found))
    found, problems = arun(resolve_all([DnsSeed("localhost", 7000)] * 2, 5.0))
    assert "127.0.0.1:7000" in found and not problems


def test_join_through_a_dns_name(arun: Callable[..., Any]) -> None:
    async def main() -> None:
        async with gossipfast.Node("127.0.0.1:0") as a:
            port = a.address.rsplit(":", 1)[1]
            async with gossipfast.Node("127.0.0.2:0") as b:
                await b.join(f"dns:localhost:{port}")
                assert b.active_view == (a.address,)
                assert b.seeds == (f"dns:localhost:{port}",)
                mid = await b.broadcast(b"via dns")
                msg = await asyncio.wait_for(a.messages().__anext__(), 10)
                assert isinstance(msg, gossipfast.Message) and msg.id == mid

    arun(main())


def test_seeds_that_are_all_this_node_raise_seed_error(arun: Callable[..., Any]) -> None:
    async def main() -> None:
        async with gossipfast.Node("0.0.0.0:0") as a:
            port = a.address.rsplit(":", 1)[1]
            with pytest.raises(gossipfast.SeedError, match="every seed is this node"):
                await a.join([f"127.0.0.1:{port}", f"127.0.0.2:{port}", a.address])
            with pytest.raises(gossipfast.ConfigError, match="a port is required"):
                await a.join("dns:localhost")

    arun(main())


def test_an_isolated_node_resolves_its_names_again(arun: Callable[..., Any]) -> None:
    async def main() -> list[list[str]]:
        joined: list[list[str]] = []
        done = asyncio.Event()
        isolated = True

        def join(addresses: list[str]) -> None:
            joined.append(addresses)
            if len(joined) == 2:
                done.set()

        r = DnsRefresher(lambda: isolated, join, lambda a: a == "127.0.0.1:7000", 0.01)
        r.add([DnsSeed("localhost", 7000), DnsSeed("localhost", 7001)])
        r.add([DnsSeed("localhost", 7000)])  # once
        task = asyncio.ensure_future(r.run())
        try:
            await asyncio.wait_for(done.wait(), 20)
        finally:
            task.cancel()
        assert r.names == [DnsSeed("localhost", 7000), DnsSeed("localhost", 7001)]
        assert r.failures == 0
        return joined

    joined = arun(main())
    for addresses in joined:
        assert "127.0.0.1:7001" in addresses
        assert "127.0.0.1:7000" not in addresses  # itself


def test_cli_rejects_a_join_without_a_port() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gossipfast", "run", "--listen", "127.0.0.1:0", "--join", "dns:x"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines == ["Error: --join: seed 'dns:x': expected dns:NAME:PORT (a port is required)"]
