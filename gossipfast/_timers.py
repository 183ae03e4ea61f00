"""A hashed timer wheel driven by the ``now`` its caller passes in (no clock reads).

Time is cut into ticks of ``resolution`` seconds; tick ``k`` lives in slot ``k % slots``.
The wheel holds the timers of the next ``slots`` ticks from the current one, so each
slot holds the timers of exactly one tick; timers further out wait in an overflow heap
and move into the wheel as time advances (few timers are that far out: shuffle and
repair intervals). Schedule and cancel are O(1): cancel only marks the timer dead (it
touches no slot, so it costs two memory accesses); dead timers are dropped when their
slot is next visited, or all at once when they outnumber the live ones, which keeps
memory bounded. Expiry costs O(due timers + slots passed over) and returns items in
deadline order.

This module is compiled by Cython with ``_timers.pxd``; the same source runs as plain
Python when the extension is absent or disabled.
"""

from __future__ import annotations

import math
from heapq import heapify, heappop, heappush

# Aliases keep Cython from reading ``int``/``float`` annotations as Python objects: the
# .pxd gives those arguments C types.
_int = int
_float = float

# Ticks are clamped to +-_TICK_MAX so that any finite deadline fits a C long long.
_TICK_MAX = 1 << 62
_TICK_MAX_F = 4.611686018427388e18  # float(_TICK_MAX)
# _Timer.state values.
_IN_WHEEL = 0
_OVERFLOW = 1
_DEAD = 2
# Cancelled timers left in the overflow heap before it is rebuilt without them.
_OVERFLOW_SLACK = 64


def _floor_tick(x: _float) -> _int:
    """``floor(x)`` clamped to +-_TICK_MAX (x = a deadline divided by the resolution)."""
    if x >= _TICK_MAX_F:
        return _TICK_MAX
    if x <= -_TICK_MAX_F:
        return -_TICK_MAX
    tick = int(x)
    if tick > x:  # int() truncates towards zero
        tick -= 1
    return tick


class _Timer:
    """One pending timer. Ordered by (deadline, id): earlier first, then older first."""

    __slots__ = ("item", "state", "tick", "tid", "when")

    when: float  # deadline, seconds
    tick: int  # slot tick (the deadline's, or the current one for a late timer)
    tid: int  # timer id (the int object that keys TimerWheel._timers)
    item: object  # what expire() hands back; None once fired or cancelled
    state: int  # _IN_WHEEL, _OVERFLOW or _DEAD (fired or cancelled)

    def __lt__(self, other: _Timer) -> bool:
        return self.when < other.when or (self.when == other.when and self.tid < other.tid)


