# cython: annotation_typing=False
"""Message-id dedup and the payload store kept for GRAFT and catch-up.

Hot module: this plain Python file is also compiled by Cython with the typed
declarations of ``_cache.pxd`` (python-zeroconf style); nothing here imports Cython.

:class:`DedupCache` keeps, per origin, the highest ``seq`` seen and, while a seq below
it is missing, a ring bitmap of the ``window`` seqs below it: bounded memory per
origin, O(1) per check. Seqs more than ``window`` below the highest count as seen (too
old to tell apart from a duplicate). At most ``max_origins`` origins are tracked. The
least recently seen one is forgotten for a new one only once it has been unseen for
``idle`` seconds (no copy of its messages can arrive any more); while none is, a new
origin is refused, so churn of other origins never makes a live origin's messages new
again. Under pressure (the table at least half full) each source (neighbour) may bring
in new origins only at a bounded rate (a token bucket), so one neighbour cannot fill
the table alone.

:class:`PayloadStore` keeps recent payloads by id, bounded by count, total bytes and
age, evicting the oldest insert first.

Ids come from the wire as ints (the msgspec decoder guarantees the type). An id whose
origin is outside ``0 .. 2**64-1`` or whose seq is outside ``1 .. 2**64-1`` never
raises: it is invalid, so never new (``contains`` says True), and it is never tracked.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["DedupCache", "PayloadStore", "SourceBudgets"]

#: Largest valid sequence number (seqs are unsigned 64-bit on the wire).
_MAX_SEQ = 0xFFFF_FFFF_FFFF_FFFF
#: Slots - 1 of DedupCache's direct-mapped origin cache (a power of two, minus one).
_HOT_MASK = 63
#: Sources with a budget of new origins kept at once (refilled ones are forgotten).
_MAX_SOURCES = 1024


class _Origin:
    """State of one origin: its highest seq, the ring bitmap below it, LRU links.

    Bit ``s & mask`` of ``bits`` tells whether seq ``s`` was seen, for the ``window``
    seqs ``high - window .. high - 1``. ``high`` itself is seen by definition and has
    no bit (its slot belongs to ``high - ring``), so the ring needs only ``window``
    bits, a power of two, instead of ``window + 1``.

    ``seen`` is when it was last the most recently seen origin (set when another one
    takes its place, so the hot path of one stream writes no time): an upper bound of
    when it was last seen, so it is never taken for idle too early.
    """

    __slots__ = ("bits", "high", "holes", "key", "next", "origin", "prev", "seen")

    def __init__(self) -> None:
        self.origin: object = None
        self.key = 0
        self.high = 0
        self.seen = 0.0
        self.holes = 0
        self.bits: bytearray | None = None
        self.prev: _Origin = self
        self.next: _Origin = self


def _new_origin(origin: object, key: int, high: int, bits: bytearray | None, now: float) -> _Origin:
    """A fresh, unlinked origin state (``bits`` is owned by it from now on)."""
    st = _Origin.__new__(_Origin)
    st.origin = origin
    st.key = key
    st.high = high
    st.seen = now
    st.holes = 0
    st.bits = bits
    st.prev = st
    st.next = st
    return st


def _zeros(p: bytearray, mask: int, lo: int, count: int) -> int:
    """How many of the ``count`` seqs from ``lo`` on have their ring bit clear."""
    z = 0
    while count > 0:
        pos = lo & mask
        if (pos & 7) == 0 and count >= 8:
            v = p[pos >> 3]
            while v:  # a whole byte at once: 8 minus its set bits
                v &= v - 1
                z -= 1
            z += 8
            lo += 8
            count -= 8
            continue
        if not (p[pos >> 3] >> (pos & 7)) & 1:
            z += 1
        lo += 1
        count -= 1
    return z


def _fill(p: bytearray, mask: int, lo: int, count: int, value: bool) -> None:
    """Set (``value``) or clear the ring bits of the ``count`` seqs from ``lo`` on."""
    while count > 0:
        pos = lo & mask
        if (pos & 7) == 0 and count >= 8:
            # A whole byte of the ring at once.
            p[pos >> 3] = 0xFF if value else 0
            lo += 8
            count -= 8
            continue
        b = 1 << (pos & 7)
        if value:
            p[pos >> 3] = p[pos >> 3] | b
        else:
            p[pos >> 3] = p[pos >> 3] & (0xFF ^ b)
        lo += 1
        count -= 1


class SourceBudgets:
    """Token buckets of new origins, one per source: ``burst`` tokens, ``rate`` per second.

    At most ``_MAX_SOURCES`` buckets are kept; a full bucket is the same as a new one, so
    those are forgotten first, and while every kept bucket is still refilling a new
    source gets no budget at all.
    """

    __slots__ = ("_buckets", "_burst", "_rate")

    def __init__(self, burst: int, rate: float) -> None:
        """Buckets of ``burst`` tokens refilled at ``rate`` tokens per second."""
        self._burst = burst
        self._rate = rate
        # source -> [tokens, time of the last refill]
        self._buckets: dict[object, list[float]] = {}

    def take(self, source: object, now: float) -> bool:
        """Take one token from ``source``'s bucket at ``now``; False: none left."""
        b = self._buckets.get(source)
        if b is None:
            if len(self._buckets) >= _MAX_SOURCES:
                self._prune(now)
            if len(self._buckets) >= _MAX_SOURCES:
                return False  # too many sources under pressure: no new budget
            b = [float(self._burst), now]
            self._buckets[source] = b
        tokens = b[0] + (now - b[1]) * self._rate
        if tokens > self._burst:
            tokens = self._burst
        b[1] = now
        if tokens < 1.0:
            b[0] = tokens
            return False
        b[0] = tokens - 1.0
        return True

    def _prune(self, now: float) -> None:
        """Forget the buckets that have refilled (the same as new ones)."""
        full = [
            k for k, b in self._buckets.items() if b[0] + (now - b[1]) * self._rate >= self._burst
        ]
        for k in full:
            del self._buckets[k]


