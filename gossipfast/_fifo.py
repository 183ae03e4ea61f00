# cython: annotation_typing=False
"""Per-origin FIFO delivery for Plumtree (``Config.fifo``): messages that come ahead of a
gap are held back (bounded) until the gap fills, is learnt lost, or times out.

Hot module (compiled by Cython with ``_fifo.pxd``; nothing here imports Cython).
"""

from __future__ import annotations

from typing import Any

from ._cache import DedupCache

#: Messages held back per origin before a gap is skipped.
_HOLD_MAX = 4096
#: Seconds a gap may take to fill (grafts and catch-up take < 1 s) before it is skipped.
_HOLD = 1.0


class FifoDelivery:
    """Per-origin sequence order of deliveries.

    Each method appends what it delivers to ``out`` (the engine's deliveries, as
    ``(origin, seq, hops, payload)``) and returns how many it appended. A gap arms the
    timer ``(on_gap, origin)`` on the shared wheel, which the engine calls back as
    ``on_gap(item, now)``: the owner then calls :meth:`skip_gap`. ``skipped`` counts the
    gaps given up (stats ``fifo_skipped``).
    """

    def __init__(self, timers: Any, dedup: DedupCache, cap: int, on_gap: Any) -> None:
        """Order deliveries; the table of next seqs is trimmed past ``cap`` origins."""
        self.timers = timers
        self.on_gap = on_gap
        self.dedup = dedup
        # origin -> the next seq to deliver; origin -> {seq: (hops, payload)} held back
        self.next_seq: dict[int, int] = {}
        self.cap = cap
        self.next_seq_max = cap
        self.held: dict[int, dict[int, tuple[int, bytes]]] = {}
        self.skipped = 0

    def deliver(self, out: list, o: int, s: int, h: int, payload: bytes, now: float) -> int:
        """Deliver (o, s) in sequence order, holding it back when it comes early."""
        nxt = self.next_seq.get(o, 0)
        if nxt == 0 or s == nxt:
            out.append((o, s, h, payload))
            if nxt == 0 and len(self.next_seq) >= self.next_seq_max:
                self.forget_next_seqs()
            self.next_seq[o] = s + 1
            return 1 + self.release(out, o)
        if s < nxt:  # older than what we already passed: deliver late, not lose it
            out.append((o, s, h, payload))
            return 1
        held = self.held.get(o)
        if held is None:
            held = {}
            self.held[o] = held
            self.timers.schedule(now + _HOLD, (self.on_gap, o))
        held[s] = (h, payload)
        if len(held) > _HOLD_MAX:
            # the gap will not fill in time: skip to the oldest held message
            self.skipped += 1
            self.next_seq[o] = min(held)
            return self.release(out, o)
        return 0

    def forget_next_seqs(self) -> None:
        """Bound the per-origin table: drop the origins dedup forgot (idle ones)."""
        dedup = self.dedup
        held = self.held
        self.next_seq = {o: n for o, n in self.next_seq.items() if o in dedup or o in held}
        # amortised: the next pass only after as many new origins again
        self.next_seq_max = max(self.cap, 2 * len(self.next_seq))

    def release(self, out: list, o: int) -> int:
        """Deliver the held messages of ``o`` that are now in order."""
        held = self.held.get(o)
        if not held:
            return 0
        nxt = self.next_seq[o]
        n = 0
        while nxt in held:
            h, payload = held.pop(nxt)
            out.append((o, nxt, h, payload))
            n += 1
            nxt += 1
        self.next_seq[o] = nxt
        if not held:
            del self.held[o]
        return n

    def pass_lost(self, out: list, o: int) -> int:
        """The next seqs of ``o`` are lost for good (a ``Gone``): stop waiting for them."""
        nxt = self.next_seq.get(o, 0)
        if nxt == 0:
            return 0
        held = self.held.get(o)
        while (held is None or nxt not in held) and self.dedup.contains(o, nxt):
            nxt += 1  # (contains() is False above the highest seq seen)
        self.next_seq[o] = nxt
        return self.release(out, o)

    def skip_gap(self, out: list, o: int, now: float) -> int:
        """The gap timer of ``o`` is due: stop waiting for the gap that holds it back."""
        held = self.held.get(o)
        if not held:
            return 0
        self.next_seq[o] = min(held)
        self.skipped += 1
        n = self.release(out, o)
        if o in self.held:  # another gap further on: wait for it in turn
            self.timers.schedule(now + _HOLD, (self.on_gap, o))
        return n
