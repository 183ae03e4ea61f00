"""The node's application queues (``gossipfast._inbox``), its event log
(``gossipfast._eventlog``) and its metadata check (``gossipfast._meta``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from gossipfast._eventlog import EventLog
from gossipfast._inbox import EVENT_QUEUE_SIZE, Inbox
from gossipfast._meta import checked_meta
from gossipfast.config import Config
from gossipfast.errors import ConfigError
from gossipfast.types import Lagged, Message, NeighborDown, NeighborUp


def msg(seq: int) -> Message:
    return Message((1, seq), "0" * 16, b"x", 1, None)


async def take(it: Any, n: int) -> list[Any]:
    return [await it.__anext__() for _ in range(n)]


def test_a_full_message_queue_drops_the_oldest_and_says_how_many_first() -> None:
    inbox = Inbox(Config(message_queue_size=3))
    for s in range(1, 6):
        inbox.put_message(msg(s))
    inbox.put_messages([msg(6), msg(7)])
    assert (inbox.messages_in.lagged, inbox.messages_in.lagged_total) == (4, 4)
    got = asyncio.run(take(inbox.messages(), 4))
    assert got == [Lagged(4), msg(5), msg(6), msg(7)]
    assert (inbox.messages_in.lagged, inbox.messages_in.lagged_total) == (0, 4)


def test_a_full_event_queue_drops_the_oldest_and_says_how_many_first() -> None:
    inbox = Inbox(Config())
    for p in range(EVENT_QUEUE_SIZE + 2):
        inbox.put_event(NeighborUp(f"10.0.0.1:{p}"))
    got = asyncio.run(take(inbox.events(), 2))
    assert got == [Lagged(2), NeighborUp("10.0.0.1:2")]
    assert inbox.events_in.lagged_total == 2


def test_readers_sleep_until_woken_and_end_once_closed_and_drained() -> None:
    async def main() -> list[Any]:
        inbox = Inbox(Config())
        got: list[Any] = []

        async def read() -> None:
            async for m in inbox.messages():
                got.append(m)

        reader = asyncio.ensure_future(read())
        await asyncio.sleep(0)
        assert len(inbox.waiters) == 1  # asleep on an empty queue
        inbox.put_message(msg(1))
        await asyncio.sleep(0)
        inbox.closed = True
        inbox.put_message(msg(2))  # still yielded: closing ends only an empty queue
        await asyncio.wait_for(reader, 1.0)
        return got

    assert asyncio.run(main()) == [msg(1), msg(2)]


def test_the_event_log_counts_downs_and_demotes_churn_to_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gossipfast")
    log = EventLog()
    for i in range(3):
        log.note("n1", NeighborDown(f"10.0.0.{i}:7000", "failed"), 5.0)
    log.note("n1", NeighborDown("10.0.0.9:7000", "left"), 5.0)
    assert log.down_reasons == {"failed": 3, "left": 1}
    assert [r.levelno for r in caplog.records] == [
        logging.WARNING,
        logging.DEBUG,
        logging.DEBUG,
        logging.INFO,
    ]
    assert log.window["down:failed"] == (5.0, 1, 2)


def test_meta_is_a_str_to_str_mapping_within_the_byte_limit() -> None:
    assert checked_meta({"zone": "a"}, 64) == {"zone": "a"}
    with pytest.raises(TypeError):
        checked_meta([("zone", "a")], 64)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        checked_meta({"zone": 1}, 64)  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="over member_meta_max=4"):
        checked_meta({"zone": "a"}, 4)
