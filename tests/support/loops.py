"""Fresh event loops of each kind: the standard asyncio loop and uvloop (when installed).

Modelled on uvloop's ``tests/test_tcp.py``; ``conftest.py`` parametrises the network
tests over :data:`LOOP_KINDS` and runs their coroutines with :func:`run_on`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is optional
    uvloop = None

T = TypeVar("T")

LOOP_KINDS = ["asyncio"] + (["uvloop"] if uvloop is not None else [])


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A fresh event loop of the given kind."""
    if kind == "uvloop":
        assert uvloop is not None
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run_on(kind: str, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """Run ``coro`` on a new loop of ``kind``, cancel leftovers, close the loop."""
    loop = new_loop(kind)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))
    finally:
        with contextlib.suppress(Exception):
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        loop.close()
