"""The adaptive first-stage graft delay (``gossipfast._graftdelay``), both builds."""

from __future__ import annotations

from types import ModuleType

import pytest
from support.buildkit import builds, pick

BUILDS = builds("_graftdelay")


@pytest.fixture(params=["compiled", "pure"])
def mod(request: pytest.FixtureRequest) -> ModuleType:
    return pick(BUILDS, request.param, "_graftdelay")


def test_starts_at_the_floor_with_a_cap_of_eight_times_it(mod: ModuleType) -> None:
    d = mod.GraftDelay(0.08)
    assert (d.floor, d.value, d.cap, d.early) == (0.08, 0.08, 0.64, 0)
    assert len(d.recent) == 0


def test_an_early_graft_doubles_the_delay_once_per_current_delay(mod: ModuleType) -> None:
    d = mod.GraftDelay(0.1)
    for s in range(1, 4):
        d.grafted((7, s), 1)
    assert d.early_graft((7, 1), 1.0) == 1
    assert d.early == 1 and d.value == pytest.approx(0.2)
    # a second early graft within the current delay: counted, the delay stays
    assert d.early_graft((7, 2), 1.1) == 1
    assert d.early == 2 and d.value == pytest.approx(0.2)
    # after it: doubles again
    assert d.early_graft((7, 3), 1.21) == 1
    assert d.early == 3 and d.value == pytest.approx(0.4)


def test_an_id_not_asked_for_is_no_early_graft_and_each_counts_once(mod: ModuleType) -> None:
    d = mod.GraftDelay(0.1)
    assert d.early_graft((1, 1), 0.0) == 0
    d.grafted((1, 1), 2)
    assert d.early_graft((1, 1), 0.0) == 2  # a Want: how it was asked comes back
    assert d.early_graft((1, 1), 5.0) == 0
    assert d.early == 1


def test_growth_stops_at_the_cap(mod: ModuleType) -> None:
    d = mod.GraftDelay(0.1)
    d.grow(5.0, 0.0)
    assert d.value == pytest.approx(0.8)
    assert d.grow_at == pytest.approx(0.8) and d.shrink_at == pytest.approx(0.8)


def test_a_lagging_push_raises_the_delay_to_twice_the_lag(mod: ModuleType) -> None:
    d = mod.GraftDelay(0.1)
    d.lagged(1.0, 1.03)  # twice 30 ms is under the delay: no change
    assert d.value == pytest.approx(0.1)
    d.lagged(1.0, 1.15)
    assert d.value == pytest.approx(0.3)


def test_on_time_pushes_shrink_by_two_percent_once_per_delay_down_to_the_floor(
    mod: ModuleType,
) -> None:
    d = mod.GraftDelay(0.1)
    d.grow(0.4, 0.0)
    d.on_time(0.2)  # within the delay after growing: no shrink yet
    assert d.value == pytest.approx(0.4)
    d.on_time(0.4)
    assert d.value == pytest.approx(0.4 * 0.98)
    d.on_time(0.41)  # once per current delay
    assert d.value == pytest.approx(0.4 * 0.98)
    now = 0.4
    for _ in range(200):
        now += 1.0
        d.on_time(now)
    assert d.value == pytest.approx(0.1)


def test_remembered_grafts_are_bounded_oldest_first(mod: ModuleType) -> None:
    d = mod.GraftDelay(0.1)
    for s in range(1, 5001):
        d.grafted((3, s), 1)
    assert len(d.recent) == 4096
    assert d.early_graft((3, 1), 0.0) == 0  # evicted
    assert d.early_graft((3, 5000), 0.0) == 1