class DedupCache:
    """Per-origin highest seq + sliding bitmap window; a bounded number of origins.

    ``check_and_insert`` answers "is this id new?" and records it. An origin is
    "seen" (moved to the most recent end of the LRU list) by ``check_and_insert`` and
    ``advance`` with a valid id, duplicates included; ``contains``, ``missing``,
    ``highest`` and ``digest`` only read.

    Forgetting: the least recently seen origin makes room for a new one only when it
    has been unseen for ``idle`` seconds (0: at once, a plain LRU). Otherwise the new
    origin is refused: ``check_and_insert`` says False (not new), ``dropped`` is set and
    ``refused`` counted. Under pressure (at least half of ``max_origins`` tracked) a
    ``source`` other than None may start new origins only from its token bucket
    (``admit_burst`` tokens, ``admit_rate`` per second); beyond it, ``throttled``.
    The owner sets ``now`` (seconds) and ``source`` (the neighbour whose input is
    handled; None for our own) before each input.

    Memory per origin: about 170 bytes of bookkeeping, plus, while a seq below its
    highest is missing, the ring: ``window`` rounded up to a power of two, in bits (8 KiB
    for a window of 65,536). An origin that misses nothing has no ring; ``compact``
    (housekeeping) drops the rings that no longer hold a missing seq.
    """

    __slots__ = (
        "_budgets",
        "_half",
        "_hot",
        "_idle",
        "_map",
        "_mask",
        "_max_origins",
        "_ones",
        "_ring_bytes",
        "_root",
        "_window",
        "dropped",
        "now",
        "refused",
        "rings",
        "source",
        "stale",
        "throttled",
    )

    def __init__(
        self,
        window: int,
        max_origins: int,
        idle: float = 0.0,
        admit_burst: int = 0,
        admit_rate: float = 0.0,
    ) -> None:
        """Track ``window`` seqs below each origin's highest, for ``max_origins`` origins.

        An origin unseen for ``idle`` seconds may be forgotten for a new one; with
        ``admit_burst`` > 0 each source's new origins are rate-limited under pressure.
        """
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if max_origins < 1:
            raise ValueError(f"max_origins must be >= 1, got {max_origins}")
        if not idle >= 0.0 or admit_burst < 0 or not admit_rate >= 0.0:
            raise ValueError("idle, admit_burst and admit_rate must be >= 0")
        ring = 8
        while ring < window:
            ring <<= 1
        self._window = window
        self._mask = ring - 1
        self._ring_bytes = ring >> 3
        self._ones = b"\xff" * self._ring_bytes
        self._max_origins = max_origins
        self._idle = idle
        # budgets apply from half full on (without them, eviction waits for a full table)
        self._half = max_origins // 2 if admit_burst > 0 else max_origins
        self._budgets = SourceBudgets(admit_burst, admit_rate) if admit_burst > 0 else None
        #: Time of the input being handled, in seconds (set by the owner).
        self.now = 0.0
        #: The neighbour whose input is handled; None for our own (never rate-limited).
        self.source: object = None
        #: Seqs refused because they were older than their origin's window: taken for
        #: duplicates, though they may never have been delivered (counted, not silent).
        self.stale = 0
        #: New origins refused: the table was full of origins seen within ``idle``.
        self.refused = 0
        #: New origins refused: their source's budget of new origins was spent.
        self.throttled = 0
        #: Origins that have a ring (the others had nothing missing below their high).
        self.rings = 0
        #: True after ``check_and_insert`` refused a new origin (not a duplicate); the
        #: caller clears it.
        self.dropped = False
        self._map: dict[object, _Origin] = {}
        # Sentinel of the circular LRU list: root.next is the most recently seen.
        self._root = _Origin()
        # Direct-mapped cache of origin states by the low bits of the origin (xxh64, so
        # well spread): interleaved origins skip the dict's hashing. Empty slot = root.
        self._hot: list[_Origin] = [self._root] * (_HOT_MASK + 1)

    # -- LRU list ---------------------------------------------------------------

    def _touch(self, st: _Origin) -> None:
        """Move ``st`` to the most recently seen end (the one it displaces is stamped)."""
        root = self._root
        first = root.next
        if first is st:
            return
        first.seen = self.now
        st.seen = self.now
        prev = st.prev
        nxt = st.next
        prev.next = nxt
        nxt.prev = prev
        st.prev = root
        st.next = first
        first.prev = st
        root.next = st

    def _find(self, origin: object, o: int) -> _Origin | None:
        """The state of ``origin`` (``o`` is its value), or None; checks the most recent first."""
        st = self._root.next
        if st is not self._root and st.key == o:
            return st
        st = self._hot[o & _HOT_MASK]
        if st is not self._root and st.key == o:
            return st
        return self._map.get(origin)

    def _evict_idle(self) -> bool:
        """Forget the least recently seen origin if it was unseen for ``idle`` seconds."""
        root = self._root
        old = root.prev
        if old is root:
            return False
        if old is root.next:
            if self._idle > 0.0:  # the only one: its stamp is that of its arrival
                return False
        elif self._idle > 0.0 and self.now - old.seen < self._idle:
            return False
        prev = old.prev
        prev.next = root
        root.prev = prev
        old.prev = old
        old.next = old
        del self._map[old.origin]
        if old.bits is not None:
            self.rings -= 1
        if self._hot[old.key & _HOT_MASK] is old:
            self._hot[old.key & _HOT_MASK] = root
        return True

    def _admit(self, budget: bool) -> bool:
        """Room for one more origin (forgetting idle ones); False: refused and counted."""
        n = len(self._map)
        if n < self._half:
            return True
        # forget up to two idle origins per new one: the table shrinks to the live ones
        if self._evict_idle():
            n -= 1
            if n >= self._half and self._evict_idle():
                n -= 1
        if n >= self._max_origins:
            self.refused += 1
            self.dropped = True
            return False
        if not budget or self.source is None or self._budgets is None or n < self._half:
            return True
        if self._budgets.take(self.source, self.now):
            return True
        self.throttled += 1
        self.dropped = True
        return False

    def _create(self, origin: object, o: int, high: int, fill: bool, budget: bool) -> bool:
        """Start tracking ``origin`` at ``high``; False if it was refused (see ``_admit``)."""
        if not self._admit(budget):
            return False
        root = self._root
        if fill or high == 1:
            # nothing below the high can be missing: no ring until a gap shows
            st = _new_origin(origin, o, high, None, self.now)
        else:
            st = _new_origin(origin, o, high, bytearray(self._ring_bytes), self.now)
            st.holes = high - 1 if high <= self._mask + 1 else self._mask + 1
            self.rings += 1
        first = root.next
        first.seen = self.now
        st.prev = root
        st.next = first
        first.prev = st
        root.next = st
        self._map[origin] = st
        self._hot[o & _HOT_MASK] = st
        return True

    # -- public API -------------------------------------------------------------

    def check_and_insert(self, origin: int, seq: int) -> bool:
        """True if ``(origin, seq)`` is new (it is now recorded); False if seen or invalid.

        False also when ``origin`` is new and was refused (``dropped`` is then set).
        """
        try:
            o = origin  # compiled: conversions to uint64 raise for < 0 or >= 2**64
            s = seq
        except (OverflowError, TypeError):
            return False
        if s <= 0 or s > _MAX_SEQ or o < 0 or o > _MAX_SEQ:
            return False
        root = self._root
        st = root.next
        if st is root or st.key != o:  # not the most recent origin: look it up
            st = self._hot[o & _HOT_MASK]
            if st is root or st.key != o:
                found = self._map.get(origin)
                if found is None:
                    return self._create(origin, o, s, False, True)
                self._hot[o & _HOT_MASK] = found
                st = found
            self._touch(st)
        h = st.high
        if s > h:
            d = s - h
            if st.bits is None:
                if d == 1:  # in order with nothing missing: no ring at all
                    st.high = s
                    return True
                self._grow(st)  # a gap: every seq up to the old high was seen
            p: bytearray = st.bits  # type: ignore[assignment]  # set just above
            mask = self._mask
            if d == 1:
                # In order: the old high gets its bit; its slot held a seq leaving the ring.
                pos = h & mask
                b = 1 << (pos & 7)
                if not p[pos >> 3] & b:
                    p[pos >> 3] = p[pos >> 3] | b
                    if h > mask + 1:  # the seq that left (h - ring) was valid and missing
                        st.holes -= 1
            elif d > mask:
                # Jumped past the whole ring: nothing below the new high was seen, except
                # the old high when it is still inside the ring.
                _fill(p, mask, s - (mask + 1), mask + 1, False)
                st.holes = mask + 1 if s > mask + 1 else s - 1
                if d == mask + 1:
                    _fill(p, mask, h, 1, True)
                    st.holes -= 1
            else:
                # the seqs h - ring .. s - ring - 1 leave the ring (their slots: h .. s - 1)
                lo = h - (mask + 1) if h > mask + 1 else 1
                if s > mask + 1 and s - (mask + 1) > lo:
                    st.holes -= _zeros(p, mask, lo, s - (mask + 1) - lo)
                _fill(p, mask, h, 1, True)
                _fill(p, mask, h + 1, d - 1, False)
                st.holes += d - 1
            st.high = s
            return True
        if s == h:
            return False
        if h - s > self._window:
            self.stale += 1
            return False
        if st.bits is None:
            return False
        p = st.bits
        pos = s & self._mask
        b = 1 << (pos & 7)
        if p[pos >> 3] & b:
            return False
        p[pos >> 3] = p[pos >> 3] | b
        st.holes -= 1  # at 0 the ring stays until compact(): no churn for a reordering stream
        return True

    def _grow(self, st: _Origin) -> None:
        """Give a ring-less origin its ring: every seq below its high seen."""
        st.bits = bytearray(self._ones)
        st.holes = 0
        self.rings += 1

    def compact(self) -> int:
        """Drop the rings of the origins that miss nothing (housekeeping); returns how many."""
        n = 0
        root = self._root
        st = root.next
        while st is not root:
            if st.bits is not None and st.holes == 0:
                self._shrink(st)
                n += 1
            st = st.next
        return n

    def _shrink(self, st: _Origin) -> None:
        """Drop the ring of an origin with nothing missing below its high."""
        st.bits = None
        st.holes = 0
        self.rings -= 1

    def check_and_insert_many(self, ids: list[int]) -> int:
        """``check_and_insert`` over a flat ``[origin, seq, origin, seq, ...]`` list.

        Returns how many ids were new. One call per batch keeps the per-id cost free
        of Python call overhead in the compiled build.
        """
        n = len(ids) - 1
        new = 0
        for i in range(0, n, 2):
            if self.check_and_insert(ids[i], ids[i + 1]):
                new += 1
        return new

    def contains(self, origin: int, seq: int) -> bool:
        """True if ``seq`` of ``origin`` was seen, is below the window, or is invalid."""
        try:
            o = origin
            s = seq
        except (OverflowError, TypeError):
            return True
        if s <= 0 or s > _MAX_SEQ or o < 0 or o > _MAX_SEQ:
            return True
        st = self._find(origin, o)
        if st is None:
            return False
        h = st.high
        if s >= h:
            return s == h
        if h - s > self._window or st.bits is None:
            return True
        p = st.bits
        pos = s & self._mask
        return (p[pos >> 3] >> (pos & 7)) & 1 == 1

    def first_missing(self, origin: int, first: int, last: int) -> int:
        """First seq in ``first .. last`` of ``origin`` not seen yet; 0 if there is none.

        As in ``contains``, seqs below the window and invalid ids count as seen. One call
        looks at a whole announced run of seqs (a byte of the ring at a time where it can).
        """
        try:
            o = origin
            s = first
            e = last
        except (OverflowError, TypeError):
            return 0
        if s <= 0 or s > e or e > _MAX_SEQ or o < 0 or o > _MAX_SEQ:
            return 0
        st = self._find(origin, o)
        if st is None:
            return s
        h = st.high
        if st.bits is None:  # everything up to the high was seen
            if e <= h:
                return 0
            return s if s > h else h + 1
        if h > self._window and s < h - self._window:
            s = h - self._window  # older seqs count as seen
            if s > e:
                return 0
        p = st.bits
        mask = self._mask
        while True:
            if s >= h:
                if s > h:
                    return s
                return s + 1 if s < e else 0  # h itself is seen, all above it are not
            pos = s & mask
            if (pos & 7) == 0 and h - s > 7 and p[pos >> 3] == 0xFF:
                # a whole byte of seen seqs, all below the high
                if e - s < 8:
                    return 0
                s += 8
                continue
            if not (p[pos >> 3] >> (pos & 7)) & 1:
                return s
            if s == e:
                return 0
            s += 1

    def highest(self, origin: int) -> int:
        """Highest seq seen from ``origin``; 0 if it is not tracked."""
        try:
            o = origin
        except (OverflowError, TypeError):
            return 0
        if o < 0 or o > _MAX_SEQ:
            return 0
        st = self._find(origin, o)
        if st is None:
            return 0
        return st.high

    def advance(self, origin: int, high: int) -> None:
        """Treat every seq ``<= high`` of ``origin`` as seen (e.g. a neighbour's digest)."""
        try:
            o = origin
            hi = high
        except (OverflowError, TypeError):
            return
        if hi <= 0 or hi > _MAX_SEQ or o < 0 or o > _MAX_SEQ:
            return
        st = self._find(origin, o)
        if st is None:
            # a digest's baseline: bounded by the table, not by the source's budget
            self._create(origin, o, hi, True, False)
            self.dropped = False
            return
        self._touch(st)
        h = st.high
        if hi > h:
            # Every seq up to the new high is now seen: no ring needed.
            if st.bits is not None:
                self._shrink(st)
            st.high = hi
            return
        if st.bits is None:
            return
        # every seq of the ring up to hi (those below the window too: they count as
        # seen anyway, and a ring with no holes left is dropped)
        mask = self._mask
        lo = h - (mask + 1) if h > mask + 1 else 1
        top = hi if hi < h else h - 1
        if top >= lo:
            st.holes -= _zeros(st.bits, mask, lo, top - lo + 1)
            _fill(st.bits, mask, lo, top - lo + 1, True)
            if st.holes == 0:
                self._shrink(st)

    def missing(self, origin: int, high: int, limit: int) -> list[int]:
        """Seqs in ``1 .. high`` of ``origin`` not seen yet, ascending, at most ``limit``.

        Seqs below our window count as seen, so they are never listed. For an origin we
        do not track, that is ``1 .. min(high, limit)``: call ``advance`` first to start
        from a later baseline.
        """
        out: list[int] = []
        try:
            o = origin
            hi = high
        except (OverflowError, TypeError):
            return out
        if hi <= 0 or hi > _MAX_SEQ or o < 0 or o > _MAX_SEQ or limit <= 0:
            return out
        st = self._find(origin, o)
        if st is None:
            n = hi if hi < limit else limit
            x = 1
            while x <= n:
                out.append(x)
                x += 1
            return out
        got = 0
        h = st.high
        mask = self._mask
        lo = h - self._window if h > self._window else 1
        top = hi if hi < h else h - 1
        if top >= lo and st.bits is not None and st.holes > 0:
            # (``holes`` counts the unseen seqs of the whole ring: once that many are
            # found, the rest of the scan finds none)
            p = st.bits
            count = top - lo + 1
            x = lo
            while count > 0 and got < st.holes:
                pos = x & mask
                if (pos & 7) == 0 and count >= 8 and p[pos >> 3] == 0xFF:
                    x += 8  # a byte of seen seqs: skip it whole
                    count -= 8
                    continue
                if not (p[pos >> 3] >> (pos & 7)) & 1:
                    out.append(x)
                    got += 1
                    if got >= limit:
                        return out
                x += 1
                count -= 1
        if hi > h:
            n = hi - h
            if n > limit - got:
                n = limit - got
            x = h + 1
            while n > 0:
                out.append(x)
                x += 1
                n -= 1
        return out

    def digest(self, since: float = float("-inf")) -> list[int]:
        """Flat ``[origin, highest, ...]`` over tracked origins, most recently seen first.

        With ``since``, only the origins that may have been seen at or after it (their
        stamps are upper bounds; the most recent origin is always listed).
        """
        out: list[int] = []
        root = self._root
        st = root.next
        while st is not root:
            if st.seen < since and st is not root.next:
                break  # stamps only decrease along the list
            out.append(st.origin)  # type: ignore[arg-type]
            out.append(st.high)
            st = st.next
        return out

    @property
    def idle(self) -> float:
        """Seconds an origin must be unseen before it may be forgotten."""
        return self._idle

    def __len__(self) -> int:
        """Number of origins tracked."""
        return len(self._map)

    def __contains__(self, origin: object) -> bool:
        """True if ``origin`` is tracked."""
        return origin in self._map


