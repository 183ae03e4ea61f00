"""Per-origin FIFO hold-back delivery (``gossipfast._fifo``), both builds."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from support.buildkit import builds, pick

from gossipfast._cache import DedupCache

BUILDS = builds("_fifo")


class Timers:
    """Records what is scheduled."""

    def __init__(self) -> None:
        self.armed: list[tuple[float, Any]] = []

    def schedule(self, when: float, item: Any) -> int:
        self.armed.append((when, item))
        return len(self.armed)


@pytest.fixture(params=["compiled", "pure"])
def mod(request: pytest.FixtureRequest) -> ModuleType:
    return pick(BUILDS, request.param, "_fifo")


def on_gap(item: tuple, now: float) -> None:
    """The gap timers' handler (the owner's; these tests only look at what is armed)."""


def fifo(mod: ModuleType, cap: int = 64) -> tuple[Any, Timers, DedupCache]:
    timers = Timers()
    dedup = DedupCache(1024, 1000)
    return mod.FifoDelivery(timers, dedup, cap, on_gap), timers, dedup


def seqs(out: list) -> list[int]:
    return [d[1] for d in out]


def test_in_order_messages_pass_at_once(mod: ModuleType) -> None:
    f, timers, _ = fifo(mod)
    out: list = []
    assert f.deliver(out, 5, 3, 1, b"c", 0.0) == 1  # the first one seen sets the start
    assert f.deliver(out, 5, 4, 2, b"d", 0.0) == 1
    assert out == [(5, 3, 1, b"c"), (5, 4, 2, b"d")]
    assert f.next_seq == {5: 5} and not f.held and not timers.armed


def test_a_gap_holds_back_until_it_fills_then_releases_in_order(mod: ModuleType) -> None:
    f, timers, _ = fifo(mod)
    out: list = []
    f.deliver(out, 5, 1, 1, b"a", 0.0)
    assert f.deliver(out, 5, 3, 1, b"c", 0.5) == 0
    assert f.deliver(out, 5, 4, 1, b"d", 0.6) == 0
    assert seqs(out) == [1] and timers.armed == [(1.5, (on_gap, 5))]  # one timer per gap
    assert f.deliver(out, 5, 2, 1, b"b", 0.7) == 3
    assert seqs(out) == [1, 2, 3, 4] and not f.held and f.next_seq[5] == 5


def test_an_older_message_is_delivered_late_not_lost(mod: ModuleType) -> None:
    f, _, _ = fifo(mod)
    out: list = []
    f.deliver(out, 5, 4, 1, b"d", 0.0)
    assert f.deliver(out, 5, 2, 1, b"b", 0.0) == 1
    assert seqs(out) == [4, 2] and f.next_seq[5] == 5


def test_the_gap_timer_skips_to_the_oldest_held_and_rearms_for_the_next_gap(
    mod: ModuleType,
) -> None:
    f, timers, _ = fifo(mod)
    out: list = []
    f.deliver(out, 5, 1, 1, b"a", 0.0)
    f.deliver(out, 5, 3, 1, b"c", 0.0)
    f.deliver(out, 5, 6, 1, b"f", 0.0)
    assert f.skip_gap(out, 5, 1.0) == 1
    assert seqs(out) == [1, 3] and f.skipped == 1
    assert timers.armed[-1] == (2.0, (on_gap, 5))  # 6 still waits for 4 and 5
    assert f.skip_gap(out, 5, 2.0) == 1
    assert seqs(out) == [1, 3, 6] and f.skipped == 2 and not f.held
    assert f.skip_gap(out, 5, 3.0) == 0  # nothing held: no-op
    assert f.skipped == 2


def test_too_many_held_skips_the_gap(mod: ModuleType) -> None:
    f, _, _ = fifo(mod)
    out: list = []
    f.deliver(out, 5, 1, 1, b"a", 0.0)
    for s in range(3, 3 + 4096):
        assert f.deliver(out, 5, s, 1, b"x", 0.0) == 0
    assert f.deliver(out, 5, 3 + 4096, 1, b"x", 0.0) == 4097
    assert f.skipped == 1 and not f.held and len(out) == 4098


def test_ids_lost_for_good_are_passed(mod: ModuleType) -> None:
    f, _, dedup = fifo(mod)
    out: list = []
    for s in (1, 2, 3):
        dedup.check_and_insert(5, s)
    f.deliver(out, 5, 1, 1, b"a", 0.0)
    dedup.check_and_insert(5, 4)
    f.deliver(out, 5, 4, 1, b"d", 0.0)  # 2 and 3 missing
    assert seqs(out) == [1]
    assert f.pass_lost(out, 5) == 1  # 2 and 3 are recorded (lost): 4 is next
    assert seqs(out) == [1, 4] and f.next_seq[5] == 5
    assert f.pass_lost(out, 9) == 0  # an origin never delivered


def test_the_next_seq_table_forgets_origins_the_dedup_forgot(mod: ModuleType) -> None:
    f, _, dedup = fifo(mod, cap=4)
    out: list = []
    for o in range(1, 5):
        f.deliver(out, o, 1, 1, b"x", 0.0)  # not in the dedup: forgettable
    dedup.check_and_insert(9, 1)
    f.deliver(out, 9, 1, 1, b"x", 0.0)
    assert set(f.next_seq) == {9}
    assert f.next_seq_max == 4