class TimerWheel:
    """Timers keyed by deadline; :meth:`expire` hands back the items that are due.

    ``resolution`` is the width of a slot in seconds and ``slots`` the number of slots,
    so the wheel spans ``resolution * slots`` seconds; later timers work too (they wait
    in an overflow heap). Timer ids start at 1 and are never reused.
    """

    __slots__ = (
        "_cur",
        "_hint",
        "_in_wheel",
        "_inv",
        "_next_id",
        "_next_valid",
        "_next_when",
        "_nslots",
        "_overflow",
        "_overflow_dead",
        "_res",
        "_timers",
        "_wheel",
        "_wheel_dead",
    )

    def __init__(self, resolution: float = 0.001, slots: int = 4096) -> None:
        if not (resolution > 0 and math.isfinite(resolution)):
            raise ValueError(f"resolution must be a positive number of seconds: {resolution}")
        if slots < 1:
            raise ValueError(f"slots must be at least 1: {slots}")
        self._res = resolution
        self._inv = 1.0 / resolution
        self._nslots = slots
        self._wheel: list[list[_Timer]] = [[] for _ in range(slots)]
        self._timers: dict[int, _Timer] = {}  # id -> pending timer
        self._overflow: list[_Timer] = []  # heap of timers beyond the wheel's span
        self._overflow_dead = 0  # cancelled timers still in _overflow
        self._in_wheel = 0  # pending timers in the wheel's slots
        self._wheel_dead = 0  # cancelled timers still in the wheel's slots
        # Every tick below _cur has been expired; the wheel spans [_cur, _cur + slots).
        self._cur = 0
        # No timer in the wheel has a tick below _hint (a lower bound, >= _cur).
        self._hint = 0
        self._next_id = 1
        # Cached earliest deadline, valid while _next_valid (and some timer is pending).
        self._next_when = 0.0
        self._next_valid = False

    def __len__(self) -> int:
        """Pending timers."""
        return len(self._timers)

    @property
    def resolution(self) -> float:
        """Width of a slot in seconds."""
        return self._res

    def schedule(self, when: float, item: object) -> int:
        """Arm a timer for time ``when`` (seconds); returns its id (> 0).

        A deadline in the past is due at the next :meth:`expire`.
        """
        if when != when:
            raise ValueError("timer deadline is NaN")
        tick = _floor_tick(when * self._inv)
        # One int object serves as dict key, stored id and return value.
        tid = self._next_id
        self._next_id += 1
        t = _Timer.__new__(_Timer)
        t.when = when
        t.item = item
        t.tid = tid
        self._timers[tid] = t
        if tick < self._cur + self._nslots:
            self._insert(t, tick)
        else:
            t.tick = tick
            t.state = _OVERFLOW
            heappush(self._overflow, t)
        if len(self._timers) == 1:
            self._next_when = when
            self._next_valid = True
        elif self._next_valid and when < self._next_when:
            self._next_when = when
        return tid

    def cancel(self, timer_id: _int) -> bool:
        """Disarm a pending timer; False if it already fired, was cancelled or is unknown."""
        t = self._timers.pop(timer_id, None)
        if t is None:
            return False
        if t.state == _IN_WHEEL:
            # Left in its slot, dead; skipped and dropped when the slot is visited.
            self._in_wheel -= 1
            self._wheel_dead += 1
            if self._wheel_dead > self._nslots and self._wheel_dead > self._in_wheel:
                self._compact_wheel()
        else:
            # Left in the heap (removal would be O(n)); dropped when popped or rebuilt.
            self._overflow_dead += 1
            if self._overflow_dead > _OVERFLOW_SLACK and (
                2 * self._overflow_dead > len(self._overflow)
            ):
                self._compact_overflow()
        t.state = _DEAD
        t.item = None
        if self._next_valid and t.when <= self._next_when:
            self._next_valid = False
        return True

    def expire(self, now: float) -> list:
        """Remove and return the items of every timer whose time is <= ``now``.

        Items come earliest deadline first; equal deadlines in the order scheduled.
        """
        out: list = []
        now_tick = _floor_tick(now * self._inv)
        cur = self._cur
        last = now_tick if now_tick > cur else cur
        if self._in_wheel:
            n = self._nslots
            wheel = self._wheel
            timers = self._timers
            # Slots below _hint are empty; slots past the span hold nothing either.
            t = self._hint if self._hint > cur else cur
            stop = cur + n - 1
            if last < stop:
                stop = last
            while t <= stop and self._in_wheel:
                idx = t % n
                slot = wheel[idx]
                if slot:
                    # Sorted in place, the due timers are a prefix: no list is built.
                    if len(slot) > 1:
                        slot.sort()
                    if t < last:
                        # Every timer of a tick before now's is due (floor is monotonic).
                        k = len(slot)
                    else:
                        k = 0
                        while k < len(slot):
                            e = slot[k]
                            if e.when > now:
                                break
                            k += 1
                    for i in range(k):
                        e = slot[i]
                        if e.state == _DEAD:
                            self._wheel_dead -= 1
                            continue
                        out.append(e.item)
                        del timers[e.tid]
                        e.item = None
                        e.state = _DEAD
                        self._in_wheel -= 1
                    if k == len(slot):
                        slot.clear()
                    elif k:
                        del slot[:k]
                t += 1
            if self._hint < last:
                self._hint = last
        self._cur = last
        if self._overflow:
            self._drain_overflow(now, out)
        if out:
            self._next_valid = False
        return out

    def next_deadline(self) -> float | None:
        """The earliest pending deadline (exact), or None when no timer is pending."""
        if not self._timers:
            return None
        if self._next_valid:
            return self._next_when
        if self._in_wheel:
            # The first slot from _hint holding a live timer holds the earliest: each
            # slot of the span [_cur, _cur + slots) has live timers of one tick only.
            n = self._nslots
            wheel = self._wheel
            t = self._hint if self._hint > self._cur else self._cur
            while True:
                idx = t % n
                slot = wheel[idx]
                if slot:
                    found = False
                    best = 0.0
                    for e in slot:
                        if e.state != _DEAD and (not found or e.when < best):
                            best = e.when
                            found = True
                    if found:
                        break
                    wheel[idx] = []  # only dead timers: drop them now
                    self._wheel_dead -= len(slot)
                t += 1
            self._hint = t
        else:
            ov = self._overflow
            e = ov[0]
            while e.state == _DEAD:
                heappop(ov)
                self._overflow_dead -= 1
                e = ov[0]
            best = e.when
        self._next_when = best
        self._next_valid = True
        return best

    # --- internals ---------------------------------------------------------------------

    def _insert(self, t: _Timer, tick: _int) -> None:
        """Put ``t`` in the slot of ``tick`` (a tick already expired means the current)."""
        if tick < self._cur:
            tick = self._cur
        t.tick = tick
        t.state = _IN_WHEEL
        self._wheel[tick % self._nslots].append(t)
        if self._in_wheel == 0 or tick < self._hint:
            self._hint = tick
        self._in_wheel += 1

    def _live(self, slot: list) -> list:
        """The live timers of a slot taken out of the wheel; counts its dead ones gone."""
        live: list = []
        for e in slot:
            if e.state != _DEAD:
                live.append(e)
        self._wheel_dead -= len(slot) - len(live)
        return live

    def _drain_overflow(self, now: _float, out: list) -> None:
        """Move overflow timers now within the wheel's span into it; collect due ones.

        They all come after the wheel's: a timer went to the overflow only when its tick
        was past every tick the wheel could hold.
        """
        ov = self._overflow
        limit = self._cur + self._nslots
        timers = self._timers
        while ov:
            e = ov[0]
            if e.state == _DEAD:
                heappop(ov)
                self._overflow_dead -= 1
                continue
            if e.tick >= limit:
                break
            heappop(ov)
            if e.when <= now:
                out.append(e.item)
                del timers[e.tid]
                e.item = None
                e.state = _DEAD
            else:
                self._insert(e, e.tick)

    def _compact_overflow(self) -> None:
        """Rebuild the overflow heap without its cancelled timers."""
        live: list = []
        for e in self._overflow:
            if e.state != _DEAD:
                live.append(e)
        heapify(live)
        self._overflow = live
        self._overflow_dead = 0

    def _compact_wheel(self) -> None:
        """Drop every dead timer from the wheel's slots."""
        wheel = self._wheel
        for idx in range(self._nslots):
            slot = wheel[idx]
            if slot:
                wheel[idx] = self._live(slot)


__all__ = ["TimerWheel"]
