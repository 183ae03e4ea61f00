"""Timer wheel: ordering, cancel, far-future timers, next_deadline, a model test.

Every test runs against both builds in one process: the compiled extension (when it was
built and extensions are enabled) and the pure-Python source loaded from ``_timers.py``.
"""

from __future__ import annotations

import math
import random
import tracemalloc
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.buildkit import compiled, pure_twin

from gossipfast import _hot

_PURE = pure_twin("_timers")
_COMPILED = compiled("_timers")


@pytest.fixture(params=["compiled", "pure"])
def timers(request: pytest.FixtureRequest) -> ModuleType:
    """The module under test: each build in turn."""
    if request.param == "pure":
        return _PURE
    if _COMPILED is None:
        pytest.skip("compiled _timers not built or extensions disabled")
    return _COMPILED


def test_builds_are_what_they_claim() -> None:
    assert not _hot.is_compiled(_PURE)
    if _COMPILED is not None:
        assert type(_COMPILED.TimerWheel.schedule).__name__ != "function"


# --- basics ---------------------------------------------------------------------------


def test_expire_in_deadline_order(timers: ModuleType) -> None:
    rng = random.Random(5)
    w = timers.TimerWheel(resolution=0.01, slots=64)
    whens = [rng.uniform(0, 3) for _ in range(500)]
    for i, when in enumerate(whens):
        w.schedule(when, (when, i))
    assert len(w) == 500
    got = w.expire(1.5)
    assert got == sorted((x, i) for i, x in enumerate(whens) if x <= 1.5)
    assert len(w) == 500 - len(got)
    rest = w.expire(3.0)
    assert got + rest == sorted((x, i) for i, x in enumerate(whens))
    assert len(w) == 0
    assert w.next_deadline() is None


def test_equal_deadlines_in_schedule_order(timers: ModuleType) -> None:
    w = timers.TimerWheel()
    for i in range(10):
        w.schedule(0.5, i)
    w.schedule(0.4999, "first")
    assert w.expire(0.5) == ["first", *range(10)]


def test_deadline_is_inclusive(timers: ModuleType) -> None:
    w = timers.TimerWheel(resolution=0.1, slots=16)
    w.schedule(0.7, "a")  # 0.7 / 0.1 rounds to 7.000000000000001
    w.schedule(0.30000000000000004, "b")
    assert w.expire(0.3) == []
    assert w.expire(0.30000000000000004) == ["b"]
    assert w.expire(math.nextafter(0.7, 0)) == []
    assert w.expire(0.7) == ["a"]


def test_ids_positive_increasing_never_reused(timers: ModuleType) -> None:
    w = timers.TimerWheel()
    seen = []
    for i in range(50):
        tid = w.schedule(i * 0.01, i)
        seen.append(tid)
        if i % 3 == 0:
            assert w.cancel(tid)
        if i % 7 == 0:
            w.expire(i * 0.01)
    assert seen[0] >= 1
    assert seen == sorted(seen)
    assert len(set(seen)) == len(seen)


def test_cancel(timers: ModuleType) -> None:
    w = timers.TimerWheel(resolution=0.01, slots=8)
    a = w.schedule(0.05, "a")
    b = w.schedule(0.05, "b")
    c = w.schedule(0.06, "c")
    far = w.schedule(100.0, "far")  # in the overflow
    assert w.cancel(b) is True
    assert w.cancel(b) is False  # already cancelled
    assert w.cancel(far) is True
    assert w.cancel(far) is False
    assert len(w) == 2
    assert w.expire(200.0) == ["a", "c"]
    assert w.cancel(a) is False  # already expired
    assert w.cancel(c) is False
    for unknown in (0, -1, 12345, 1 << 70):
        assert w.cancel(unknown) is False
    assert len(w) == 0


def test_cancel_every_position_in_a_slot(timers: ModuleType) -> None:
    for victim in range(5):
        w = timers.TimerWheel(resolution=1.0, slots=4)
        ids = [w.schedule(2.0 + i * 0.1, i) for i in range(5)]
        assert w.cancel(ids[victim])
        assert w.expire(3.0) == [i for i in range(5) if i != victim]


