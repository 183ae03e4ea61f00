# cython: annotation_typing=False
"""Message-id dedup and the payload store kept for GRAFT and catch-up.

Hot module: this plain Python file is also compiled by Cython with the typed
declarations of ``_cache.pxd`` (python-zeroconf style); nothing here imports Cython.

:class:`DedupCache` keeps, per origin, the highest ``seq`` seen and a ring bitmap of
the ``window`` seqs below it: fixed memory per origin, O(1) per check. Seqs more than
``window`` below the highest count as seen (too old to tell apart from a duplicate).
At most ``max_origins`` origins are tracked; the least recently seen is evicted.

:class:`PayloadStore` keeps recent payloads by id, bounded by count, total bytes and
age, evicting the oldest insert first.

Ids come from the wire as ints (the msgspec decoder guarantees the type). An id whose
origin is outside ``0 .. 2**64-1`` or whose seq is outside ``1 .. 2**64-1`` never
raises: it is invalid, so never new (``contains`` says True), and it is never tracked.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["DedupCache", "PayloadStore"]

#: Largest valid sequence number (seqs are unsigned 64-bit on the wire).
_MAX_SEQ = 0xFFFF_FFFF_FFFF_FFFF
#: Slots - 1 of DedupCache's direct-mapped origin cache (a power of two, minus one).
_HOT_MASK = 63


class _Origin:
    """State of one origin: its highest seq, the ring bitmap below it, LRU links.

    Bit ``s & mask`` of ``bits`` tells whether seq ``s`` was seen, for the ``window``
    seqs ``high - window .. high - 1``. ``high`` itself is seen by definition and has
    no bit (its slot belongs to ``high - ring``), so the ring needs only ``window``
    bits, a power of two, instead of ``window + 1``.
    """

    __slots__ = ("bits", "high", "key", "next", "origin", "prev")

    def __init__(self) -> None:
        self.origin: object = None
        self.key = 0
        self.high = 0
        self.bits = bytearray()
        self.prev: _Origin = self
        self.next: _Origin = self


def _new_origin(origin: object, key: int, high: int, bits: bytearray) -> _Origin:
    """A fresh, unlinked origin state (``bits`` is owned by it from now on)."""
    st = _Origin.__new__(_Origin)
    st.origin = origin
    st.key = key
    st.high = high
    st.bits = bits
    st.prev = st
    st.next = st
    return st


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


class DedupCache:
    """Per-origin highest seq + sliding bitmap window; LRU-bounded number of origins.

    ``check_and_insert`` answers "is this id new?" and records it. An origin is
    "seen" (moved to the most recent end of the LRU list) by ``check_and_insert`` and
    ``advance`` with a valid id, duplicates included; ``contains``, ``missing``,
    ``highest`` and ``digest`` only read.

    Memory per origin: the ring, ``window`` rounded up to a power of two, in bits
    (512 bytes for the default 4096), plus about 180 bytes of bookkeeping.
    """

    __slots__ = (
        "_hot",
        "_map",
        "_mask",
        "_max_origins",
        "_ones",
        "_ring_bytes",
        "_root",
        "_window",
        "stale",
    )

    def __init__(self, window: int, max_origins: int) -> None:
        """Track ``window`` seqs below each origin's highest, for ``max_origins`` origins."""
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if max_origins < 1:
            raise ValueError(f"max_origins must be >= 1, got {max_origins}")
        ring = 8
        while ring < window:
            ring <<= 1
        self._window = window
        self._mask = ring - 1
        self._ring_bytes = ring >> 3
        self._ones = b"\xff" * self._ring_bytes
        self._max_origins = max_origins
        #: Seqs refused because they were older than their origin's window: taken for
        #: duplicates, though they may never have been delivered (counted, not silent).
        self.stale = 0
        self._map: dict[object, _Origin] = {}
        # Sentinel of the circular LRU list: root.next is the most recently seen.
        self._root = _Origin()
        # Direct-mapped cache of origin states by the low bits of the origin (xxh64, so
        # well spread): interleaved origins skip the dict's hashing. Empty slot = root.
        self._hot: list[_Origin] = [self._root] * (_HOT_MASK + 1)

    # -- LRU list ---------------------------------------------------------------

    def _touch(self, st: _Origin) -> None:
        """Move ``st`` to the most recently seen end."""
        root = self._root
        first = root.next
        if first is st:
            return
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

    def _create(self, origin: object, o: int, high: int, fill: bool) -> None:
        """Start tracking ``origin`` at ``high``; evicts the least recent if full."""
        root = self._root
        if len(self._map) >= self._max_origins:
            old = root.prev
            prev = old.prev
            prev.next = root
            root.prev = prev
            old.prev = old
            old.next = old
            del self._map[old.origin]
            if self._hot[old.key & _HOT_MASK] is old:
                self._hot[old.key & _HOT_MASK] = root
        bits = bytearray(self._ones) if fill else bytearray(self._ring_bytes)
        st = _new_origin(origin, o, high, bits)
        first = root.next
        st.prev = root
        st.next = first
        first.prev = st
        root.next = st
        self._map[origin] = st
        self._hot[o & _HOT_MASK] = st

    # -- public API -------------------------------------------------------------

    def check_and_insert(self, origin: int, seq: int) -> bool:
        """True if ``(origin, seq)`` is new (it is now recorded); False if seen or invalid."""
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
                    self._create(origin, o, s, False)
                    return True
                self._hot[o & _HOT_MASK] = found
                st = found
            self._touch(st)
        h = st.high
        if s > h:
            d = s - h
            if d == 1:
                # In order: the old high gets its bit; its slot held a seq now too old.
                p = st.bits
                pos = h & self._mask
                p[pos >> 3] = p[pos >> 3] | (1 << (pos & 7))
            elif d > self._mask:
                # Jumped past the whole ring: nothing below the new high was seen,
                # except the old high when it is still inside the window.
                _fill(st.bits, self._mask, s - (self._mask + 1), self._mask + 1, False)
                if d <= self._window:
                    _fill(st.bits, self._mask, h, 1, True)
            else:
                _fill(st.bits, self._mask, h, 1, True)
                if d > 1:
                    _fill(st.bits, self._mask, h + 1, d - 1, False)
            st.high = s
            return True
        if s == h:
            return False
        if h - s > self._window:
            self.stale += 1
            return False
        p = st.bits
        pos = s & self._mask
        b = 1 << (pos & 7)
        if p[pos >> 3] & b:
            return False
        p[pos >> 3] = p[pos >> 3] | b
        return True

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
        if h - s > self._window:
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
            self._create(origin, o, hi, True)
            return
        self._touch(st)
        h = st.high
        if hi > h:
            # Every tracked seq (all below the new high) is now seen.
            st.bits[:] = self._ones
            st.high = hi
            return
        lo = h - self._window if h > self._window else 1
        top = hi if hi < h else h - 1
        if top >= lo:
            _fill(st.bits, self._mask, lo, top - lo + 1, True)

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
        p = st.bits
        mask = self._mask
        lo = h - self._window if h > self._window else 1
        top = hi if hi < h else h - 1
        if top >= lo:
            count = top - lo + 1
            x = lo
            while count > 0:
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

    def digest(self) -> list[int]:
        """Flat ``[origin, highest, ...]`` over tracked origins, most recently seen first."""
        out: list[int] = []
        root = self._root
        st = root.next
        while st is not root:
            out.append(st.origin)  # type: ignore[arg-type]
            out.append(st.high)
            st = st.next
        return out

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
