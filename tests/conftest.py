"""Shared fixtures: run real-network tests on both asyncio event loops.

Every test that takes ``loop_kind`` runs once on the standard asyncio loop and once on
uvloop (when installed). ``arun`` runs a coroutine to completion on a fresh loop of that
kind (``support.loops.run_on``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from support.loops import LOOP_KINDS, run_on

T = TypeVar("T")


@pytest.fixture(params=LOOP_KINDS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    """The event loop a network test runs on: "asyncio" or "uvloop"."""
    return str(request.param)


@pytest.fixture
def arun(loop_kind: str) -> Callable[[Awaitable[T]], T]:
    """Run a coroutine on the parametrized event loop."""

    def _run(coro: Any, timeout: float = 60.0) -> Any:
        return run_on(loop_kind, coro, timeout)

    return _run
