"""DedupCache and PayloadStore: hand-written cases and model tests, both builds.

Every test runs against the module the package loaded (compiled unless
``GOSSIPFAST_NO_EXTENSIONS=1``) and against the ``.py`` source loaded beside it, so one
run checks both builds and the twins against the same model.
"""

from __future__ import annotations

import gc
import itertools
import random
from collections import OrderedDict
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.buildkit import builds, pick

from gossipfast import _cache as loaded_cache
from gossipfast import _hot

U64 = 2**64 - 1


BUILDS = builds("_cache")
PURE = BUILDS["pure"]


@pytest.fixture(params=["compiled", "pure"])
def mod(request: pytest.FixtureRequest) -> ModuleType:
    return pick(BUILDS, request.param, "_cache")


def test_builds_are_what_they_claim() -> None:
    assert PURE.__file__.endswith("_cache.py")
    if _hot.extensions_disabled():
        assert not _hot.is_compiled(loaded_cache)


# -- DedupCache: hand-written ---------------------------------------------------------


def test_in_order(mod: ModuleType) -> None:
    d = mod.DedupCache(64, 8)
    for s in range(1, 1000):
        assert d.check_and_insert(7, s) is True
        assert d.check_and_insert(7, s) is False
        assert d.contains(7, s)
    assert d.highest(7) == 999
    assert not d.contains(7, 1000)
    assert d.missing(7, 999, 100) == []
    assert len(d) == 1 and 7 in d and 8 not in d


def test_reorder_within_window(mod: ModuleType) -> None:
    d = mod.DedupCache(64, 8)
    assert d.check_and_insert(1, 50)
    # Everything in 50-64 .. 49 is still tracked individually.
    assert d.missing(1, 50, 100) == list(range(1, 50))
    for s in range(49, 0, -2):
        assert d.check_and_insert(1, s)
    for s in range(49, 0, -2):
        assert not d.check_and_insert(1, s)
    assert d.missing(1, 52, 100) == [*range(2, 50, 2), 51, 52]
    assert d.highest(1) == 50


def test_window_boundary_is_exact(mod: ModuleType) -> None:
    w = 100  # not a power of two: the ring is larger than the window
    d = mod.DedupCache(w, 4)
    assert d.check_and_insert(3, 1000)
    assert not d.contains(3, 1000 - w)  # exactly `window` below: still tracked
    assert d.contains(3, 1000 - w - 1)  # more than `window` below: too old
    assert d.check_and_insert(3, 1000 - w)
    assert not d.check_and_insert(3, 1000 - w - 1)
    assert d.missing(3, 1000, 1000) == list(range(1000 - w + 1, 1000))


def test_far_old_counts_as_seen(mod: ModuleType) -> None:
    d = mod.DedupCache(64, 8)
    assert d.check_and_insert(1, 10_000)
    assert not d.check_and_insert(1, 1)
    assert not d.check_and_insert(1, 10_000 - 65)
    assert d.contains(1, 5)


def test_jumps_clear_stale_bits(mod: ModuleType) -> None:
    d = mod.DedupCache(64, 8)
    for s in range(1, 65):
        d.check_and_insert(1, s)
    # Jump by less than the ring: the slots of the new seqs must read unseen.
    assert d.check_and_insert(1, 100)
    assert d.missing(1, 100, 100) == list(range(65, 100))
    assert d.contains(1, 64) and d.contains(1, 40)
    # Jump past the whole ring, then exactly by the window (old high stays seen).
    assert d.check_and_insert(1, 10_000)
    assert d.missing(1, 10_000, 100) == list(range(10_000 - 64, 10_000))
    assert d.check_and_insert(1, 10_064)
    assert d.contains(1, 10_000)
    assert d.missing(1, 10_064, 100) == list(range(10_001, 10_064))


def test_huge_values(mod: ModuleType) -> None:
    d = mod.DedupCache(64, 8)
    assert d.check_and_insert(U64, 1)
    assert d.check_and_insert(U64, U64)
    assert not d.check_and_insert(U64, U64)
    assert d.highest(U64) == U64
    assert d.contains(U64, U64 - 100)
    assert not d.contains(U64, U64 - 1)
    assert d.missing(U64, U64, 3) == [U64 - 64, U64 - 63, U64 - 62]
    assert d.check_and_insert(U64 - 1, U64 - 1)
    assert d.missing(U64 - 1, U64, 1000)[-2:] == [U64 - 2, U64]
    d.advance(U64, U64)
    assert d.missing(U64, U64, 10) == []
    assert d.digest()[:2] == [U64, U64]


