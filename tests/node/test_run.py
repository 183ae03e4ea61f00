"""gossipfast.run: uvloop when installed, asyncio otherwise, no loop policy touched."""

from __future__ import annotations

import asyncio
import sys
import warnings

import pytest

import gossipfast

uvloop = pytest.importorskip("uvloop")


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_runs_on_uvloop_when_installed() -> None:
    assert gossipfast.run(_loop_module()).startswith("uvloop")


def test_asyncio_runs_on_asyncios_own_loop() -> None:
    assert gossipfast.run(_loop_module(), loop="asyncio").startswith("asyncio")


def test_the_loop_policy_is_left_alone() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # no policy call, deprecated in 3.14
        assert gossipfast.run(_loop_module()).startswith("uvloop")
    # asyncio.run afterwards still makes asyncio's own loop: no uvloop policy was installed
    assert asyncio.run(_loop_module()).startswith("asyncio")


def test_the_result_and_the_exception_come_back() -> None:
    async def boom() -> None:
        raise KeyError("x")

    async def seven() -> int:
        return 7

    assert gossipfast.run(seven()) == 7
    with pytest.raises(KeyError):
        gossipfast.run(boom())


def test_uvloop_required_but_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` fail
    assert gossipfast.run(_loop_module()).startswith("asyncio")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the coroutine is closed, not left unawaited
        with pytest.raises(gossipfast.ConfigError, match="uvloop is not installed"):
            gossipfast.run(_loop_module(), loop="uvloop")


def test_unknown_loop_is_a_config_error() -> None:
    with pytest.raises(gossipfast.ConfigError, match="loop must be one of"):
        gossipfast.run(_loop_module(), loop="trio")  # type: ignore[arg-type]


def test_inside_a_running_loop_it_refuses() -> None:
    async def nested() -> None:
        coro = _loop_module()
        try:
            gossipfast.run(coro)
        finally:
            coro.close()

    with pytest.raises(RuntimeError):
        asyncio.run(nested())


@pytest.mark.timeout(30)
def test_nodes_broadcast_under_run() -> None:
    async def main() -> tuple[bytes, str]:
        async with gossipfast.Node("127.0.0.1:0") as a, gossipfast.Node("127.0.0.1:0") as b:
            await b.join([a.address])
            await a.broadcast(b"hello")
            async for msg in b.messages():
                return msg.payload, await _loop_module()
        raise AssertionError("messages() ended")

    payload, module = gossipfast.run(main())
    assert payload == b"hello"
    assert module.startswith("uvloop")
