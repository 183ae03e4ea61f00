"""Timer wheel benchmarks: compiled vs pure (one process) vs a heapq timer queue.

In each group ``compiled`` is the Cython extension, ``pure`` the same ``_timers.py``
loaded as source, and ``baseline`` the usual Python timer queue: a heapq of
``(when, id, item)`` with lazy cancellation.

Run: ``python -m pytest tests/benchmarks/test_bench_timers.py --benchmark-only``
"""

from __future__ import annotations

import heapq
import random
from typing import Any

import pytest
from support.buildkit import compiled, pure_twin

_PURE = pure_twin("_timers")
_COMPILED = compiled("_timers")


class HeapTimers:
    """Baseline: heapq of (when, id, item); cancel marks the id dead."""

    def __init__(self, resolution: float = 0.001, slots: int = 4096) -> None:
        self._heap: list[tuple[float, int, Any]] = []
        self._live: set[int] = set()
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._live)

    def schedule(self, when: float, item: object) -> int:
        tid = self._next_id
        self._next_id = tid + 1
        heapq.heappush(self._heap, (when, tid, item))
        self._live.add(tid)
        return tid

    def cancel(self, timer_id: int) -> bool:
        if timer_id in self._live:
            self._live.discard(timer_id)
            return True
        return False

    def expire(self, now: float) -> list:
        out = []
        heap = self._heap
        live = self._live
        while heap and heap[0][0] <= now:
            _, tid, item = heapq.heappop(heap)
            if tid in live:
                live.discard(tid)
                out.append(item)
        return out

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and heap[0][1] not in self._live:
            heapq.heappop(heap)
        return heap[0][0] if heap else None


IMPLS = ["compiled", "pure", "baseline"]
N = 10_000


def _factory(name: str) -> Any:
    if name == "baseline":
        return HeapTimers
    if name == "pure":
        return _PURE.TimerWheel
    if _COMPILED is None:
        pytest.skip("compiled _timers not built or extensions disabled")
    return _COMPILED.TimerWheel


_rng = random.Random(42)
WHENS = [_rng.uniform(0.0, 2.0) for _ in range(N)]  # within the default 4.096 s span
ORDER = list(range(N))
_rng.shuffle(ORDER)


@pytest.mark.parametrize("impl", IMPLS)
def test_schedule(benchmark: Any, impl: str) -> None:
    """Schedule 10,000 timers at random times within 2 s."""
    cls = _factory(impl)
    benchmark.group = "timers: schedule 10k"

    def setup() -> tuple[tuple[Any], dict[str, Any]]:
        return (cls(),), {}

    def run(w: Any) -> Any:
        schedule = w.schedule
        for when in WHENS:
            schedule(when, None)
        return w

    w = benchmark.pedantic(run, setup=setup, rounds=60, warmup_rounds=2)
    assert len(w) == N


@pytest.mark.parametrize("impl", IMPLS)
def test_cancel(benchmark: Any, impl: str) -> None:
    """Cancel 10,000 pending timers in random order."""
    cls = _factory(impl)
    benchmark.group = "timers: cancel 10k"

    def setup() -> tuple[tuple[Any, list[int]], dict[str, Any]]:
        w = cls()
        ids = [w.schedule(when, None) for when in WHENS]
        return (w, [ids[i] for i in ORDER]), {}

    def run(w: Any, ids: list[int]) -> Any:
        cancel = w.cancel
        for tid in ids:
            cancel(tid)
        return w

    w = benchmark.pedantic(run, setup=setup, rounds=60, warmup_rounds=2)
    assert len(w) == 0


STEPS = 2000
_crng = random.Random(7)
# Per 1 ms step: 4 new timers 1-500 ms out (graft/IHAVE-like), one 5-60 s out (shuffle,
# repair: beyond the wheel's span), 2 earlier timers cancelled, then expire and a
# next_deadline() query (the simulator asks after every tick).
DELAYS = [[_crng.uniform(0.001, 0.5) for _ in range(4)] for _ in range(STEPS)]
FAR = [_crng.uniform(5.0, 60.0) for _ in range(STEPS)]
CANCELS = [[_crng.randrange(0, 5 * (s + 1)) for _ in range(2)] for s in range(STEPS)]


@pytest.mark.parametrize("impl", IMPLS)
def test_cycle(benchmark: Any, impl: str) -> None:
    """2,000 steps of schedule x5, cancel x2, expire, next_deadline."""
    cls = _factory(impl)
    benchmark.group = "timers: schedule+cancel+expire cycle, 2k steps"

    def setup() -> tuple[tuple[Any], dict[str, Any]]:
        return (cls(),), {}

    def run(w: Any) -> int:
        ids: list[int] = []
        fired = 0
        for step in range(STEPS):
            now = step * 0.001
            for d in DELAYS[step]:
                ids.append(w.schedule(now + d, step))
            ids.append(w.schedule(now + FAR[step], step))
            for k in CANCELS[step]:
                w.cancel(ids[k])
            fired += len(w.expire(now))
            w.next_deadline()
        return fired

    fired = benchmark.pedantic(run, setup=setup, rounds=20, warmup_rounds=1)
    assert fired > 0
