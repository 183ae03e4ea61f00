"""OpenConnections (gossipfast._conns) without sockets: fake connections, the real
Admission, and the transport's counters."""

from __future__ import annotations

import asyncio
from typing import Any

from gossipfast._admission import Admission
from gossipfast._conns import OpenConnections
from gossipfast.config import Config
from gossipfast.transport import COUNTER_NAMES

CFG = Config(
    cluster="c",
    max_connections=4,
    max_handshaking=3,
    max_connections_per_host=2,
    accept_rate=100.0,
)


class FakeConn:
    """What OpenConnections uses of a Connection; ``close`` may end it at once."""

    def __init__(
        self, owner: OpenConnections | None = None, *, outbound: bool = False, host: str = "h1"
    ) -> None:
        self.owner = owner
        self.outbound = outbound
        self.ready = False
        self.host: str | None = None
        self._remote = host
        self.closed: list[tuple[str, bool]] = []

    def remote_host(self) -> str:
        return self._remote

    def close(self, reason: str, abort: bool = False) -> None:
        self.closed.append((reason, abort))
        if abort and self.owner is not None:
            self.owner.remove(self)  # type: ignore[arg-type]


def make(loop: Any = None) -> tuple[OpenConnections, Admission, dict[str, int], list[str]]:
    counters = dict.fromkeys(COUNTER_NAMES, 0)
    logged: list[str] = []
    admission = Admission(CFG, 0.0, counters, lambda cause, *a, **k: logged.append(cause))
    return OpenConnections(loop, admission, counters), admission, counters, logged


def test_add_and_remove_keep_the_gauge_and_the_host_slots() -> None:
    conns, admission, c, _ = make()
    inbound, outbound = FakeConn(), FakeConn(outbound=True)
    assert conns.add(inbound, 0, 0.0)  # type: ignore[arg-type]
    assert conns.add(outbound, 0, 0.0)  # type: ignore[arg-type]
    assert inbound.host == "h1" and outbound.host is None
    assert len(conns) == 2 and set(conns) == {inbound, outbound}
    assert (c["connections"], c["connections_opened"], c["connections_accepted"]) == (2, 2, 1)
    assert admission.per_host == {"h1": 1}
    conns.remove(inbound)  # type: ignore[arg-type]
    conns.remove(inbound)  # type: ignore[arg-type]  # once only
    assert c["connections"] == 1 and inbound.host is None and admission.per_host == {}
    conns.remove(outbound)  # type: ignore[arg-type]
    assert c["connections"] == 0 and c["connections_opened"] == 2 and len(conns) == 0


def test_inbound_over_the_host_limit_is_refused_and_not_counted_open() -> None:
    conns, admission, c, logged = make()
    for _ in range(2):
        assert conns.add(FakeConn(), 0, 0.0)  # type: ignore[arg-type]
    refused = FakeConn()
    assert not conns.add(refused, 0, 0.0)  # type: ignore[arg-type]
    assert refused.host is None and len(conns) == 2 and c["connections"] == 2
    assert c["connections_refused"] == 1 and c["host_refusals"] == 1
    assert logged and logged[0].startswith("host-")
    assert conns.add(FakeConn(host="h2"), 0, 0.0)  # type: ignore[arg-type]
    assert admission.per_host == {"h1": 2, "h2": 1}


def test_tls_handshakes_count_against_the_limits() -> None:
    conns, _, c, logged = make()
    assert conns.add(FakeConn(host="h1"), 0, 0.0)  # type: ignore[arg-type]
    # 1 unready here + 2 TLS handshakes reach max_handshaking=3.
    assert not conns.admit("h2", 2, 0.0)
    assert c["connections_refused"] == 1 and logged == ["conn-limit"]
    assert conns.admit("h2", 1, 0.0)


def test_a_connection_admitted_at_accept_is_not_admitted_again() -> None:
    conns, admission, c, _ = make()
    assert conns.admit("h1", 0, 0.0)  # behind TLS: at accept
    tls = FakeConn()
    tls.host = "h1"
    assert conns.add(tls, 0, 0.0)  # type: ignore[arg-type]
    assert admission.per_host == {"h1": 1} and c["connections_accepted"] == 1


def test_removing_a_connection_never_added_frees_its_host_only() -> None:
    conns, admission, c, _ = make()
    assert conns.admit("h1", 0, 0.0)
    c_ = FakeConn()
    c_.host = "h1"  # admitted at accept, closed before it was added
    conns.remove(c_)  # type: ignore[arg-type]
    assert admission.per_host == {} and c["connections"] == 0


def test_abort_closes_every_connection_at_once() -> None:
    conns, _, c, _ = make()
    cs = [FakeConn(conns, host=f"h{i}") for i in range(3)]
    for x in cs:
        conns.add(x, 0, 0.0)  # type: ignore[arg-type]
    conns.abort()
    assert all(x.closed == [("shutdown", True)] for x in cs)
    assert len(conns) == 0 and c["connections"] == 0


def test_close_waits_until_the_last_one_is_gone() -> None:
    async def main() -> tuple[list[FakeConn], float]:
        loop = asyncio.get_running_loop()
        conns, _, _, _ = make(loop)
        cs = [FakeConn(conns, host=f"h{i}") for i in range(2)]
        for x in cs:
            conns.add(x, 0, 0.0)  # type: ignore[arg-type]
        for i, x in enumerate(cs):
            loop.call_later(0.01 * (i + 1), conns.remove, x)
        t0 = loop.time()
        await conns.close(5.0)
        return cs, loop.time() - t0

    cs, took = asyncio.run(main())
    assert took < 1.0
    assert all(x.closed == [("shutdown", False)] for x in cs)  # no abort needed


def test_close_aborts_those_left_after_the_grace() -> None:
    async def main() -> tuple[FakeConn, int]:
        conns, _, c, _ = make(asyncio.get_running_loop())
        stuck = FakeConn(conns)
        conns.add(stuck, 0, 0.0)  # type: ignore[arg-type]
        await conns.close(0.01)
        return stuck, c["connections"]

    stuck, left = asyncio.run(main())
    assert stuck.closed == [("shutdown", False), ("shutdown", True)] and left == 0


def test_close_with_none_open_does_not_wait() -> None:
    async def main() -> None:
        conns, _, _, _ = make(asyncio.get_running_loop())
        await asyncio.wait_for(conns.close(10.0), 0.5)

    asyncio.run(main())
