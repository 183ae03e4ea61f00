"""Waiting on a condition with a deadline, from synchronous test code.

The asynchronous twin is :func:`support.nodekit.until` (it yields to the event loop).
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(pred: Callable[[], object], timeout: float, poll: float = 0.05) -> bool:
    """Poll ``pred`` every ``poll`` seconds until it is true or ``timeout`` seconds
    passed; its last value (so a caller asserts on it or reports what it saw)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() >= deadline:
            return bool(pred())
        time.sleep(poll)
    return True
