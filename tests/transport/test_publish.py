"""Transport.publish, the node's one way to publish, with a fake engine and no sockets."""

from __future__ import annotations

import asyncio
from typing import Any

from gossipfast.config import Config
from gossipfast.transport import PUBLISH_BATCH_MAX, Transport


class FakeEngine:
    address = "127.0.0.1:1"
    active_view: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.drains = 0

    def broadcast_many(self, batch: list[bytes], now: float) -> list[tuple[int, int]]:
        self.calls.append(batch)
        return [(1, i) for i in range(len(batch))]

    def drain(self) -> tuple[dict[str, list[Any]], list[str], list[Any], list[Any]]:
        self.drains += 1
        return {}, [], [], []

    def next_deadline(self) -> float | None:
        return None


def test_publish_defers_to_the_turn_and_flushes_big_batches_at_once() -> None:
    async def main() -> None:
        tr = Transport(Config(), deliver=lambda d: None, emit=lambda e: None)
        engine = FakeEngine()
        tr.engine = engine  # type: ignore[assignment]
        ids = await tr.publish(engine.broadcast_many, [b"a", b"b"], 2)
        assert ids == [(1, 0), (1, 1)]
        assert engine.drains == 0 and tr.deferred == 2  # waits for the turn's flush
        await asyncio.sleep(0)  # the turn ends
        assert engine.drains == 1 and tr.deferred == 0
        big = [b"x"] * (PUBLISH_BATCH_MAX + 1)
        await tr.publish(engine.broadcast_many, big, len(big))
        assert engine.drains == 2 and tr.deferred == 0  # drained and written at once
        for _ in range(PUBLISH_BATCH_MAX):
            await tr.publish(engine.broadcast_many, [b"y"], 1)
        assert engine.drains == 2  # one turn's batch so far
        await tr.publish(engine.broadcast_many, [b"y"], 1)
        assert engine.drains == 3  # ... and not more than PUBLISH_BATCH_MAX of them
        await tr.close()

    asyncio.run(main())