def test_past_deadline_is_due_next_expire(timers: ModuleType) -> None:
    w = timers.TimerWheel(resolution=0.01, slots=16)
    assert w.expire(10.0) == []
    w.schedule(3.0, "late")
    w.schedule(10.005, "soon")
    assert w.next_deadline() == 3.0
    assert w.expire(10.0) == ["late"]
    assert w.expire(10.005) == ["soon"]


def test_far_future_and_many_revolutions(timers: ModuleType) -> None:
    w = timers.TimerWheel(resolution=0.01, slots=8)  # spans 0.08 s
    w.schedule(1000.0, "far")
    w.schedule(0.5, "mid")
    w.schedule(0.01, "near")
    assert w.next_deadline() == 0.01
    got = []
    now = 0.0
    while now < 999.0:
        now += 0.37
        got += w.expire(now)
    assert got == ["near", "mid"]
    assert w.next_deadline() == 1000.0
    assert w.expire(999.99) == []
    assert w.expire(1000.0) == ["far"]


def test_big_jump_returns_everything_in_order(timers: ModuleType) -> None:
    w = timers.TimerWheel(resolution=0.001, slots=16)
    whens = [0.0005, 0.003, 0.0159, 0.02, 5.0, 5.0, 7e6, 1e300, math.inf]
    for i, when in enumerate(reversed(whens)):
        w.schedule(when, (when, -i))
    assert w.next_deadline() == 0.0005
    got = w.expire(math.inf)
    assert [x for x, _ in got] == whens
    assert got[4:6] == [(5.0, -3), (5.0, -4)]  # scheduled in that order


def test_negative_times(timers: ModuleType) -> None:
    w = timers.TimerWheel(resolution=0.5, slots=4)
    w.schedule(-3.0, "a")
    w.schedule(-10.0, "b")
    w.schedule(1.0, "c")
    assert w.next_deadline() == -10.0
    assert w.expire(-5.0) == ["b"]
    assert w.expire(0.0) == ["a"]
    assert w.expire(1.0) == ["c"]


def test_now_going_backwards(timers: ModuleType) -> None:
    w = timers.TimerWheel(resolution=0.1, slots=8)
    w.schedule(5.0, "x")
    assert w.expire(4.0) == []
    w.schedule(1.0, "y")  # before the current tick: held in the current slot
    assert w.expire(0.5) == []
    assert w.next_deadline() == 1.0
    assert w.expire(1.0) == ["y"]
    assert w.expire(5.0) == ["x"]


def test_next_deadline_tracks_schedule_cancel_expire(timers: ModuleType) -> None:
    w = timers.TimerWheel(resolution=0.01, slots=32)
    assert w.next_deadline() is None
    a = w.schedule(0.2, "a")
    assert w.next_deadline() == 0.2
    b = w.schedule(0.1, "b")
    assert w.next_deadline() == 0.1
    w.schedule(50.0, "far")
    assert w.cancel(b)
    assert w.next_deadline() == 0.2
    assert w.cancel(a)
    assert w.next_deadline() == 50.0
    assert w.expire(49.0) == []
    assert w.next_deadline() == 50.0
    assert w.expire(50.0) == ["far"]
    assert w.next_deadline() is None


def test_arguments_are_checked(timers: ModuleType) -> None:
    for bad in ({"resolution": 0.0}, {"resolution": -1.0}, {"resolution": math.inf}):
        with pytest.raises(ValueError):
            timers.TimerWheel(**bad)
    with pytest.raises(ValueError):
        timers.TimerWheel(slots=0)
    w = timers.TimerWheel()
    with pytest.raises(ValueError):
        w.schedule(math.nan, "x")
    assert len(w) == 0
    assert w.resolution == 0.001


def test_items_are_released(timers: ModuleType) -> None:
    import weakref

    class Item:
        pass

    w = timers.TimerWheel(resolution=0.01, slots=8)
    items = [Item() for _ in range(3)]
    refs = [weakref.ref(i) for i in items]
    w.schedule(0.01, items[0])
    tid = w.schedule(0.02, items[1])
    far = w.schedule(99.0, items[2])
    w.cancel(tid)
    w.cancel(far)
    assert w.expire(0.05) == [items[0]]
    del items
    assert [r() for r in refs] == [None, None, None]


# --- memory bound ---------------------------------------------------------------------


