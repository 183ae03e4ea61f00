"""The Dialer (gossipfast._dialer) without sockets: a scripted ``create_connection`` on
the running loop, fake connections, and the callbacks its owner would get."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gossipfast._admission import Admission
from gossipfast._dialer import Dialer
from gossipfast._links import Link
from gossipfast.config import Config
from gossipfast.transport import COUNTER_NAMES

CFG = Config(cluster="c", connect_timeout=0.2, dial_rate=1.0)
PEER = "10.0.0.9:7000"


class FakeConn:
    """What a dial uses of its Connection."""

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.tr: object | None = None
        self.lost = False
        self.abandoned = False
        self.closed: list[tuple[str, bool]] = []

    def close(self, reason: str, abort: bool = False) -> None:
        self.closed.append((reason, abort))


class DialLoop:
    """The running loop with ``create_connection`` scripted by the test."""

    def __init__(self, connect: Callable[[Callable[[], FakeConn]], Awaitable[Any]]) -> None:
        self._loop = asyncio.get_running_loop()
        self.connect = connect
        self.calls: list[tuple[str, int, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)

    async def create_connection(
        self, factory: Callable[[], FakeConn], host: str, port: int, **kw: Any
    ) -> Any:
        self.calls.append((host, port, kw))
        return await self.connect(factory)


class Owner:
    """A dialer and what it told its owner."""

    def __init__(self, connect: Any, client_ssl: ssl.SSLContext | None = None) -> None:
        self.loop = DialLoop(connect)
        self.counters = dict.fromkeys(COUNTER_NAMES, 0)
        admission = Admission(CFG, self.loop.time(), self.counters, lambda *a, **k: None)
        self.made: list[FakeConn] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.lost: list[tuple[FakeConn, Exception | None]] = []
        self.tls: list[tuple[str, str, BaseException]] = []
        self.failed: list[tuple[Link, bool]] = []
        self.dialer = Dialer(
            self.loop,  # type: ignore[arg-type]
            CFG,
            client_ssl,
            admission,
            self.counters,
            connection=self._connection,  # type: ignore[arg-type]
            spawn=self._spawn,
            lost=lambda c, exc: self.lost.append((c, exc)),  # type: ignore[arg-type,misc]
            tls_failed=lambda *a: self.tls.append(a),
            failed=lambda link, up: self.failed.append((link, up)),
        )

    def _connection(self, peer: str) -> FakeConn:
        c = FakeConn(peer)
        self.made.append(c)
        return c

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task = self.loop.create_task(coro)
        self.tasks.append(task)
        return task

    async def dial(self, peer: str = PEER) -> Link:
        """Dial ``peer`` and wait for the dial to end."""
        link = Link(peer)
        self.dialer.dial(link)
        assert link.dialing
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.sleep(0)  # a refusal is reported on the next turn
        return link


async def up(factory: Callable[[], FakeConn]) -> FakeConn:
    c = factory()
    c.tr = object()  # connection_made ran
    return c


def test_a_dial_connects_and_is_counted() -> None:
    async def main() -> None:
        o = Owner(up)
        link = await o.dial()
        assert not link.dialing and o.failed == [] and o.lost == []
        assert [c.peer for c in o.made] == [PEER] and o.made[0].closed == []
        assert o.loop.calls == [
            (
                "10.0.0.9",
                7000,
                {"ssl": None, "server_hostname": None, "ssl_handshake_timeout": None},
            )
        ]
        assert o.counters["dials"] == 1 and o.counters["dial_failures"] == 0

    asyncio.run(main())


def test_over_dial_rate_fails_on_the_next_turn_without_a_task() -> None:
    async def main() -> None:
        o = Owner(up)
        await o.dial()  # takes the one token
        link = Link("10.0.0.10:7000")
        o.dialer.dial(link)
        assert link.dialing and o.failed == []  # not before the next turn
        await asyncio.sleep(0)
        assert o.failed == [(link, False)] and not link.dialing
        assert len(o.tasks) == 1 and len(o.made) == 1
        assert o.counters["dials"] == 1 and o.counters["dials_limited"] == 1

    asyncio.run(main())


@pytest.mark.parametrize(
    ("peer", "error"),
    [
        (PEER, ConnectionRefusedError(111, "refused")),
        (PEER, asyncio.TimeoutError()),
        ("not-an-address", None),  # ValueError before any socket
    ],
)
def test_a_failed_dial_is_reported_once(peer: str, error: BaseException | None) -> None:
    async def refuse(factory: Any) -> Any:
        assert error is not None
        raise error

    async def main() -> None:
        o = Owner(refuse)
        link = await o.dial(peer)
        assert o.failed == [(link, False)] and not link.dialing
        assert o.counters["dial_failures"] == 1 and o.tls == [] and o.made == []

    asyncio.run(main())


def test_a_stalled_connect_times_out() -> None:
    async def stall(factory: Any) -> Any:
        await asyncio.sleep(10)

    async def main() -> None:
        o = Owner(stall)
        t0 = o.loop.time()
        link = await o.dial()
        assert o.loop.time() - t0 == pytest.approx(CFG.connect_timeout, abs=0.1)
        assert o.failed == [(link, False)] and o.counters["dial_failures"] == 1

    asyncio.run(main())


@pytest.mark.parametrize("lost_already", [False, True])
def test_a_connection_up_when_the_dial_timed_out_is_ended_once(lost_already: bool) -> None:
    """connection_made ran, then the connect timeout cut create_connection: the dial
    ends that connection through ``lost`` unless connection_lost already ran."""

    async def cut(factory: Any) -> Any:
        c = await up(factory)
        c.lost = lost_already
        raise asyncio.TimeoutError

    async def main() -> None:
        o = Owner(cut)
        link = await o.dial()
        (c,) = o.made
        assert c.abandoned and o.failed == [(link, True)]
        if lost_already:
            assert c.closed == [] and o.lost == []
        else:
            assert c.closed == [("dial-failed", True)] and o.lost == [(c, None)]

    asyncio.run(main())


def test_a_cancelled_dial_ends_its_connection_and_reports_nothing() -> None:
    gate: asyncio.Future[None] | None = None

    async def hang(factory: Any) -> Any:
        await up(factory)
        assert gate is not None
        await gate

    async def main() -> None:
        nonlocal gate
        gate = asyncio.get_running_loop().create_future()
        o = Owner(hang)
        link = Link(PEER)
        o.dialer.dial(link)
        await asyncio.sleep(0.01)
        o.tasks[0].cancel()
        with pytest.raises(asyncio.CancelledError):
            await o.tasks[0]
        (c,) = o.made
        assert not link.dialing and c.abandoned and o.lost == [(c, None)]
        assert o.failed == [] and o.counters["dial_failures"] == 0

    asyncio.run(main())


@pytest.mark.parametrize(
    ("error", "tls_failure"),
    [
        (ssl.SSLError(1, "certificate verify failed"), True),
        (ConnectionResetError(104, "reset"), True),
        (ConnectionRefusedError(111, "refused"), False),  # TCP never came up
    ],
)
def test_tls_dials_pass_the_context_and_count_tls_failures(
    error: BaseException, tls_failure: bool
) -> None:
    async def refuse(factory: Any) -> Any:
        raise error

    async def main() -> None:
        ctx = ssl.create_default_context()
        o = Owner(refuse, client_ssl=ctx)
        link = await o.dial()
        assert o.loop.calls == [
            (
                "10.0.0.9",
                7000,
                {
                    "ssl": ctx,
                    "server_hostname": "10.0.0.9",
                    "ssl_handshake_timeout": CFG.connect_timeout,
                },
            )
        ]
        assert o.tls == ([("tls-out", PEER, error)] if tls_failure else [])
        assert o.failed == [(link, False)]

    asyncio.run(main())
