"""The one percentile of the library: nearest rank, on any order of values."""

from __future__ import annotations

import math
import random

import pytest

from gossipfast._quantile import percentile


def test_nearest_rank_is_an_observed_value_never_interpolated() -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0]  # the textbook example of nearest rank
    assert percentile(values, 0.05) == 15.0
    assert percentile(values, 0.30) == 20.0  # ceil(1.5) = 2nd
    assert percentile(values, 0.40) == 20.0  # exactly 2 of 5
    assert percentile(values, 0.50) == 35.0
    assert percentile(values, 1.00) == 50.0


def test_ends_are_min_and_max() -> None:
    values = [3.0, 1.0, 2.0]
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 1.0) == 3.0


def test_order_of_the_input_does_not_matter_and_it_is_not_changed() -> None:
    values = [float(v) for v in range(1, 101)]
    shuffled = values[:]
    random.Random(4).shuffle(shuffled)
    before = shuffled[:]
    assert percentile(shuffled, 0.99) == 99.0
    assert percentile(shuffled, 0.5) == 50.0
    assert shuffled == before
    assert percentile(iter(shuffled), 0.5) == 50.0  # any iterable


def test_float_error_in_q_does_not_move_the_rank() -> None:
    # 0.07 * 100 is 7.000000000000001 in floating point: still the 7th value
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.07) == 7.0
    assert percentile(values, 0.29) == 29.0


@pytest.mark.parametrize("n", [1, 2, 7, 10, 99, 100, 1000])
@pytest.mark.parametrize("q", [0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 1.0])
def test_at_least_a_share_q_is_not_above_it(n: int, q: float) -> None:
    values = [float(v) for v in range(n)]
    p = percentile(values, q)
    at_or_below = sum(1 for v in values if v <= p)
    below = sum(1 for v in values if v < p)
    assert at_or_below >= q * n - 1e-9  # enough values at or below it...
    assert below < max(1.0, q * n)  # ...and it is the least such value


def test_empty_input_gives_the_empty_value() -> None:
    assert math.isnan(percentile([], 0.5))
    assert percentile([], 0.5, empty=0.0) == 0.0


@pytest.mark.parametrize("q", [-0.01, 1.01, math.nan])
def test_q_outside_0_1_is_refused(q: float) -> None:
    with pytest.raises(ValueError, match="q must be in"):
        percentile([1.0], q)
