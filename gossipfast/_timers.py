"""A hashed timer wheel driven by the ``now`` its caller passes in (no clock reads).

Time is cut into ticks of ``resolution`` seconds; tick ``k`` lives in slot ``k % slots``.
The wheel holds the timers of the next ``slots`` ticks from the current one, so each
slot holds the live timers of exactly one tick; timers further out wait in an overflow
heap and move into the wheel as time advances (few timers are that far out: shuffle and
repair intervals).

Slots are created on first use (a dict of slot lists) and a bitmap marks the occupied
ones, so an idle wheel costs about a kilobyte (the simulator runs one per node) and
finding the next occupied slot scans 64 slots per machine word. Schedule and cancel are
O(1): cancel only marks the timer dead; dead timers are dropped when their slot is next
visited, or all at once when they outnumber the live ones by more than the slot count,
which keeps memory bounded.
Expiry costs O(due timers + occupied slots passed over) and returns items in deadline
order.

This module is compiled by Cython with ``_timers.pxd``; the same source runs as plain
Python when the extension is absent or disabled.
"""

from __future__ import annotations

import math
from array import array
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
# Dead timers tolerated (in the wheel, in the overflow) before a clean-up pass.
_DEAD_SLACK = 64
# Bitmap words: 64-bit unsigned (typed so in the compiled build).
_ONE = 1
_MASK64 = (1 << 64) - 1


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


def _lowest_bit(word: _int) -> _int:
    """Index of the lowest set bit of a non-zero 64-bit word."""
    low = word & (~word + 1)  # isolates the lowest set bit (two's complement)
    i = 0
    if not (low & 0xFFFFFFFF):
        i += 32
        low >>= 32
    if not (low & 0xFFFF):
        i += 16
        low >>= 16
    if not (low & 0xFF):
        i += 8
        low >>= 8
    if not (low & 0xF):
        i += 4
        low >>= 4
    if not (low & 0x3):
        i += 2
        low >>= 2
    if not (low & 0x1):
        i += 1
    return i


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
        "_bits",
        "_cur",
        "_dead_slack",
        "_in_wheel",
        "_inv",
        "_next_id",
        "_next_valid",
        "_next_when",
        "_nslots",
        "_nwords",
        "_overflow",
        "_overflow_dead",
        "_res",
        "_slots",
        "_timers",
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
        self._nwords = (slots + 63) >> 6
        self._slots: dict[int, list[_Timer]] = {}  # slot index -> its timers
        self._bits = array("Q", bytes(8 * self._nwords))  # bit i: slot i in _slots
        self._timers: dict[int, _Timer] = {}  # id -> pending timer
        self._overflow: list[_Timer] = []  # heap of timers beyond the wheel's span
        self._overflow_dead = 0  # cancelled timers still in _overflow
        self._in_wheel = 0  # pending timers in the slots
        self._wheel_dead = 0  # cancelled timers still in the slots
        self._dead_slack = max(slots, _DEAD_SLACK)
        # Every tick below _cur has been expired; the wheel spans [_cur, _cur + slots).
        self._cur = 0
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
        tid = self._next_id
        self._next_id = tid + 1
        key = tid  # one int object: dict key, stored id and return value
        t = _Timer.__new__(_Timer)
        t.when = when
        t.tid = key
        t.item = item
        self._timers[key] = t
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
        return key

    def cancel(self, timer_id: _int) -> bool:
        """Disarm a pending timer; False if it already fired, was cancelled or is unknown."""
        t = self._timers.pop(timer_id, None)
        if t is None:
            return False
        t.item = None
        if t.state == _IN_WHEEL:
            # Left in its slot, dead; dropped when the slot is next visited.
            self._in_wheel -= 1
            self._wheel_dead += 1
            # Bound: dead <= live + max(slots, slack); the clean-up is O(live + dead),
            # amortised O(1) per cancel.
            if self._wheel_dead > self._in_wheel + self._dead_slack:
                self._compact_wheel()
        else:
            # Left in the heap (removal would be O(n)); dropped when popped or rebuilt.
            self._overflow_dead += 1
            if self._overflow_dead > _DEAD_SLACK and (
                2 * self._overflow_dead > len(self._overflow)
            ):
                self._compact_overflow()
        t.state = _DEAD
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
            timers = self._timers
            stop = cur + n - 1  # the span's last tick: nothing lies beyond it
            if last < stop:
                stop = last
            t = cur
            while self._in_wheel:
                d = self._scan(t % n)
                if d < 0:
                    break
                t += d
                if t > stop:
                    break
                idx = t % n
                slot = self._slots[idx]
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
                    e.item = None
                    del timers[e.tid]
                    e.state = _DEAD
                    self._in_wheel -= 1
                if k == len(slot):
                    self._drop_slot(idx)
                elif k:
                    del slot[:k]
                t += 1
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
            # The first occupied slot from _cur holding a live timer holds the earliest:
            # each slot of the span [_cur, _cur + slots) has live timers of one tick only.
            n = self._nslots
            t = self._cur
            while True:
                t += self._scan(t % n)  # >= 0: some slot holds a live timer
                idx = t % n
                slot = self._slots[idx]
                found = False
                best = 0.0
                for e in slot:
                    if e.state != _DEAD and (not found or e.when < best):
                        best = e.when
                        found = True
                if found:
                    break
                self._wheel_dead -= len(slot)  # only dead timers: drop them now
                self._drop_slot(idx)
                t += 1
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
        idx = tick % self._nslots
        slot = self._slots.get(idx)
        if slot is None:
            self._slots[idx] = [t]
            self._bits[idx >> 6] |= _ONE << (idx & 63)
        else:
            slot.append(t)
        self._in_wheel += 1

    def _drop_slot(self, idx: _int) -> None:
        """Forget slot ``idx`` (now empty or holding only dead timers)."""
        del self._slots[idx]
        self._bits[idx >> 6] &= ~(_ONE << (idx & 63)) & _MASK64

    def _scan(self, start: _int) -> _int:
        """Distance (in slots, going round) from slot ``start`` to the next occupied one.

        -1 when no slot is occupied.
        """
        bits = self._bits
        nwords = self._nwords
        w = start >> 6
        word = bits[w] & ((_MASK64 << (start & 63)) & _MASK64)
        for _ in range(nwords + 1):
            if word:
                idx = (w << 6) + _lowest_bit(word)
                return idx - start if idx >= start else idx + self._nslots - start
            w += 1
            if w == nwords:
                w = 0
            word = bits[w]
        return -1

    def _purge(self, slot: list) -> None:
        """Remove the dead timers of ``slot`` in place."""
        j = 0
        for i in range(len(slot)):
            e = slot[i]
            if e.state != _DEAD:
                slot[j] = e
                j += 1
        self._wheel_dead -= len(slot) - j
        del slot[j:]

    def _compact_wheel(self) -> None:
        """Drop every dead timer from the slots."""
        for idx in list(self._slots):
            slot = self._slots[idx]
            self._purge(slot)
            if not slot:
                self._drop_slot(idx)

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
                e.item = None
                del timers[e.tid]
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


__all__ = ["TimerWheel"]
