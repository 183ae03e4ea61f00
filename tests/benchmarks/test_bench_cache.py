"""Micro-benchmarks of ``_cache``: compiled vs pure vs a plain ``set`` of 16-byte ids.

Run: ``pytest tests/benchmarks/test_bench_cache.py --benchmark-only``. The compiled
module (``gossipfast._cache``) and the pure source (loaded beside it as
``gossipfast_pure_cache``) run in the same process on the same data. Each round checks
``N`` ids, so ``extra_info['ns_per_check']`` is the round's time divided by ``N``.

Ids are passed through a msgpack round trip first so the ints are fresh objects laid
out in arrival order, as they are when the engine gets them from the frame decoder.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import msgspec
import pytest
from support.buildkit import builds, pick

N = 100_000
WINDOW = 4096
MAX_ORIGINS = 65_536


BUILDS = builds("_cache")
PURE = BUILDS["pure"]


def _fresh(x: Any) -> Any:
    return msgspec.msgpack.decode(msgspec.msgpack.encode(x))


def _workload(kind: str) -> list[int]:
    """Flat ``[origin, seq, ...]`` of ``N`` distinct ids."""
    rng = random.Random(7)
    origins = [rng.getrandbits(64) for _ in range(10)]
    if kind == "inorder":
        pairs = [(origins[0], s) for s in range(1, N + 1)]
    else:
        # 10 origins interleaved; blocks of 64 seqs per origin shuffled together, so
        # every origin's seqs arrive out of order but within the window.
        pairs = []
        nxt = [1] * 10
        while len(pairs) < N:
            block = []
            for k in range(10):
                block += [(origins[k], s) for s in range(nxt[k], nxt[k] + 64)]
                nxt[k] += 64
            rng.shuffle(block)
            pairs += block
        pairs = pairs[:N]
    return _fresh([x for p in pairs for x in p])


WORKLOADS = {kind: _workload(kind) for kind in ("inorder", "reorder")}
BYTE_IDS = {
    kind: _fresh(
        [
            flat[i].to_bytes(8, "big") + flat[i + 1].to_bytes(8, "big")
            for i in range(0, len(flat), 2)
        ]
    )
    for kind, flat in WORKLOADS.items()
}
PAIRS = {
    kind: _fresh([[flat[i], flat[i + 1]] for i in range(0, N * 2, 2)])
    for kind, flat in WORKLOADS.items()
}


def _loop(cache: Any, pairs: list) -> int:
    f = cache.check_and_insert
    new = 0
    for o, s in pairs:
        if f(o, s):
            new += 1
    return new


def _set_baseline(ids: list[bytes]) -> int:
    seen: set[bytes] = set()
    new = 0
    for i in ids:
        if i not in seen:
            seen.add(i)
            new += 1
    return new


def _record(benchmark: Any) -> None:
    med = benchmark.stats.stats.median
    benchmark.extra_info["ns_per_check"] = round(med / N * 1e9, 1)
    benchmark.extra_info["M_checks_per_s"] = round(N / med / 1e6, 2)


def _build(name: str) -> ModuleType:
    return pick(BUILDS, name, "_cache")


@pytest.mark.parametrize("kind", ["inorder", "reorder"])
@pytest.mark.parametrize("build", ["compiled", "pure"])
@pytest.mark.parametrize("mode", ["loop", "batch"])
def test_dedup(benchmark: Any, build: str, kind: str, mode: str) -> None:
    mod = _build(build)
    benchmark.group = f"dedup-{kind}"
    flat, pairs = WORKLOADS[kind], PAIRS[kind]

    def setup() -> tuple[tuple, dict]:
        return (mod.DedupCache(WINDOW, MAX_ORIGINS),), {}

    if mode == "batch":
        run: Callable[[Any], int] = lambda c: c.check_and_insert_many(flat)  # noqa: E731
    else:
        run = lambda c: _loop(c, pairs)  # noqa: E731
    new = benchmark.pedantic(run, setup=setup, rounds=15, iterations=1, warmup_rounds=1)
    assert new == N
    _record(benchmark)


@pytest.mark.parametrize("kind", ["inorder", "reorder"])
def test_dedup_set_baseline(benchmark: Any, kind: str) -> None:
    benchmark.group = f"dedup-{kind}"
    ids = BYTE_IDS[kind]
    new = benchmark.pedantic(_set_baseline, args=(ids,), rounds=15, iterations=1, warmup_rounds=1)
    assert new == N
    _record(benchmark)


@pytest.mark.parametrize("build", ["compiled", "pure"])
def test_dedup_duplicates(benchmark: Any, build: str) -> None:
    """Every id already seen (the common case under gossip redundancy)."""
    mod = _build(build)
    benchmark.group = "dedup-duplicates"
    flat = WORKLOADS["reorder"]
    cache = mod.DedupCache(WINDOW, MAX_ORIGINS)
    cache.check_and_insert_many(flat)
    new = benchmark.pedantic(
        cache.check_and_insert_many, args=(flat,), rounds=15, iterations=1, warmup_rounds=1
    )
    assert new == 0
    _record(benchmark)


def _best_ns(fn: Callable[[], int], repeat: int = 7) -> float:
    # CPU time of this process, best of `repeat`: the machine is shared.
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best / N * 1e9


@pytest.mark.parametrize("kind", ["inorder", "reorder"])
def test_dedup_targets(benchmark: Any, kind: str) -> None:
    """Targets: compiled >= 5x pure and >= 5 M checks/s compiled.

    The batch call is held to both. The per-id Python loop is held to 5 M/s; its
    compiled/pure ratio is recorded, not asserted: the loop and the call into the
    method (~70 ns here) cost the same in both builds and cap that ratio near 5x.
    """
    compiled = _build("compiled")
    flat, pairs = WORKLOADS[kind], PAIRS[kind]
    figures = {}
    for name, mod in (("compiled", compiled), ("pure", PURE)):
        figures[f"{name}_batch_ns"] = _best_ns(
            lambda m=mod: m.DedupCache(WINDOW, MAX_ORIGINS).check_and_insert_many(flat)
        )
        figures[f"{name}_loop_ns"] = _best_ns(
            lambda m=mod: _loop(m.DedupCache(WINDOW, MAX_ORIGINS), pairs)
        )
    figures["batch_ratio"] = figures["pure_batch_ns"] / figures["compiled_batch_ns"]
    figures["loop_ratio"] = figures["pure_loop_ns"] / figures["compiled_loop_ns"]
    figures["pure_best_over_compiled_batch"] = (
        min(figures["pure_loop_ns"], figures["pure_batch_ns"]) / figures["compiled_batch_ns"]
    )
    benchmark.group = "dedup-targets"
    benchmark.extra_info.update({k: round(v, 1) for k, v in figures.items()})
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\ndedup targets [{kind}]:", {k: round(v, 1) for k, v in figures.items()})
    assert figures["batch_ratio"] >= 5.0, figures
    assert figures["pure_best_over_compiled_batch"] >= 5.0, figures
    assert figures["compiled_batch_ns"] <= 200.0, figures  # >= 5 M checks/s
    assert figures["compiled_loop_ns"] <= 200.0, figures


# -- PayloadStore -----------------------------------------------------------------------

PAYLOAD = b"x" * 200


@pytest.mark.parametrize("kind", ["inorder", "reorder"])
@pytest.mark.parametrize("build", ["compiled", "pure"])
def test_store_put_evict(benchmark: Any, build: str, kind: str) -> None:
    """``N`` puts into a store bounded at 10,000 messages: steady state evicts per put.

    ``inorder``: one origin's stream (what a relay stores); ``reorder``: ten origins,
    each one's seqs shuffled in blocks of 64.
    """
    mod = _build(build)
    benchmark.group = f"store-put-evict-{kind}"
    flat = WORKLOADS[kind]

    def setup() -> tuple[tuple, dict]:
        return (mod.PayloadStore(10_000, 1 << 30, 1e9),), {}

    def run(store: Any) -> int:
        put = store.put
        for i in range(0, 2 * N, 2):
            put(flat[i], flat[i + 1], 1, PAYLOAD, 0.0)
        return len(store)

    assert benchmark.pedantic(run, setup=setup, rounds=15, iterations=1, warmup_rounds=1) == 10_000
    _record(benchmark)


@pytest.mark.parametrize("build", ["compiled", "pure"])
def test_store_get(benchmark: Any, build: str) -> None:
    mod = _build(build)
    benchmark.group = "store-get"
    flat = WORKLOADS["reorder"]
    store = mod.PayloadStore(N, 1 << 30, 1e9)
    for i in range(0, 2 * N, 2):
        store.put(flat[i], flat[i + 1], 1, PAYLOAD, 0.0)

    def run() -> int:
        get = store.get
        hits = 0
        for i in range(0, 2 * N, 2):
            if get(flat[i], flat[i + 1]) is not None:
                hits += 1
        return hits

    assert benchmark.pedantic(run, rounds=15, iterations=1, warmup_rounds=1) == N
    _record(benchmark)
