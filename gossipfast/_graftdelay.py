# cython: annotation_typing=False
"""Plumtree's adaptive first-stage graft delay (how long a missing message waits for its
push before the announcer is grafted).

The delay follows the tree's lag, AIMD-like: a push that arrives after we grafted the same
message shows the graft was early, so the delay doubles; a push lagging behind its first
announcement raises it to twice that lag; on-time pushes shrink it back by 2 %. It stays
within ``[graft_timeout_1, 8 x graft_timeout_1]`` and moves at most once per current delay
each way. docs/internals.md ("Plumtree choices beyond the paper") tells why.

Hot module (compiled by Cython with ``_graftdelay.pxd``; nothing here imports Cython).
"""

from __future__ import annotations

from collections import OrderedDict

#: The delay stays within [floor, this x floor].
_MAX_FACTOR = 8.0
#: Factor an on-time push shrinks the delay by (at most once per current delay).
_SHRINK = 0.98
#: A push lagging behind its first announcement raises the delay to this x the lag.
_LAG = 2.0
#: Early grafts remembered (to notice the push that arrives after one).
_RECENT_MAX = 4096


class GraftDelay:
    """The current first-stage graft delay and the early grafts that steer it.

    ``value`` is the delay in seconds; ``early`` counts early grafts (stats
    ``early_grafts``); ``recent`` maps an id we grafted or fetched lately to how (1 a
    Graft, 2 a Want).
    """

    def __init__(self, floor: float) -> None:
        """Start at ``floor`` (``graft_timeout_1``)."""
        self.floor = floor
        self.value = floor
        self.cap = floor * _MAX_FACTOR
        # no shrink before this time, no growth before that one: once per current delay
        self.shrink_at = 0.0
        self.grow_at = 0.0
        self.recent: OrderedDict[tuple[int, int], int] = OrderedDict()
        self.early = 0

    def grafted(self, key: tuple, how: int) -> None:
        """Remember that ``key`` was asked for (``how``: 1 a Graft, 2 a Want), bounded."""
        recent = self.recent
        if len(recent) >= _RECENT_MAX:
            recent.popitem(last=False)
        recent[key] = how

    def early_graft(self, key: tuple, now: float) -> int:
        """A push of ``key`` arrived although we asked for it: double the delay.

        No-op unless ``key`` is an early request still remembered (counted once).
        Returns how it was asked: 1 a Graft, 2 a Want (a fetch that kept the tree), 0 none.
        """
        how = self.recent.pop(key, 0)
        if how == 0:
            return 0
        self.early += 1
        self.grow(self.value * 2.0, now)
        return how

    def lagged(self, since: float, now: float) -> None:
        """A push came ``now``, its first announcement at ``since``: the delay becomes at
        least twice that lag (late pushes are not lost ones)."""
        lag = (now - since) * _LAG
        if lag > self.value:
            self.grow(lag, now)

    def on_time(self, now: float) -> None:
        """A push came before any announcement of it: shrink the delay a little."""
        if self.value > self.floor and now >= self.shrink_at:
            d = self.value * _SHRINK
            self.value = d if d > self.floor else self.floor
            self.shrink_at = now + self.value

    def grow(self, d: float, now: float) -> None:
        """Lengthen the delay to ``d`` (at most the cap), at most once per current delay:
        the late pushes of one backlog are one event."""
        if now < self.grow_at:
            return
        self.value = d if d < self.cap else self.cap
        self.grow_at = now + self.value
        self.shrink_at = now + self.value