@pytest.mark.parametrize("when", [0.5, 1e6], ids=["wheel", "overflow"])
def test_schedule_cancel_churn_is_bounded(timers: ModuleType, when: float) -> None:
    w = timers.TimerWheel(resolution=0.001, slots=256)
    w.schedule(0.1, "keep")

    def churn() -> None:
        for _ in range(20_000):
            w.cancel(w.schedule(when, None))

    churn()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        churn()
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, grown
    assert len(w) == 1
    assert w.expire(2e6) == ["keep"]


def test_cancel_heavy_wheel_stays_correct(timers: ModuleType) -> None:
    """Many cancels force clean-up passes; the survivors still fire, in order."""
    rng = random.Random(11)
    w = timers.TimerWheel(resolution=0.001, slots=130)
    live: dict[int, tuple[float, int]] = {}
    for i in range(5000):
        when = rng.uniform(0.0, 0.2)
        tid = w.schedule(when, (when, i))
        live[tid] = (when, i)
        if rng.random() < 0.9:
            victim = rng.choice(list(live))
            assert w.cancel(victim)
            del live[victim]
    assert len(w) == len(live)
    assert w.next_deadline() == min(v[0] for v in live.values())
    assert w.expire(1.0) == sorted(live.values())


# --- model test -----------------------------------------------------------------------


class SortedModel:
    """The obvious timer store: a dict scanned and sorted on every expire."""

    def __init__(self) -> None:
        self.pending: dict[int, tuple[float, Any]] = {}

    def schedule(self, tid: int, when: float, item: Any) -> None:
        self.pending[tid] = (when, item)

    def cancel(self, tid: int) -> bool:
        return self.pending.pop(tid, None) is not None

    def expire(self, now: float) -> list[Any]:
        due = sorted((w, tid) for tid, (w, _) in self.pending.items() if w <= now)
        return [self.pending.pop(tid)[1] for _, tid in due]

    def earliest(self) -> float | None:
        return min((w for w, _ in self.pending.values()), default=None)


_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("schedule"),
            st.one_of(
                st.floats(-0.5, 3.0, allow_nan=False),
                st.floats(3.0, 500.0, allow_nan=False),
                st.integers(-5, 40).map(lambda k: k * 0.25),  # tick boundaries
            ),
        ),
        st.tuples(st.just("cancel"), st.integers(0, 60)),
        st.tuples(
            st.just("expire"),
            st.one_of(
                st.floats(-0.2, 1.5, allow_nan=False),
                st.floats(0.0, 600.0, allow_nan=False),
                st.integers(0, 40).map(lambda k: k * 0.25),
            ),
        ),
        st.tuples(st.just("next"), st.just(0)),
    ),
    max_size=120,
)


@settings(max_examples=500, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=_ops,
    resolution=st.sampled_from([0.001, 0.05, 0.1, 0.25, 1.0, 7.0]),
    slots=st.one_of(st.integers(1, 20), st.sampled_from([63, 64, 65, 130, 4096])),
    monotonic=st.booleans(),
)
def test_model(
    timers: ModuleType,
    ops: list[tuple[str, Any]],
    resolution: float,
    slots: int,
    monotonic: bool,
) -> None:
    w = timers.TimerWheel(resolution=resolution, slots=slots)
    model = SortedModel()
    ids: list[int] = []
    now = -1.0
    for op, arg in ops:
        if op == "schedule":
            when = arg + max(now, 0.0) if monotonic else arg
            tid = w.schedule(when, ("item", len(ids)))
            assert not ids or tid > ids[-1]
            model.schedule(tid, when, ("item", len(ids)))
            ids.append(tid)
        elif op == "cancel":
            tid = ids[arg % len(ids)] if ids and arg < 50 else arg + 10_000
            assert w.cancel(tid) == model.cancel(tid)
        elif op == "expire":
            now = max(now, arg) if monotonic else arg
            assert w.expire(now) == model.expire(now)
        earliest = model.earliest()
        nd = w.next_deadline()
        if earliest is None:
            assert nd is None
        else:
            assert nd is not None
            assert earliest - resolution <= nd <= earliest  # never late, at most a slot early
        assert len(w) == len(model.pending)
    assert w.expire(math.inf) == model.expire(math.inf)
    assert len(w) == 0