@pytest.mark.parametrize("bad", [0, -1, -(2**63), -(2**64), 2**64, 2**65, 2**200])
def test_hostile_seqs_never_raise(mod: ModuleType, bad: int) -> None:
    d = mod.DedupCache(64, 8)
    assert d.check_and_insert(1, bad) is False
    assert len(d) == 0  # an invalid seq does not create an origin
    assert d.contains(1, bad) is True
    d.advance(1, bad)
    assert len(d) == 0
    assert d.missing(1, bad, 10) == []
    assert d.check_and_insert(1, 5)
    assert d.check_and_insert(1, bad) is False
    assert d.contains(1, bad) is True
    d.advance(1, bad)
    assert d.highest(1) == 5
    assert d.missing(1, bad, 10) == []


@pytest.mark.parametrize("bad", [-1, -(2**63), 2**64, 2**100])
def test_hostile_origins_are_invalid(mod: ModuleType, bad: int) -> None:
    d = mod.DedupCache(64, 8)
    assert d.check_and_insert(0, 1)  # 0 .. 2**64-1 are valid origins
    assert d.check_and_insert(bad, 1) is False
    assert d.contains(bad, 1) is True
    d.advance(bad, 10)
    assert d.missing(bad, 10, 10) == []
    assert d.highest(bad) == 0
    assert len(d) == 1 and bad not in d


def test_lru_eviction(mod: ModuleType) -> None:
    d = mod.DedupCache(64, 3)
    for o in (1, 2, 3):
        d.check_and_insert(o, 1)
    d.check_and_insert(1, 2)  # 1 is now the most recent; 2 the least
    assert d.check_and_insert(4, 1)
    assert len(d) == 3
    assert 2 not in d and 1 in d and 3 in d and 4 in d
    assert d.highest(2) == 0
    assert d.digest() == [4, 1, 1, 2, 3, 1]
    # Reading does not refresh an origin; a duplicate check does.
    d.contains(3, 1)
    d.missing(3, 5, 5)
    d.highest(3)
    assert not d.check_and_insert(1, 2)
    d.advance(4, 3)
    assert d.check_and_insert(5, 1)
    assert 3 not in d
    assert d.digest() == [5, 1, 4, 3, 1, 2]
    # An evicted origin starts over.
    assert d.check_and_insert(3, 1)


def test_origins_sharing_low_bits(mod: ModuleType) -> None:
    # Origins equal in their low bits share a slot of the direct-mapped origin cache.
    a, b, c = 5, 5 + 64, 5 + (1 << 63)
    d = mod.DedupCache(64, 2)
    for s in range(1, 20):
        assert d.check_and_insert(a, s) and d.check_and_insert(b, s)
        assert not d.check_and_insert(a, s) and not d.check_and_insert(b, s)
    assert d.check_and_insert(c, 1)  # evicts a, the least recent
    assert a not in d and d.highest(a) == 0 and not d.contains(a, 3)
    assert d.highest(b) == 19 and d.contains(b, 3) and d.highest(c) == 1
    assert d.check_and_insert(a, 3)  # a starts over; evicts b
    assert b not in d and d.highest(b) == 0 and d.missing(b, 2, 5) == [1, 2]
    assert d.digest() == [a, 3, c, 1]


def test_advance(mod: ModuleType) -> None:
    d = mod.DedupCache(64, 8)
    d.advance(9, 500)  # a newcomer adopts a neighbour's digest
    assert d.highest(9) == 500
    assert all(d.contains(9, s) for s in range(1, 501))
    assert d.missing(9, 503, 10) == [501, 502, 503]
    assert d.check_and_insert(9, 503)
    assert d.missing(9, 503, 10) == [501, 502]
    # Advancing below the highest fills the gaps up to that point only.
    assert d.check_and_insert(9, 530)
    d.advance(9, 510)
    assert d.missing(9, 530, 100) == list(range(511, 530))
    d.advance(9, 600)
    assert d.missing(9, 600, 100) == []
    assert d.highest(9) == 600
    d.advance(9, 100)  # old news: no change
    assert d.highest(9) == 600


def test_missing_limits_and_unknown(mod: ModuleType) -> None:
    d = mod.DedupCache(64, 8)
    assert d.missing(1, 10, 4) == [1, 2, 3, 4]
    assert d.missing(1, 3, 100) == [1, 2, 3]
    assert d.missing(1, U64, 2) == [1, 2]
    assert d.missing(1, 10, 0) == []
    assert d.missing(1, 10, -5) == []
    d.check_and_insert(1, 20)
    assert d.missing(1, 30, 3) == [1, 2, 3]
    assert d.missing(1, 30, 22) == [*range(1, 20), 21, 22, 23]
    assert d.missing(1, 5, 100) == [1, 2, 3, 4, 5]