class _Stored:
    """One stored payload with its id, hop count, size and insert time."""

    __slots__ = ("hops", "origin", "payload", "seq", "size", "time")

    def __init__(self) -> None:
        self.origin = 0
        self.seq = 0
        self.hops = 0
        self.payload = b""
        self.size = 0
        self.time = 0.0


#: Dropped slots at the head of the FIFO list before it is compacted.
_COMPACT_MIN = 1024


def _gc_untrack_fn() -> Callable[[object], None] | None:
    """CPython's ``PyObject_GC_UnTrack`` through ctypes, or None where there is none."""
    try:
        import ctypes

        return ctypes.PYFUNCTYPE(None, ctypes.py_object)(("PyObject_GC_UnTrack", ctypes.pythonapi))
    except (ImportError, AttributeError, OSError):  # no ctypes, or not CPython
        return None


_gc_untrack = _gc_untrack_fn()


def _entry_list() -> list[_Stored | None]:
    """A new list for entries, left out of the cyclic GC.

    The store's lists hold up to ``max_messages`` entries each, and every full
    collection walked all of them: with 300,000 stored payloads a full ``gc.collect()``
    took 6 ms instead of 2. Entries refer only to bytes and numbers, never to a list,
    so no reference cycle can pass through these lists and the GC need not see them.
    CPython never re-tracks a list by itself.
    """
    lst: list[_Stored | None] = []
    if _gc_untrack is not None:
        _gc_untrack(lst)
    return lst


