# cython: annotation_typing=False
"""Peer sets: HyParView views and Plumtree's eager/lazy split.

Hot module: this plain Python file is also compiled by Cython with the typed
declarations of ``_peers.pxd`` (python-zeroconf style); nothing here imports Cython.

:class:`PeerSet` pairs an insertion-ordered dict ``peer -> slot`` with a list of peers
by slot. Membership is the dict; a uniform random pick indexes the list; removal moves
the last peer of the list into the freed slot (updating its dict value keeps its dict
position), so add, discard, contains and random choice are all O(1) while iteration
follows insertion order. Randomness comes only from the ``random.Random`` passed in.
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from random import Random

__all__ = ["EagerLazy", "PeerSet"]

#: Random picks tried before ``random`` falls back to filtering out ``exclude``.
_TRIES = 4


def _below(rng: Random, n: int) -> int:
    """A uniform index in ``0 .. n-1`` (``n > 0``) from one ``rng.random()`` draw."""
    r = rng.random()
    i = int(r * n)
    # random() < 1.0, but the product may round up to n for some n.
    if i >= n:
        i = n - 1
    return i


class PeerSet:
    """Insertion-ordered set of peer addresses with O(1) add/discard/contains/random."""

    __slots__ = ("_capacity", "_index", "_items")

    def __init__(self, capacity: int = 0) -> None:
        """A set holding at most ``capacity`` peers (0: unbounded)."""
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self._capacity = capacity
        self._index: dict[str, int] = {}
        self._items: list[str] = []

    @property
    def capacity(self) -> int:
        """The bound given at construction (0: unbounded)."""
        return self._capacity

    def add(self, peer: str) -> bool:
        """Add ``peer``; False if it is already present or the set is full."""
        if peer in self._index:
            return False
        n = len(self._items)
        if self._capacity > 0 and n >= self._capacity:
            return False
        self._index[peer] = n
        self._items.append(peer)
        return True

    def discard(self, peer: str) -> bool:
        """Remove ``peer``; True if it was there."""
        slot = self._index.pop(peer, None)
        if slot is None:
            return False
        i = slot
        items = self._items
        last = items.pop()
        if i < len(items):
            # Fill the hole with the last peer; its dict entry keeps its position.
            items[i] = last
            self._index[last] = i
        return True

    def clear(self) -> None:
        """Remove every peer."""
        self._index.clear()
        self._items.clear()

    def is_full(self) -> bool:
        """True if bounded and at capacity."""
        return self._capacity > 0 and len(self._items) >= self._capacity

    def random(self, rng: Random, exclude: Container[str] | None = None) -> str | None:
        """A uniformly chosen peer not in ``exclude``; None if there is none."""
        items = self._items
        n = len(items)
        if n == 0:
            return None
        if exclude is None:
            return items[_below(rng, n)]
        # Rejection sampling stays uniform and is O(1) while few peers are excluded;
        # after a few misses, choose among the filtered list (also uniform).
        for _ in range(_TRIES):
            peer = items[_below(rng, n)]
            if peer not in exclude:
                return peer
        candidates = [p for p in items if p not in exclude]
        n = len(candidates)
        if n == 0:
            return None
        return candidates[_below(rng, n)]

    def sample(self, rng: Random, k: int, exclude: Container[str] | None = None) -> list[str]:
        """Up to ``k`` distinct peers not in ``exclude``, uniformly chosen, in random order."""
        if k <= 0:
            return []
        out = list(self._items)
        # Partial Fisher-Yates over the pool out[j:m]: each step draws uniformly from the
        # pool; an excluded draw leaves the pool (swapped past m) without being chosen,
        # so the result is a uniform sample of the allowed peers in O(k + excluded hit).
        m = len(out)
        j = 0
        while j < k and j < m:
            r = j + _below(rng, m - j)
            peer = out[r]
            if exclude is not None and peer in exclude:
                m -= 1
                out[r] = out[m]
                out[m] = peer
                continue
            out[r] = out[j]
            out[j] = peer
            j += 1
        del out[j:]
        return out

    def pop_random(self, rng: Random, exclude: Container[str] | None = None) -> str | None:
        """Remove and return a uniformly chosen peer not in ``exclude``; None if none."""
        peer = self.random(rng, exclude)
        if peer is not None:
            self.discard(peer)
        return peer

    def to_list(self) -> list[str]:
        """The peers in insertion order (a new list)."""
        return list(self._index)

    def __contains__(self, peer: object) -> bool:
        """True if ``peer`` is in the set."""
        return peer in self._index

    def __len__(self) -> int:
        """Number of peers."""
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        """Peers in insertion order (do not add or discard while iterating: use to_list)."""
        return iter(self._index)

    def __repr__(self) -> str:
        return f"PeerSet({self.to_list()!r}, capacity={self._capacity})"


class EagerLazy:
    """Plumtree's eager and lazy push sets; every known peer is in exactly one."""

    __slots__ = ("eager", "lazy")

    def __init__(self) -> None:
        """Two empty, unbounded sets (the active view bounds them)."""
        #: Peers that receive full payloads (the spanning-tree links).
        self.eager = PeerSet(0)
        #: Peers that receive only IHAVE announcements.
        self.lazy = PeerSet(0)

    def add(self, peer: str) -> None:
        """A new neighbour starts eager; a peer already in either set stays where it is."""
        if peer in self.lazy._index:
            return
        self.eager.add(peer)

    def remove(self, peer: str) -> None:
        """Forget ``peer`` (from whichever set holds it)."""
        if not self.eager.discard(peer):
            self.lazy.discard(peer)

    def to_lazy(self, peer: str) -> bool:
        """Move an eager ``peer`` to lazy; True if it moved."""
        if self.eager.discard(peer):
            self.lazy.add(peer)
            return True
        return False

    def to_eager(self, peer: str) -> bool:
        """Move a lazy ``peer`` to eager; True if it moved."""
        if self.lazy.discard(peer):
            self.eager.add(peer)
            return True
        return False

    def is_eager(self, peer: str) -> bool:
        """True if ``peer`` is in the eager set."""
        return peer in self.eager._index

    def __contains__(self, peer: object) -> bool:
        """True if ``peer`` is in either set."""
        return peer in self.eager._index or peer in self.lazy._index

    def __len__(self) -> int:
        """Number of peers in both sets."""
        return len(self.eager._items) + len(self.lazy._items)

    def __repr__(self) -> str:
        return f"EagerLazy(eager={self.eager.to_list()!r}, lazy={self.lazy.to_list()!r})"