def test_first_missing_walks_a_run_as_contains_would(mod: ModuleType) -> None:
    d = mod.DedupCache(4096, 8)
    gaps = {5, 6, 64, 65, 66, 67, 68, 69, 70, 71, 400, 1023}
    for s in range(1, 1201):
        if s not in gaps:
            d.check_and_insert(9, s)
    rng = random.Random(3)
    for _ in range(2000):
        first = rng.randrange(1, 1300)
        last = first + rng.randrange(0, 300)
        want = next((s for s in range(first, last + 1) if not d.contains(9, s)), 0)
        assert d.first_missing(9, first, last) == want, (first, last)
    assert d.first_missing(77, 3, 9) == 3  # an origin we never saw
    assert d.first_missing(9, 1201, U64) == 1201
    assert d.first_missing(9, 1200, 1200) == 0  # the high itself
    assert d.first_missing(9, 0, 5) == 0 and d.first_missing(9, 9, 8) == 0  # invalid
    assert d.first_missing(-1, 1, 5) == 0 and d.first_missing(9, 1, 2**64) == 0
    # far below the window: seen
    for s in range(2000, 9001):
        d.check_and_insert(9, s)
    assert d.first_missing(9, 1, 4000) == 0 and d.first_missing(9, 1, 9002) == 9001


def test_digest_most_recent_first(mod: ModuleType) -> None:
    d = mod.DedupCache(64, 8)
    assert d.digest() == []
    d.check_and_insert(10, 3)
    d.check_and_insert(20, 7)
    d.check_and_insert(10, 4)
    assert d.digest() == [10, 4, 20, 7]


def test_bad_construction(mod: ModuleType) -> None:
    with pytest.raises(ValueError):
        mod.DedupCache(0, 8)
    with pytest.raises(ValueError):
        mod.DedupCache(64, 0)


def test_batch_matches_single(mod: ModuleType) -> None:
    a = mod.DedupCache(64, 4)
    b = mod.DedupCache(64, 4)
    ids = [o for pair in zip([1, 2, 1, 3, 1, 5, 6, 2], [1, 1, 1, 9, 0, 3, 3, 1]) for o in pair]
    new = sum(a.check_and_insert(ids[i], ids[i + 1]) for i in range(0, len(ids), 2))
    assert b.check_and_insert_many(ids) == new == 6
    assert a.digest() == b.digest()
    assert b.check_and_insert_many([1]) == 0  # odd tail ignored


def test_large_structures_free_cleanly(mod: ModuleType) -> None:
    d = mod.DedupCache(4096, 1 << 16)
    for o in range(70_000):
        d.check_and_insert(o, 1)
    assert len(d) == 1 << 16
    s = mod.PayloadStore(300_000, 1 << 30, 1e9)
    for i in range(300_000):
        s.put(1, i + 1, 0, b"x", 0.0)
    del d, s
    gc.collect()


# -- DedupCache: model test -----------------------------------------------------------


class DedupModel:
    """Unbounded set of ids with the same window, validity and LRU semantics."""

    def __init__(self, window: int, max_origins: int) -> None:
        self.window = window
        self.max_origins = max_origins
        # origin -> [highest, floor (all <= floor seen), set of seen seqs]; LRU order.
        self.state: OrderedDict[int, list] = OrderedDict()

    @staticmethod
    def valid(s: int, origin: int = 0) -> bool:
        return 1 <= s <= U64 and 0 <= origin <= U64

    def _new(self, origin: int, high: int, floor: int) -> None:
        if len(self.state) >= self.max_origins:
            self.state.popitem(last=False)
        self.state[origin] = [high, floor, {high}]

    def contains(self, origin: int, s: int) -> bool:
        if not self.valid(s, origin):
            return True
        if origin not in self.state:
            return False
        high, floor, seen = self.state[origin]
        if s > high:
            return False
        return high - s > self.window or s <= floor or s in seen

    def check_and_insert(self, origin: int, s: int) -> bool:
        if not self.valid(s, origin):
            return False
        if origin not in self.state:
            self._new(origin, s, 0)
            return True
        self.state.move_to_end(origin)
        if self.contains(origin, s):
            return False
        entry = self.state[origin]
        entry[2].add(s)
        entry[0] = max(entry[0], s)
        return True

    def advance(self, origin: int, hi: int) -> None:
        if not self.valid(hi, origin):
            return
        if origin not in self.state:
            self._new(origin, hi, hi)
            return
        self.state.move_to_end(origin)
        entry = self.state[origin]
        entry[0] = max(entry[0], hi)
        entry[1] = max(entry[1], hi)

    def missing(self, origin: int, hi: int, limit: int) -> list[int]:
        if not self.valid(hi, origin) or limit <= 0:
            return []
        start = 1
        if origin in self.state:  # everything further below counts as seen
            start = max(1, self.state[origin][0] - self.window)
        gen = (s for s in range(start, hi + 1) if not self.contains(origin, s))
        return list(itertools.islice(gen, limit))

    def first_missing(self, origin: int, first: int, last: int) -> int:
        if not (self.valid(first, origin) and self.valid(last)) or first > last:
            return 0
        if origin not in self.state:
            return first
        high = self.state[origin][0]
        for s in range(max(first, high - self.window), min(last, high) + 1):
            if not self.contains(origin, s):
                return s
        return max(first, high + 1) if last > high else 0

    def highest(self, origin: int) -> int:
        return self.state[origin][0] if origin in self.state else 0

    def digest(self) -> list[int]:
        out = []
        for origin in reversed(self.state):
            out += [origin, self.state[origin][0]]
        return out


