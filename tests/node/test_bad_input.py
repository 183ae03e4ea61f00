"""Wrong input to the public API says what was expected, and sends nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import gossipfast

pytestmark = [pytest.mark.network, pytest.mark.timeout(60)]


@pytest.mark.parametrize("payload", ["text", 5, None, [1, 2], {"k": 1}, 2.5])
def test_a_payload_that_is_not_bytes_like_is_a_type_error(
    arun: Callable[..., Any], payload: Any
) -> None:
    async def main() -> None:
        async with gossipfast.Node("127.0.0.1:0") as a:
            with pytest.raises(TypeError, match="a payload is bytes, bytearray or another"):
                await a.broadcast(payload)
            with pytest.raises(TypeError, match=f"not {type(payload).__name__}"):
                await a.broadcast_many([b"fine", payload])
            assert a.stats()["broadcasts"] == 0  # neither sent anything

    arun(main())


def test_text_gets_a_hint_and_bytes_likes_are_taken(arun: Callable[..., Any]) -> None:
    async def main() -> None:
        async with gossipfast.Node("127.0.0.1:0") as a:
            with pytest.raises(TypeError, match=r"encode text first, e\.g\. text\.encode\(\)"):
                await a.broadcast("hello")
            with pytest.raises(TypeError, match="an iterable of payloads; for one payload"):
                await a.broadcast_many(b"abc")
            with pytest.raises(TypeError, match="an iterable of payloads"):
                await a.broadcast_many("abc")
            await a.broadcast(bytearray(b"x"))
            await a.broadcast(memoryview(b"abcd")[1:3])
            await a.broadcast_many([b"1", bytearray(b"2"), memoryview(b"3")])
            assert a.stats()["broadcasts"] == 5

    arun(main())


def test_an_events_consumer_that_falls_behind_gets_lagged(arun: Callable[..., Any]) -> None:
    async def main() -> None:
        async with gossipfast.Node("127.0.0.1:0") as a:
            # more neighbour events than the queue holds, as a long churn would make
            a._on_events([gossipfast.NeighborUp(f"10.0.0.1:{p}") for p in range(10_005)])
            it = a.events()
            first = await it.__anext__()
            assert first == gossipfast.Lagged(5)
            assert await it.__anext__() == gossipfast.NeighborUp("10.0.0.1:5")  # oldest kept
            assert a.stats()["events_lagged"] == 5

    arun(main())