#: An origin's payloads sit in a list indexed by seq while they come in order, or past
#: gaps of at most this many seqs (messages not stored); the others go to a dict.
_GAP_MAX = 8


class _Seqs:
    """The stored payloads of one origin.

    ``slots[i]`` is the entry of seq ``base + i`` (None: not stored) for ``i >= head``;
    seqs that do not fit there (below ``head``, past a longer gap, negative) are in
    ``extra``. A relay stores each origin's messages mostly in order, so a put is a list
    append and a drop (oldest first) a slot cleared at the head: no int to hash and no
    dict entry per payload (those were most of a put's cost). After a longer jump the
    later seqs go to ``extra`` (as fast as the old dict per origin) until the list's
    entries are evicted; padding is bounded by ``_GAP_MAX`` slots per entry.
    """

    __slots__ = ("base", "count", "extra", "head", "slots")

    def __init__(self) -> None:
        self.slots: list[_Stored | None] = _entry_list()
        self.base = 0
        self.head = 0
        self.extra: dict[int, _Stored] | None = None
        self.count = 0

    def find(self, seq: int) -> _Stored | None:
        """The entry of ``seq``, or None."""
        if seq >= self.base:
            i = seq - self.base
            if self.head <= i < len(self.slots):
                e = self.slots[i]
                if e is not None:
                    return e
        if self.extra:
            return self.extra.get(seq)
        return None

    def add(self, seq: int, e: _Stored) -> None:
        """Hold ``e`` as the entry of ``seq`` (not held yet)."""
        slots = self.slots
        n = len(slots)
        self.count += 1
        if seq >= 0:
            if n == self.head:
                if n:
                    del slots[:]
                self.base = seq
                self.head = 0
                slots.append(e)
                return
            if seq >= self.base:
                i = seq - self.base
                if i >= n:
                    if i - n <= _GAP_MAX:
                        while n < i:
                            slots.append(None)
                            n += 1
                        slots.append(e)
                        return
                elif i >= self.head and slots[i] is None:
                    slots[i] = e
                    return
        if self.extra is None:
            self.extra = {}
        self.extra[seq] = e

    def remove(self, seq: int, e: _Stored) -> None:
        """Drop ``e``, the entry of ``seq``."""
        self.count -= 1
        slots = self.slots
        n = len(slots)
        if seq >= self.base:
            i = seq - self.base
            if self.head <= i < n and slots[i] is e:
                slots[i] = None
                if i == self.head:
                    h = i + 1
                    while h < n and slots[h] is None:
                        h += 1
                    if h == n:
                        del slots[:]
                        h = 0
                    elif h >= _COMPACT_MIN and h * 2 >= n:
                        del slots[:h]
                        self.base += h
                        h = 0
                    self.head = h
                return
        del self.extra[seq]  # type: ignore[union-attr]  # held, so in extra