ORIGINS = st.sampled_from([0, 1, 2, 3, 4, U64, 2**63, -1, 2**64])
SEQS = st.one_of(
    st.integers(-3, 300),
    st.integers(1, 12),
    st.sampled_from([U64, U64 - 1, U64 - 70, 2**63, 2**64, -(2**63), 2**70]),
)
DEDUP_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("check"), ORIGINS, SEQS),
        st.tuples(st.just("contains"), ORIGINS, SEQS),
        st.tuples(st.just("advance"), ORIGINS, SEQS),
        st.tuples(st.just("missing"), ORIGINS, SEQS, st.integers(-1, 40)),
        st.tuples(st.just("highest"), ORIGINS),
        st.tuples(st.just("first_missing"), ORIGINS, SEQS, SEQS),
        st.tuples(st.just("digest")),
    ),
    max_size=120,
)


def _same_answer(real: object, model: DedupModel, op: tuple) -> None:
    """Apply ``op`` to both; the real cache answers as the model does."""
    name, args = op[0], op[1:]
    if name == "check":
        assert real.check_and_insert(*args) == model.check_and_insert(*args), op  # type: ignore[attr-defined]
    elif name == "contains":
        assert real.contains(*args) == model.contains(*args), op  # type: ignore[attr-defined]
    elif name == "advance":
        real.advance(*args)  # type: ignore[attr-defined]
        model.advance(*args)
    elif name == "missing":
        assert real.missing(*args) == model.missing(*args), op  # type: ignore[attr-defined]
    elif name == "highest":
        assert real.highest(*args) == model.highest(*args), op  # type: ignore[attr-defined]
    elif name == "first_missing":
        assert real.first_missing(*args) == model.first_missing(*args), op  # type: ignore[attr-defined]
    else:
        assert real.digest() == model.digest(), op  # type: ignore[attr-defined]
    assert len(real) == len(model.state)  # type: ignore[arg-type]


@pytest.mark.parametrize("build", ["compiled", "pure"])
@settings(max_examples=300, deadline=None)
@given(
    window=st.sampled_from([1, 3, 8, 9, 63, 64, 65, 100]),
    max_origins=st.integers(1, 5),
    ops=DEDUP_OPS,
)
def test_dedup_matches_model(build: str, window: int, max_origins: int, ops: list) -> None:
    if build not in BUILDS:
        pytest.skip("compiled _cache not loaded")
    real = BUILDS[build].DedupCache(window, max_origins)
    model = DedupModel(window, max_origins)
    for op in ops:
        _same_answer(real, model, op)
    for origin in (0, 1, 2, 3, 4, U64, 2**63):
        assert (origin in real) == (origin in model.state)
        assert real.highest(origin) == model.highest(origin)


class IdleModel(DedupModel):
    """DedupModel whose least recent origin is forgotten only after ``idle`` seconds.

    An origin's time is when it stopped being the most recent (the real cache stamps
    it then); the most recent one is never idle. A new origin finding the table full of
    origins seen within ``idle`` is refused.
    """

    def __init__(self, window: int, max_origins: int, idle: float) -> None:
        super().__init__(window, max_origins)
        self.idle = idle
        self.now = 0.0
        self.stamp: dict[int, float] = {}

    def _first(self) -> int | None:
        return next(reversed(self.state)) if self.state else None

    def _make_recent(self, origin: int) -> None:
        head = self._first()
        if head is not None and head != origin:
            self.stamp[head] = self.now
            self.stamp[origin] = self.now

    def _room(self) -> bool:
        if len(self.state) < self.max_origins:
            return True
        tail = next(iter(self.state))
        if self.idle > 0 and (len(self.state) == 1 or self.now - self.stamp[tail] < self.idle):
            return False
        self.state.popitem(last=False)
        return True

    def _new(self, origin: int, high: int, floor: int) -> None:
        head = self._first()
        if head is not None:
            self.stamp[head] = self.now
        self.stamp[origin] = self.now
        self.state[origin] = [high, floor, {high}]

    def check_and_insert(self, origin: int, s: int) -> bool:
        if not self.valid(s, origin):
            return False
        if origin not in self.state:
            if not self._room():
                return False
            self._new(origin, s, 0)
            return True
        self._make_recent(origin)
        return super().check_and_insert(origin, s)

    def advance(self, origin: int, hi: int) -> None:
        if not self.valid(hi, origin):
            return
        if origin not in self.state:
            if self._room():
                self._new(origin, hi, hi)
            return
        self._make_recent(origin)
        super().advance(origin, hi)


