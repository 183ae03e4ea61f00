"""PeerSet and EagerLazy: hand-written cases and a model test, both builds.

Each test runs against the module the package loaded (compiled unless
``GOSSIPFAST_NO_EXTENSIONS=1``) and against the ``.py`` source loaded beside it.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.buildkit import builds, pick

BUILDS = builds("_peers")
PURE = BUILDS["pure"]


@pytest.fixture(params=["compiled", "pure"])
def mod(request: pytest.FixtureRequest) -> ModuleType:
    return pick(BUILDS, request.param, "_peers")


# -- PeerSet --------------------------------------------------------------------------


def test_add_discard_contains(mod: ModuleType) -> None:
    s = mod.PeerSet(0)
    assert s.add("a:1") and s.add("b:1") and s.add("c:1")
    assert not s.add("a:1")
    assert len(s) == 3 and "b:1" in s and "z:1" not in s
    assert s.discard("a:1") and not s.discard("a:1")
    assert len(s) == 2 and "a:1" not in s
    assert not s.is_full()
    s.clear()
    assert len(s) == 0 and s.to_list() == []


def test_capacity(mod: ModuleType) -> None:
    s = mod.PeerSet(2)
    assert s.capacity == 2
    assert s.add("a") and s.add("b")
    assert s.is_full()
    assert not s.add("c") and "c" not in s
    s.discard("a")
    assert not s.is_full() and s.add("c")
    with pytest.raises(ValueError):
        mod.PeerSet(-1)


def test_insertion_order_survives_removal(mod: ModuleType) -> None:
    s = mod.PeerSet(0)
    for p in "abcdef":
        s.add(p)
    s.discard("b")  # swap-remove moves "f" into b's slot internally
    s.discard("d")
    s.add("g")
    s.add("b")
    assert list(s) == ["a", "c", "e", "f", "g", "b"] == s.to_list()


def test_random_empty_and_excluded(mod: ModuleType) -> None:
    rng = random.Random(1)
    s = mod.PeerSet(0)
    assert s.random(rng) is None and s.pop_random(rng) is None
    assert s.sample(rng, 3) == []
    for p in "abc":
        s.add(p)
    assert s.random(rng, {"a", "b", "c"}) is None
    assert s.sample(rng, 3, {"a", "b", "c"}) == []
    assert s.pop_random(rng, {"a", "b", "c"}) is None and len(s) == 3
    for _ in range(50):
        assert s.random(rng, {"a", "b"}) == "c"
    other = mod.PeerSet(0)
    other.add("a")
    other.add("c")
    for _ in range(50):
        assert s.random(rng, other) == "b"  # a PeerSet works as the exclude container
    assert s.random(rng, ["a", "b"]) == "c"


def test_sample(mod: ModuleType) -> None:
    rng = random.Random(2)
    s = mod.PeerSet(0)
    for i in range(10):
        s.add(f"p{i}")
    for k in range(-1, 13):
        got = s.sample(rng, k, {"p0"})
        assert len(got) == max(0, min(k, 9))
        assert len(set(got)) == len(got) and "p0" not in got
        assert all(p in s for p in got)
    assert sorted(s.sample(rng, 100)) == sorted(s.to_list())


def test_pop_random(mod: ModuleType) -> None:
    rng = random.Random(3)
    s = mod.PeerSet(0)
    for p in "abcde":
        s.add(p)
    popped = [s.pop_random(rng, {"c"}) for _ in range(4)]
    assert sorted(popped) == ["a", "b", "d", "e"]
    assert s.to_list() == ["c"]


def _chi2_ok(counts: Counter, keys: list[str], draws: int) -> bool:
    """Chi-square goodness of fit to uniform, far tail only (p < 1e-6 fails)."""
    expect = draws / len(keys)
    chi2 = sum((counts[k] - expect) ** 2 / expect for k in keys)
    dof = len(keys) - 1
    # Wilson-Hilferty: chi2/dof is roughly normal(1 - 2/(9 dof), 2/(9 dof)); z = 5.
    z = ((chi2 / dof) ** (1 / 3) - (1 - 2 / (9 * dof))) / math.sqrt(2 / (9 * dof))
    return z < 5.0


@pytest.mark.parametrize("exclude", [None, {"p3"}, {f"p{i}" for i in range(15)}])
def test_random_is_uniform(mod: ModuleType, exclude: set[str] | None) -> None:
    rng = random.Random(4)
    s = mod.PeerSet(0)
    for i in range(20):
        s.add(f"p{i}")
    s.discard("p7")
    allowed = [p for p in s if exclude is None or p not in exclude]
    draws = 20_000
    counts = Counter(s.random(rng, exclude) for _ in range(draws))
    assert set(counts) == set(allowed)
    assert _chi2_ok(counts, allowed, draws)


@pytest.mark.parametrize("exclude", [None, {"p3"}, {f"p{i}" for i in range(5)}])
def test_sample_is_uniform(mod: ModuleType, exclude: set[str] | None) -> None:
    rng = random.Random(5)
    s = mod.PeerSet(0)
    for i in range(10):
        s.add(f"p{i}")
    allowed = [p for p in s if exclude is None or p not in exclude]
    counts: Counter = Counter()
    firsts: Counter = Counter()
    rounds = 10_000
    for _ in range(rounds):
        got = s.sample(rng, 3, exclude)
        counts.update(got)
        firsts[got[0]] += 1
    assert set(counts) == set(allowed)
    assert _chi2_ok(counts, allowed, rounds * 3)
    assert _chi2_ok(firsts, allowed, rounds)  # the order is random too


def test_same_seed_same_choices_in_both_builds() -> None:
    if "compiled" not in BUILDS:
        pytest.skip("compiled _peers not loaded")
    runs = []
    for m in (BUILDS["compiled"], BUILDS["pure"]):
        rng = random.Random(99)
        s = m.PeerSet(0)
        for i in range(30):
            s.add(f"p{i}")
        out = [s.random(rng), s.random(rng, {"p1", "p2"}), s.sample(rng, 5, {"p3"})]
        out.append([s.pop_random(rng) for _ in range(5)])
        out.append(s.to_list())
        runs.append(out)
    assert runs[0] == runs[1]


# -- EagerLazy ------------------------------------------------------------------------


def test_eager_lazy(mod: ModuleType) -> None:
    el = mod.EagerLazy()
    el.add("a")
    el.add("b")
    assert el.is_eager("a") and el.eager.to_list() == ["a", "b"] and len(el.lazy) == 0
    assert el.to_lazy("a") and not el.to_lazy("a")
    assert not el.is_eager("a") and "a" in el.lazy and "a" in el
    el.add("a")  # already known (lazy): stays lazy, never in both
    assert "a" not in el.eager and "a" in el.lazy
    assert el.to_eager("a") and not el.to_eager("a") and el.is_eager("a")
    assert not el.to_eager("zz") and not el.to_lazy("zz") and "zz" not in el
    el.remove("a")
    el.remove("a")
    assert "a" not in el and len(el) == 1
    el.to_lazy("b")
    el.remove("b")
    assert len(el) == 0


# -- model tests ----------------------------------------------------------------------

PEERS = st.sampled_from([f"10.0.0.{i}:7000" for i in range(8)])
PEERSET_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), PEERS),
        st.tuples(st.just("discard"), PEERS),
        st.tuples(st.just("random"), st.frozensets(PEERS, max_size=4)),
        st.tuples(st.just("sample"), st.integers(-1, 9), st.frozensets(PEERS, max_size=4)),
        st.tuples(st.just("pop"), st.frozensets(PEERS, max_size=4)),
    ),
    max_size=100,
)


@pytest.mark.parametrize("build", ["compiled", "pure"])
@settings(max_examples=300, deadline=None)
@given(capacity=st.integers(0, 6), seed=st.integers(0, 2**32), ops=PEERSET_OPS)
def test_peerset_matches_model(build: str, capacity: int, seed: int, ops: list) -> None:
    if build not in BUILDS:
        pytest.skip("compiled _peers not loaded")
    s = BUILDS[build].PeerSet(capacity)
    rng = random.Random(seed)
    model: list[str] = []  # insertion-ordered
    for op in ops:
        if op[0] == "add":
            ok = op[1] not in model and (capacity == 0 or len(model) < capacity)
            assert s.add(op[1]) == ok
            if ok:
                model.append(op[1])
        elif op[0] == "discard":
            assert s.discard(op[1]) == (op[1] in model)
            if op[1] in model:
                model.remove(op[1])
        elif op[0] == "random":
            got = s.random(rng, op[1])
            allowed = [p for p in model if p not in op[1]]
            assert got in allowed if allowed else got is None
        elif op[0] == "sample":
            got = s.sample(rng, op[1], op[2])
            allowed = [p for p in model if p not in op[2]]
            assert len(got) == max(0, min(op[1], len(allowed)))
            assert len(set(got)) == len(got) and set(got) <= set(allowed)
        else:
            got = s.pop_random(rng, op[1])
            allowed = [p for p in model if p not in op[1]]
            if allowed:
                assert got in allowed
                model.remove(got)
            else:
                assert got is None
        assert s.to_list() == model == list(s)
        assert len(s) == len(model)
        assert s.is_full() == (capacity > 0 and len(model) >= capacity)
        assert all(p in s for p in model)


EL_OPS = st.lists(
    st.tuples(st.sampled_from(["add", "remove", "to_lazy", "to_eager"]), PEERS), max_size=80
)


@pytest.mark.parametrize("build", ["compiled", "pure"])
@settings(max_examples=200, deadline=None)
@given(ops=EL_OPS)
def test_eager_lazy_matches_model(build: str, ops: list) -> None:
    if build not in BUILDS:
        pytest.skip("compiled _peers not loaded")
    el = BUILDS[build].EagerLazy()
    where: dict[str, str] = {}
    for name, peer in ops:
        if name == "add":
            el.add(peer)
            where.setdefault(peer, "eager")
        elif name == "remove":
            el.remove(peer)
            where.pop(peer, None)
        elif name == "to_lazy":
            assert el.to_lazy(peer) == (where.get(peer) == "eager")
            if peer in where:
                where[peer] = "lazy"
        else:
            assert el.to_eager(peer) == (where.get(peer) == "lazy")
            if peer in where:
                where[peer] = "eager"
        eager, lazy = set(el.eager), set(el.lazy)
        assert not eager & lazy  # never in both
        assert eager == {p for p, w in where.items() if w == "eager"}
        assert lazy == {p for p, w in where.items() if w == "lazy"}
        assert all(el.is_eager(p) == (w == "eager") for p, w in where.items())
        assert len(el) == len(where)
