"""Micro-benchmarks of ``_peers``: compiled vs pure in one process.

Run: ``pytest tests/benchmarks/test_bench_peers.py --benchmark-only``. Each round does
``N`` operations from a Python loop (as the engine's Python-level callers do), so
``extra_info['ns_per_op']`` includes that loop and the call into the method.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from support.buildkit import builds, pick

N = 20_000
VIEW = 30  # the default passive view size


BUILDS = builds("_peers")
PURE = BUILDS["pure"]

ADDRS = [f"10.0.{i // 250}.{i % 250}:7946" for i in range(VIEW * 2)]


def _build(name: str) -> ModuleType:
    return pick(BUILDS, name, "_peers")


def _full_set(mod: ModuleType) -> Any:
    s = mod.PeerSet(VIEW)
    for a in ADDRS[:VIEW]:
        s.add(a)
    return s


def _record(benchmark: Any) -> None:
    benchmark.extra_info["ns_per_op"] = round(benchmark.stats.stats.median / N * 1e9, 1)


def _add_discard(s: Any) -> int:
    # Swap one member out and another in, N times: discard + add per step.
    add, discard = s.add, s.discard
    done = 0
    for i in range(N):
        if discard(ADDRS[i % (2 * VIEW)]):
            done += 1
        if add(ADDRS[(i + VIEW) % (2 * VIEW)]):
            done += 1
    return done


def _random(s: Any, rng: random.Random) -> int:
    pick = s.random
    return sum(1 for _ in range(N) if pick(rng) is not None)


def _random_exclude(s: Any, rng: random.Random) -> int:
    pick = s.random
    exclude = {ADDRS[0]}
    return sum(1 for _ in range(N) if pick(rng, exclude) is not None)


def _sample(s: Any, rng: random.Random) -> int:
    sample = s.sample
    exclude = {ADDRS[0]}
    return sum(len(sample(rng, 4, exclude)) for _ in range(N))


CASES: dict[str, tuple[Callable[..., int], int]] = {
    "add-discard": (_add_discard, 2 * N),
    "random": (_random, N),
    "random-exclude": (_random_exclude, N),
    "sample4": (_sample, 4 * N),
}


@pytest.mark.parametrize("build", ["compiled", "pure"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_peerset(benchmark: Any, build: str, case: str) -> None:
    mod = _build(build)
    benchmark.group = f"peerset-{case}"
    fn, expect = CASES[case]

    def setup() -> tuple[tuple, dict]:
        s = _full_set(mod)
        return ((s,) if case == "add-discard" else (s, random.Random(1))), {}

    got = benchmark.pedantic(fn, setup=setup, rounds=15, iterations=1, warmup_rounds=1)
    assert got == expect
    _record(benchmark)


@pytest.mark.parametrize("build", ["compiled", "pure"])
def test_eager_lazy_moves(benchmark: Any, build: str) -> None:
    mod = _build(build)
    benchmark.group = "eagerlazy-moves"
    el = mod.EagerLazy()
    for a in ADDRS[:5]:
        el.add(a)

    def run() -> int:
        moved = 0
        to_lazy, to_eager = el.to_lazy, el.to_eager
        for i in range(N):
            a = ADDRS[i % 5]
            if to_lazy(a):
                moved += 1
            if to_eager(a):
                moved += 1
        return moved

    assert benchmark.pedantic(run, rounds=15, iterations=1, warmup_rounds=1) == 2 * N
    _record(benchmark)