def _check_rings(d: object) -> None:
    """Pure build: each origin's ``holes`` is the number of valid unseen seqs its ring
    covers, and ``rings`` counts the origins with a ring."""
    mask = d._mask  # type: ignore[attr-defined]
    rings = 0
    for og in d._map.values():  # type: ignore[attr-defined]
        if og.bits is None:
            assert og.holes == 0
            continue
        rings += 1
        lo = max(1, og.high - (mask + 1))
        zeros = sum(1 for x in range(lo, og.high) if not (og.bits[(x & mask) >> 3] >> (x & 7)) & 1)
        assert og.holes == zeros, (og.origin, og.high, og.holes, zeros)
    assert d.rings == rings  # type: ignore[attr-defined]


@pytest.mark.parametrize("build", ["compiled", "pure"])
@settings(max_examples=300, deadline=None)
@given(
    window=st.sampled_from([1, 3, 8, 9, 63, 64, 65, 100]),
    max_origins=st.integers(1, 5),
    idle=st.sampled_from([0.0, 1.0, 5.0]),
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("tick"), st.sampled_from([0.0, 0.5, 1.0, 3.0])),
            st.tuples(st.just("check"), ORIGINS, SEQS),
            st.tuples(st.just("contains"), ORIGINS, SEQS),
            st.tuples(st.just("advance"), ORIGINS, SEQS),
            st.tuples(st.just("missing"), ORIGINS, SEQS, st.integers(-1, 40)),
            st.tuples(st.just("first_missing"), ORIGINS, SEQS, SEQS),
            st.tuples(st.just("digest")),
            st.tuples(st.just("compact")),
        ),
        max_size=120,
    ),
)
def test_dedup_with_idle_matches_model(
    build: str, window: int, max_origins: int, idle: float, ops: list
) -> None:
    """Forgetting waits for ``idle`` seconds unseen; rings come and go with the holes."""
    if build not in BUILDS:
        pytest.skip("compiled _cache not loaded")
    real = BUILDS[build].DedupCache(window, max_origins, idle)
    model = IdleModel(window, max_origins, idle)
    refused = 0
    for op in ops:
        name, args = op[0], op[1:]
        if name == "tick":
            model.now += args[0]
            real.now = model.now
        elif name == "compact":
            rings = real.rings
            assert real.rings == rings - real.compact()  # no change to what is seen
        else:
            _same_answer(real, model, op)
            if real.dropped:  # a refused new origin: check said False
                assert name == "check" and not real.contains(args[0], args[1])
                real.dropped = False
                refused += 1
        if build == "pure":
            _check_rings(real)
    assert real.refused >= refused
    if idle == 0.0:
        assert real.refused == 0


def test_idle_origin_is_forgotten_live_one_is_not(mod: ModuleType) -> None:
    d = mod.DedupCache(64, 3, idle=10.0)
    for t, o in ((0.0, 1), (1.0, 2), (2.0, 3)):
        d.now = t
        assert d.check_and_insert(o, 1)
    d.now = 5.0
    assert not d.check_and_insert(4, 1) and d.dropped and d.refused == 1
    d.dropped = False
    assert 4 not in d and all(o in d for o in (1, 2, 3))
    # origin 1 stopped being the most recent at 1.0: idle for 10 s at 11.0
    d.now = 10.9
    assert not d.check_and_insert(4, 1) and d.refused == 2
    d.dropped = False  # the caller clears it
    d.now = 11.0
    assert d.check_and_insert(4, 1)
    assert 1 not in d and d.refused == 2
    # a duplicate keeps an origin alive: 2 is seen again, 3 is the least recent now.
    # 3 was the most recent until 11.0 (a stream's hits are not stamped one by one, so
    # its time is when another origin took its place): idle from then on
    d.now = 11.5
    assert not d.check_and_insert(2, 1) and not d.dropped
    d.now = 20.9
    assert not d.check_and_insert(5, 1) and d.refused == 3
    d.dropped = False
    d.now = 21.0
    assert d.check_and_insert(5, 1)
    assert 3 not in d and 2 in d and 4 in d


def test_each_source_has_a_budget_of_new_origins_under_pressure(mod: ModuleType) -> None:
    d = mod.DedupCache(64, 64, idle=100.0, admit_burst=4, admit_rate=0.5)
    d.source = "a"
    new = sum(d.check_and_insert(o, 1) for o in range(100))
    # free up to half the table, then a burst of 4
    assert new == 32 + 4 and d.throttled == 100 - new and d.refused == 0
    d.source = "b"  # another neighbour has its own budget
    assert sum(d.check_and_insert(o, 1) for o in range(100, 110)) == 4
    d.source = None  # our own origin: never throttled
    assert d.check_and_insert(999, 1)
    d.source = "a"
    d.now = 4.0  # two tokens back
    assert sum(d.check_and_insert(o, 1) for o in range(200, 210)) == 2
    # known origins are never throttled
    assert d.check_and_insert(0, 2) and d.check_and_insert(5, 9)
    assert d.throttled == (100 - 36) + 6 + 8


