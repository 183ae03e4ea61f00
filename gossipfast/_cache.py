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

Ids come from the wire as ints (the msgspec decoder guarantees the type). Seqs outside
``1 .. 2**64-1`` never raise: they are treated as already seen / ignored.
"""

from __future__ import annotations

from collections import deque

__all__ = ["DedupCache", "PayloadStore"]

#: Largest valid sequence number (seqs are unsigned 64-bit on the wire).
_MAX_SEQ = 0xFFFF_FFFF_FFFF_FFFF


class _Origin:
    """State of one origin: its highest seq, the ring bitmap below it, LRU links.

    Bit ``s & mask`` of ``bits`` tells whether seq ``s`` was seen, for the ``window``
    seqs ``high - window .. high - 1``. ``high`` itself is seen by definition and has
    no bit (its slot belongs to ``high - ring``), so the ring needs only ``window``
    bits, a power of two, instead of ``window + 1``.
    """

    __slots__ = ("bits", "high", "next", "origin", "prev")

    def __init__(self) -> None:
        self.origin: object = None
        self.high = 0
        self.bits = bytearray()
        self.prev: _Origin = self
        self.next: _Origin = self


def _new_origin(origin: object, high: int, bits: bytearray) -> _Origin:
    """A fresh, unlinked origin state (``bits`` is owned by it from now on)."""
    st = _Origin.__new__(_Origin)
    st.origin = origin
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
    ``advance`` with a valid seq; ``contains``, ``missing`` and ``highest`` only read.
    """

    __slots__ = ("_map", "_mask", "_max_origins", "_ones", "_ring_bytes", "_root", "_window")

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
        self._map: dict[object, _Origin] = {}
        # Sentinel of the circular LRU list: root.next is the most recently seen.
        self._root = _Origin()

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

    def _create(self, origin: object, high: int, fill: bool) -> None:
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
        bits = bytearray(self._ones) if fill else bytearray(self._ring_bytes)
        st = _new_origin(origin, high, bits)
        first = root.next
        st.prev = root
        st.next = first
        first.prev = st
        root.next = st
        self._map[origin] = st

    # -- public API -------------------------------------------------------------

    def check_and_insert(self, origin: int, seq: int) -> bool:
        """True if ``(origin, seq)`` is new (it is now recorded); False if seen or invalid."""
        try:
            s = seq  # compiled: conversion to uint64 raises for < 0 or >= 2**64
        except (OverflowError, TypeError):
            return False
        if s <= 0 or s > _MAX_SEQ:
            return False
        st = self._map.get(origin)
        if st is None:
            self._create(origin, s, False)
            return True
        if st is not self._root.next:
            self._touch(st)
        h = st.high
        if s > h:
            d = s - h
            if d > self._mask:
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
        if s == h or h - s > self._window:
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
        i = 0
        new = 0
        while i < n:
            if self.check_and_insert(ids[i], ids[i + 1]):
                new += 1
            i += 2
        return new

    def contains(self, origin: int, seq: int) -> bool:
        """True if ``seq`` of ``origin`` was seen, is below the window, or is invalid."""
        try:
            s = seq
        except (OverflowError, TypeError):
            return True
        if s <= 0 or s > _MAX_SEQ:
            return True
        st = self._map.get(origin)
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

    def highest(self, origin: int) -> int:
        """Highest seq seen from ``origin``; 0 if it is not tracked."""
        st = self._map.get(origin)
        if st is None:
            return 0
        return st.high

    def advance(self, origin: int, high: int) -> None:
        """Treat every seq ``<= high`` of ``origin`` as seen (e.g. a neighbour's digest)."""
        try:
            hi = high
        except (OverflowError, TypeError):
            return
        if hi <= 0 or hi > _MAX_SEQ:
            return
        st = self._map.get(origin)
        if st is None:
            self._create(origin, hi, True)
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

        Seqs below our window count as seen, so they are never listed.
        """
        out: list[int] = []
        try:
            hi = high
        except (OverflowError, TypeError):
            return out
        if hi <= 0 or hi > _MAX_SEQ or limit <= 0:
            return out
        st = self._map.get(origin)
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
    """One stored payload: its id key, the ``(hops, payload)`` answer, size and time."""

    __slots__ = ("key", "size", "time", "value")

    def __init__(self) -> None:
        self.key: tuple[int, int] = (0, 0)
        self.value: tuple[int, bytes] = (0, b"")
        self.size = 0
        self.time = 0.0


class PayloadStore:
    """Recent payloads by id, bounded by count, total bytes and age (oldest out first)."""

    __slots__ = ("_entries", "_fifo", "_max_age", "_max_bytes", "_max_messages", "nbytes")

    def __init__(self, max_messages: int, max_bytes: int, max_age: float) -> None:
        """Keep at most ``max_messages`` payloads, ``max_bytes`` bytes, ``max_age`` seconds."""
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._max_age = max_age
        self._entries: dict[tuple[int, int], _Stored] = {}
        # Insert order == time order (``now`` never goes back), so the oldest is first.
        self._fifo: deque[_Stored] = deque()
        #: Total payload bytes held.
        self.nbytes = 0

    def _drop_oldest(self) -> None:
        e = self._fifo.popleft()
        del self._entries[e.key]
        self.nbytes -= e.size

    def put(self, origin: int, seq: int, hops: int, payload: bytes, now: float) -> None:
        """Store a payload (no-op if the id is stored or it alone exceeds ``max_bytes``)."""
        key = (origin, seq)
        if key in self._entries:
            return
        size = len(payload)
        if size > self._max_bytes or self._max_messages <= 0:
            return
        self.expire(now)
        while len(self._entries) >= self._max_messages or self.nbytes + size > self._max_bytes:
            self._drop_oldest()
        e = _Stored.__new__(_Stored)
        e.key = key
        e.value = (hops, payload)
        e.size = size
        e.time = now
        self._entries[key] = e
        self._fifo.append(e)
        self.nbytes += size

    def get(self, origin: int, seq: int) -> tuple[int, bytes] | None:
        """``(hops, payload)`` of a stored id, or None."""
        e = self._entries.get((origin, seq))
        if e is None:
            return None
        return e.value

    def expire(self, now: float) -> int:
        """Drop payloads older than ``max_age`` at ``now``; returns how many."""
        cutoff = now - self._max_age
        dropped = 0
        fifo = self._fifo
        while fifo:
            first = fifo[0]
            if first.time >= cutoff:
                break
            self._drop_oldest()
            dropped += 1
        return dropped

    def __len__(self) -> int:
        """Number of payloads held."""
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """True if the ``(origin, seq)`` tuple is stored."""
        return key in self._entries
