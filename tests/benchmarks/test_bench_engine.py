"""Micro-benchmarks of the engine's hot path: ``Engine.on_frame`` for Gossip batches.

Run both builds and compare (each process loads one build of every hot module):

    pytest tests/benchmarks/test_bench_engine.py --benchmark-only
    GOSSIPFAST_NO_EXTENSIONS=1 pytest tests/benchmarks/test_bench_engine.py --benchmark-only

One engine has 5 active peers; a frame of ``N`` new Gossip messages comes from one of
them, so each message is delivered, stored and pushed to the 4 other (eager) peers (or
to 2, with 2 lazy; and announced first by the lazy ones, as at full rate on a cluster).
``extra_info['ns_per_msg']`` is the round's time divided by ``N``; ``compiled`` says
which build ran.
"""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest

import gossipfast
from gossipfast.config import Config
from gossipfast.engine import Engine
from gossipfast.wire import FrameBody, Gossip, IHave, Neighbor, Prune

N = 1000
ORIGIN = 0x1234_5678_9ABC_DEF0
PEERS = [f"10.1.0.{i}:7000" for i in range(1, 6)]
ROUNDS = 200


def _engine() -> Engine:
    e = Engine("10.9.9.9:7000", Config(), node_id="bench", incarnation=1, rng=random.Random(1))
    for p in PEERS:
        e.on_frame(p, [Neighbor(True)], 0.0)
    e.drain()
    return e


def _frame(first: int, payload: bytes = b"x" * 100) -> list:
    # through a msgpack round trip, as the frame decoder hands them over
    msgs = [Gossip(ORIGIN, first + k, 3, payload) for k in range(N)]
    dec: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(FrameBody)
    return dec.decode(msgspec.msgpack.encode(msgs))  # type: ignore[no-any-return]


def _ihave(first: int) -> list:
    # a relay announces a stream's consecutive messages as one run
    runs = [ORIGIN, first, first + N - 1, 2]
    dec: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(FrameBody)
    return dec.decode(msgspec.msgpack.encode([IHave(runs)]))  # type: ignore[no-any-return]


def _run(benchmark: Any, setup: Any) -> None:
    def target(e: Engine, msgs: list, before: tuple = ()) -> None:
        for p, frame in before:
            e.on_frame(p, frame, 1.0)
        e.on_frame(PEERS[0], msgs, 1.0)
        if before:
            e.tick(1.05)  # past the hold of big announcements (half the 80 ms delay)
        e.drain()

    benchmark.pedantic(target, setup=setup, rounds=ROUNDS, iterations=1)
    benchmark.extra_info["compiled"] = gossipfast.COMPILED
    benchmark.extra_info["ns_per_msg"] = benchmark.stats.stats.mean / N * 1e9


@pytest.mark.benchmark(group="engine-gossip")
def test_new_gossip_batch_4_eager(benchmark: Any) -> None:
    """1000 new messages, each delivered and pushed to 4 eager peers."""
    state = {"seq": 1}

    def setup() -> tuple[tuple, dict]:
        e = _engine()
        msgs = _frame(state["seq"])
        state["seq"] += N
        return (e, msgs), {}

    _run(benchmark, setup)
    e = _engine()
    e.on_frame(PEERS[0], _frame(1), 1.0)
    out, _, deliveries, _ = e.drain()
    assert len(deliveries) == N
    assert all(len(out[p]) == N for p in PEERS[1:])


@pytest.mark.benchmark(group="engine-gossip")
def test_new_gossip_batch_2_eager_2_lazy(benchmark: Any) -> None:
    """1000 new messages, pushed to 2 eager peers and announced (IHave) to 2 lazy ones."""
    state = {"seq": 1}

    def setup() -> tuple[tuple, dict]:
        e = _engine()
        e.on_frame(PEERS[3], [Prune([])], 0.5)
        e.on_frame(PEERS[4], [Prune([])], 0.5)
        msgs = _frame(state["seq"])
        state["seq"] += N
        return (e, msgs), {}

    _run(benchmark, setup)


@pytest.mark.benchmark(group="engine-gossip")
def test_announced_then_pushed_batch(benchmark: Any) -> None:
    """1000 messages announced by 2 lazy peers, then pushed, then the announcements
    looked at: the full-rate relay's case."""
    state = {"seq": 1}

    def setup() -> tuple[tuple, dict]:
        e = _engine()
        e.on_frame(PEERS[3], [Prune([])], 0.5)
        e.on_frame(PEERS[4], [Prune([])], 0.5)
        first = state["seq"]
        state["seq"] += N
        before = ((PEERS[3], _ihave(first)), (PEERS[4], _ihave(first)))
        return (e, _frame(first), before), {}

    _run(benchmark, setup)
    e = _engine()
    e.on_frame(PEERS[3], [Prune([])], 0.5)
    e.on_frame(PEERS[3], _ihave(1), 1.0)
    e.on_frame(PEERS[0], _frame(1 + N // 2), 1.0)  # seqs N/2+1 .. 3N/2: 1 .. N/2 missing
    e.tick(1.05)
    assert e.stats()["missing"] == N // 2 and len(e.drain()[2]) == N


@pytest.mark.benchmark(group="engine-gossip")
def test_duplicate_gossip_batch(benchmark: Any) -> None:
    """1000 messages already seen (each costs a dedup check; one Prune per frame)."""

    def setup() -> tuple[tuple, dict]:
        e = _engine()
        msgs = _frame(1)
        e.on_frame(PEERS[1], msgs, 0.5)
        e.drain()
        return (e, msgs), {}

    _run(benchmark, setup)
