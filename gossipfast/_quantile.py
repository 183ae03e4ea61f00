"""The one percentile definition of the library (simulator figures, ``gossipfast cluster``)."""

from __future__ import annotations

import math
from collections.abc import Iterable

# q * n within this of an integer counts as that integer: 0.07 * 100 is 7.000000000000001
_EPS = 1e-9


def percentile(values: Iterable[float], q: float, *, empty: float = math.nan) -> float:
    """The ``q``-quantile (``0 <= q <= 1``) of ``values`` by the nearest-rank definition.

    With the ``n`` values sorted, it is the ``ceil(q * n)``-th smallest (the smallest
    for ``q = 0``): the least observed value that at least a share ``q`` of the values
    does not exceed, so ``percentile(v, 1.0) == max(v)`` and no value is interpolated.
    ``values`` need not be sorted. Returns ``empty`` (NaN by default) when there are none.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q!r}")
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return empty
    rank = math.ceil(q * n - _EPS)
    return ordered[min(n, max(1, rank)) - 1]


__all__ = ["percentile"]