def test_in_order_streams_need_no_ring(mod: ModuleType) -> None:
    d = mod.DedupCache(4096, 100)
    for o in range(10):
        for s in range(1, 200):
            assert d.check_and_insert(o, s)
    assert d.rings == 0
    assert d.check_and_insert(3, 205)  # a gap: a ring until it is filled
    assert d.rings == 1 and d.missing(3, 205, 10) == [200, 201, 202, 203, 204]
    for s in (201, 203, 200, 204):
        assert d.check_and_insert(3, s) and d.compact() == 0 and d.rings == 1
    assert d.check_and_insert(3, 202)
    # filled: the ring goes at the next housekeeping (a reordering stream keeps it)
    assert d.rings == 1 and d.compact() == 1
    assert d.rings == 0 and d.missing(3, 205, 10) == [] and not d.check_and_insert(3, 202)
    # a lost seq leaves the ring once it falls out of it
    assert d.check_and_insert(4, 201)
    for s in range(202, 200 + 4097):  # the ring covers the 4096 seqs below the high
        d.check_and_insert(4, s)
    assert d.rings == 1 and not d.contains(4, 200)
    d.check_and_insert(4, 200 + 4097)
    assert d.compact() == 1 and d.rings == 0 and d.contains(4, 200)
    # an origin first seen mid-stream has a ring until the digest or catch-up fills it
    assert d.check_and_insert(50, 10) and d.rings == 1
    d.advance(50, 9)
    assert d.rings == 0 and d.missing(50, 10, 10) == []


