"""Helpers shared by the tests that run real nodes in this process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import gossipfast

#: Short timers: joins, failures and repairs happen within a test's patience.
FAST = gossipfast.Config(
    connect_timeout=0.5,
    heartbeat_interval=0.1,
    heartbeat_timeout=1.0,
    join_timeout=2.0,
    neighbor_timeout=0.3,
    repair_interval=0.2,
    shuffle_interval=0.5,
)


async def until(
    pred: Callable[[], object], timeout: float = 10.0, what: str = "", poll: float = 0.01
) -> None:
    """Wait until ``pred()`` is true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout}s: {what}")
        await asyncio.sleep(poll)
