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


def pytest_addoption(parser: pytest.Parser) -> None:
    """``pytest --benchmark``: run the micro-benchmarks only (plain ``pytest`` skips them)."""
    parser.addoption(
        "--benchmark",
        action="store_true",
        default=False,
        help="Run only the micro-benchmarks (tests/benchmarks), timed by pytest-benchmark; "
        "the other tests are deselected. Same as --benchmark-only, without the skips.",
    )


def pytest_configure(config: pytest.Config) -> None:
    # before pytest-benchmark's own pytest_configure (trylast) reads its options
    if config.getoption("--benchmark"):
        config.option.benchmark_only = True
        config.option.benchmark_skip = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--benchmark"):
        return
    timed = [i for i in items if "benchmark" in getattr(i, "fixturenames", ())]
    if len(timed) < len(items):
        untimed = [i for i in items if "benchmark" not in getattr(i, "fixturenames", ())]
        config.hook.pytest_deselected(items=untimed)
        items[:] = timed