def test_flood_memory_is_bounded(mod: ModuleType) -> None:
    """Ten times the table's worth of fresh origins (mid-stream: each needs a ring) from
    one source: the table and its rings stay bounded and live origins stay tracked."""
    import tracemalloc

    window, cap = 4096, 2048
    d = mod.DedupCache(window, cap, idle=150.0, admit_burst=cap // 8, admit_rate=cap / 8 / 150)
    d.source = "honest"
    for o in range(100):
        d.check_and_insert(o, 1)
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        d.source = "flooder"
        t = 0.0
        for o in range(1000, 1000 + 10 * cap):
            t += 0.005  # the flood lasts 102 s: honest origins are not idle for long enough
            d.now = t
            d.check_and_insert(o << 20, 7)
        gc.collect()
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(d) <= cap and d.rings <= cap
    assert all(o in d and d.contains(o, 1) for o in range(100))
    assert d.throttled + d.refused >= 10 * cap - cap
    per_origin = window // 8 + 400
    assert used - base <= cap * per_origin, (used - base, cap * per_origin)


# -- PayloadStore ---------------------------------------------------------------------


def test_store_basics(mod: ModuleType) -> None:
    s = mod.PayloadStore(10, 1000, 60.0)
    s.put(1, 1, 0, b"hello", 0.0)
    s.put(1, 1, 5, b"other", 1.0)  # same id: no-op
    assert s.get(1, 1) == (0, b"hello")
    assert s.get(1, 2) is None and s.get(2, 1) is None
    assert len(s) == 1 and s.nbytes == 5
    assert (1, 1) in s


def test_compiled_store_entries_are_outside_the_cyclic_gc() -> None:
    # A full collection walks every tracked object: with each stored payload tracked, a
    # node holding 150,000 of them stalled for tens of milliseconds a few times a second
    # at full speed, and the stalls set off graft storms (loopback cluster at max).
    if "compiled" not in BUILDS:
        pytest.skip("compiled _cache not loaded")
    s = BUILDS["compiled"].PayloadStore(10, 1000, 60.0)
    s.put(1, 1, 0, b"hello", 0.0)
    assert not any(type(o).__name__ == "_Stored" for o in gc.get_objects())
    assert s.get(1, 1) == (0, b"hello")
    # C fields: the full u64 origin and seq range still round-trips
    s.put(2**64 - 1, 2**63 - 1, 3, b"x", 0.0)
    assert s.get(2**64 - 1, 2**63 - 1) == (3, b"x")


def _tracked_lists_of_at_least(n: int) -> list[int]:
    return [len(o) for o in gc.get_objects() if type(o) is list and len(o) >= n]


@pytest.mark.skipif(loaded_cache._gc_untrack is None, reason="no PyObject_GC_UnTrack here")
def test_store_lists_are_outside_the_cyclic_gc(mod: ModuleType) -> None:
    # The FIFO and the per-origin slot lists grow to max_messages entries; a full
    # collection would walk each one. They stay untracked through appends, evictions,
    # compactions and an origin's list restarting after a drain.
    n = 5_000
    before = _tracked_lists_of_at_least(n)
    s = mod.PayloadStore(3 * n, 1 << 30, 60.0)
    for seq in range(1, 4 * n + 1):
        s.put(7, seq, 1, b"p", 0.0)
    for seq in range(1, n + 1, 2):  # a second origin, with gaps
        s.put(8, seq, 1, b"q", 0.0)
    assert len(s) == 3 * n and s.get(7, 4 * n) == (1, b"p")
    assert _tracked_lists_of_at_least(n) == before
    assert s.expire(61.0) == 3 * n  # everything drained: the lists restart empty
    s.put(7, 10 * n, 1, b"r", 61.0)
    assert s.get(7, 10 * n) == (1, b"r")
    assert _tracked_lists_of_at_least(n) == before


def test_store_count_bound(mod: ModuleType) -> None:
    s = mod.PayloadStore(3, 1000, 60.0)
    for i in range(1, 6):
        s.put(7, i, i, b"ab", float(i))
    assert len(s) == 3 and s.nbytes == 6
    assert [s.get(7, i) for i in range(1, 6)] == [None, None, (3, b"ab"), (4, b"ab"), (5, b"ab")]


def test_store_byte_bound(mod: ModuleType) -> None:
    s = mod.PayloadStore(100, 10, 60.0)
    s.put(1, 1, 0, b"aaaa", 0.0)
    s.put(1, 2, 0, b"bbbb", 0.0)
    s.put(1, 3, 0, b"cccccc", 0.0)  # needs 6: evicts the two oldest... only as needed
    assert s.get(1, 1) is None and s.get(1, 2) == (0, b"bbbb") and s.nbytes == 10
    s.put(1, 4, 0, b"x" * 11, 0.0)  # larger than the whole bound: not stored
    assert s.get(1, 4) is None and len(s) == 2 and s.nbytes == 10
    s.put(1, 5, 0, b"y" * 10, 0.0)
    assert len(s) == 1 and s.nbytes == 10 and s.get(1, 5) == (0, b"y" * 10)


def test_store_age_bound(mod: ModuleType) -> None:
    s = mod.PayloadStore(100, 1000, 5.0)
    for i in range(5):
        s.put(1, i + 1, 0, b"p", float(i))
    assert len(s) == 5
    assert s.expire(7.0) == 2  # inserted at 0 and 1 are older than 5 s
    assert len(s) == 3 and s.nbytes == 3
    assert s.get(1, 2) is None and s.get(1, 3) == (0, b"p")
    assert s.expire(7.0) == 0
    s.put(2, 1, 0, b"q", 9.0)  # a put also drops what has aged out (inserted at 2 and 3)
    assert len(s) == 2 and s.get(1, 4) is None and s.get(1, 5) == (0, b"p")
    assert s.expire(1e9) == 2 and len(s) == 0 and s.nbytes == 0


def test_store_zero_bounds(mod: ModuleType) -> None:
    s = mod.PayloadStore(0, 1000, 5.0)
    s.put(1, 1, 0, b"p", 0.0)
    assert len(s) == 0
    s = mod.PayloadStore(10, 0, 5.0)
    s.put(1, 1, 0, b"p", 0.0)
    assert len(s) == 0 and s.nbytes == 0


def test_store_long_run(mod: ModuleType) -> None:
    """Many evictions: the FIFO head is compacted many times; bounds and lookups hold."""
    s = mod.PayloadStore(100, 10_000, 50.0)
    for i in range(1, 20_001):
        s.put(i % 7, i, i % 5, bytes(i % 90), i * 0.01)
        assert len(s) <= 100 and s.nbytes <= 10_000
    present = [i for i in range(1, 20_001) if s.get(i % 7, i) is not None]
    assert present == list(range(20_001 - len(present), 20_001))  # the newest survive
    assert all(s.get(i % 7, i) == (i % 5, bytes(i % 90)) for i in present)
    assert s.nbytes == sum(i % 90 for i in present)
    assert s.expire(200.0 + 50.0 - 0.5) == len(present) - sum(
        1 for i in present if i * 0.01 >= 199.5
    )
    left = len(s)
    assert left > 0 and s.expire(1e9) == left
    assert len(s) == 0 and s.nbytes == 0
    s.put(1, 1, 0, b"again", 1e9)
    assert s.get(1, 1) == (0, b"again")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_store_streams_with_gaps_and_late_payloads(mod: ModuleType, seed: int) -> None:
    # the shapes a relay stores: each origin's stream in order, with gaps (messages not
    # stored yet), late payloads (grafted, fetched) and far jumps, checked against a dict
    rng = random.Random(seed)
    cap = 1500
    s = mod.PayloadStore(cap, 1 << 30, 1e9)
    model: OrderedDict[tuple[int, int], tuple[int, bytes]] = OrderedDict()
    nxt = {1: 1, 2: 1, 3: 10**12}
    skipped: list[tuple[int, int]] = []
    for k in range(20_000):
        o = rng.choice((1, 1, 1, 2, 3))
        r = rng.random()
        if r < 0.05 and skipped:
            key = skipped.pop(rng.randrange(len(skipped)))  # a late one
        else:
            gap = rng.choice((0,) * 20 + (1, 2, 8, 9, 500))
            for g in range(gap):
                skipped.append((o, nxt[o] + g))
            key = (o, nxt[o] + gap)
            nxt[o] += gap + 1
        payload = b"%d" % k
        s.put(key[0], key[1], k % 7, payload, float(k))
        if key not in model:
            if len(model) >= cap:
                model.popitem(last=False)
            model[key] = (k % 7, payload)
        if k % 97 == 0:
            skipped = skipped[-3000:]
            for key in rng.sample(list(model), min(20, len(model))) + skipped[-20:]:
                assert s.get(*key) == model.get(key), key
        assert len(s) == len(model)
    for key, value in model.items():
        assert s.get(*key) == value
    assert s.expire(2e9) == len(model) and len(s) == 0 and s.nbytes == 0


def test_store_odd_seqs(mod: ModuleType) -> None:
    s = mod.PayloadStore(10, 1000, 60.0)
    for seq in (5, 0, -3, 4, 6, 2**63 - 1, 3):
        s.put(1, seq, 0, b"%d" % seq, 0.0)
    for seq in (5, 0, -3, 4, 6, 2**63 - 1, 3):
        assert s.get(1, seq) == (0, b"%d" % seq)
    assert s.get(1, 7) is None and s.get(1, -4) is None and s.get(1, 2**70) is None
    assert s.get(-1, 5) is None and s.get("x", 5) is None and ("x", 5) not in s
    assert s.expire(1e9) == 7 and len(s) == 0


STORE_OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("put"),
            st.integers(0, 2),
            st.integers(0, 6),
            st.integers(0, 3),
            st.binary(max_size=12),
            st.floats(0, 4),
        ),
        st.tuples(st.just("get"), st.integers(0, 2), st.integers(0, 6)),
        st.tuples(st.just("expire"), st.floats(0, 4)),
    ),
    max_size=80,
)