class PayloadStore:
    """Recent payloads by id, bounded by count, total bytes and age (oldest out first).

    ``put`` also drops what has aged out at its ``now``. Payloads are ``bytes``: the
    compiled build keeps entries out of the cyclic GC, which is safe only for objects
    that cannot refer back to the store.

    Entries live in one :class:`_Seqs` per origin (found through ``origin -> _Seqs``,
    the last one used cached) and in a FIFO list read from a moving head, compacted once
    the dropped head is at least half of it, so eviction is amortised O(1).
    """

    __slots__ = (
        "_by_origin",
        "_count",
        "_fifo",
        "_head",
        "_last",
        "_last_o",
        "_max_age",
        "_max_bytes",
        "_max_messages",
        "nbytes",
    )

    def __init__(self, max_messages: int, max_bytes: int, max_age: float) -> None:
        """Keep at most ``max_messages`` payloads, ``max_bytes`` bytes, ``max_age`` seconds."""
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._max_age = max_age
        self._by_origin: dict[object, _Seqs] = {}
        # the origin of the last put or drop and its entries (one stream: no dict lookup)
        self._last: _Seqs | None = None
        self._last_o = 0
        # Insert order == time order (``now`` never goes back), so the oldest is first.
        self._fifo: list[_Stored | None] = _entry_list()
        self._head = 0
        self._count = 0
        #: Total payload bytes held.
        self.nbytes = 0

    def _seqs(self, origin: object, o: int) -> _Seqs | None:
        """The entries of origin ``o`` (``origin`` as an object), cached as the last."""
        q = self._last
        if q is not None and self._last_o == o:
            return q
        q = self._by_origin.get(origin)
        if q is not None:
            self._last = q
            self._last_o = o
        return q

    def _drop_oldest(self) -> None:
        fifo = self._fifo
        e: _Stored = fifo[self._head]  # type: ignore[assignment]  # slots >= head are set
        fifo[self._head] = None
        self._head += 1
        if self._head >= _COMPACT_MIN and self._head * 2 >= len(fifo):
            del fifo[: self._head]
            self._head = 0
        # _seqs' cache check on the C origin: no int object made for the common case
        q = self._last
        if q is None or self._last_o != e.origin:
            q = self._by_origin[e.origin]
        q.remove(e.seq, e)
        if not q.count:
            del self._by_origin[e.origin]  # bounded: nothing kept per past origin
            if q is self._last:
                self._last = None
        self._count -= 1
        self.nbytes -= e.size

    def put(self, origin: int, seq: int, hops: int, payload: bytes, now: float) -> None:
        """Store a payload (no-op if the id is stored or it alone exceeds ``max_bytes``)."""
        o = origin
        q = self._seqs(origin, o)
        if q is not None and q.find(seq) is not None:
            return
        size = len(payload)
        if size > self._max_bytes or self._max_messages <= 0:
            return
        dropped = self.expire(now)
        while self._count >= self._max_messages or self.nbytes + size > self._max_bytes:
            self._drop_oldest()
            dropped += 1
        if dropped and q is not None and not q.count:
            q = None  # eviction removed it
        if q is None:
            q = _Seqs()
            self._by_origin[origin] = q
            self._last = q
            self._last_o = o
        e = _Stored.__new__(_Stored)
        e.origin = o
        e.seq = seq
        e.hops = hops
        e.payload = payload
        e.size = size
        e.time = now
        q.add(seq, e)
        self._fifo.append(e)
        self._count += 1
        self.nbytes += size

    def get(self, origin: int, seq: int) -> tuple[int, bytes] | None:
        """``(hops, payload)`` of a stored id, or None."""
        try:
            o = origin
            s = seq
        except (OverflowError, TypeError):
            return None
        q = self._seqs(origin, o)
        if q is None:
            return None
        e = q.find(s)
        if e is None:
            return None
        return (e.hops, e.payload)

    def expire(self, now: float) -> int:
        """Drop payloads older than ``max_age`` at ``now``; returns how many."""
        cutoff = now - self._max_age
        dropped = 0
        fifo = self._fifo
        while self._head < len(fifo):
            e: _Stored = fifo[self._head]  # type: ignore[assignment]
            if e.time >= cutoff:
                break
            self._drop_oldest()
            dropped += 1
        return dropped

    def __len__(self) -> int:
        """Number of payloads held."""
        return self._count

    def __contains__(self, key: object) -> bool:
        """True if the ``(origin, seq)`` tuple is stored."""
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        return self.get(key[0], key[1]) is not None