@pytest.mark.parametrize("build", ["compiled", "pure"])
@settings(max_examples=300, deadline=None)
@given(
    max_messages=st.integers(0, 6),
    max_bytes=st.integers(0, 30),
    max_age=st.sampled_from([0.0, 0.5, 2.0, float("inf")]),
    ops=STORE_OPS,
)
def test_store_matches_model(
    build: str, max_messages: int, max_bytes: int, max_age: float, ops: list
) -> None:
    if build not in BUILDS:
        pytest.skip("compiled _cache not loaded")
    real = BUILDS[build].PayloadStore(max_messages, max_bytes, max_age)
    model: OrderedDict[tuple[int, int], tuple[int, bytes, float]] = OrderedDict()
    clock = 0.0

    def model_expire(now: float) -> int:
        old = [k for k, v in model.items() if v[2] < now - max_age]
        for k in old:
            del model[k]
        return len(old)

    for op in ops:
        if op[0] == "put":
            _, origin, seq, hops, payload, dt = op
            clock += dt  # time never goes back
            real.put(origin, seq, hops, payload, clock)
            key = (origin, seq)
            if key not in model and len(payload) <= max_bytes and max_messages > 0:
                model_expire(clock)
                while len(model) >= max_messages or (
                    sum(len(v[1]) for v in model.values()) + len(payload) > max_bytes
                ):
                    model.popitem(last=False)
                model[key] = (hops, payload, clock)
        elif op[0] == "get":
            want = model.get((op[1], op[2]))
            assert real.get(op[1], op[2]) == (None if want is None else want[:2])
        else:
            clock += op[1]
            assert real.expire(clock) == model_expire(clock)
        assert len(real) == len(model)
        assert real.nbytes == sum(len(v[1]) for v in model.values())
        assert real.nbytes <= max_bytes and len(real) <= max_messages


def test_a_source_budget_refills_at_its_rate_up_to_its_burst(mod: ModuleType) -> None:
    b = mod.SourceBudgets(3, 2.0)
    assert [b.take("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert b.take("a", 0.5) and not b.take("a", 0.5)  # one token per half second
    # a long pause refills the bucket to its burst, not beyond
    assert sum(b.take("a", 100.0) for _ in range(10)) == 3


def test_source_budgets_keep_a_bounded_number_of_buckets(mod: ModuleType) -> None:
    cap = 1024  # _MAX_SOURCES
    b = mod.SourceBudgets(2, 1.0)
    for k in range(cap):
        assert b.take(k, 0.0)
    # every bucket is still refilling: a new source gets no budget
    assert not b.take("late", 0.5)
    # once refilled they are forgotten for the new source
    assert b.take("late", 2.0) and b.take("late", 2.0) and not b.take("late", 2.0)
