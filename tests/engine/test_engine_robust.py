"""Hostile input never raises out of the engine; it is ignored and counted."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.enginekit import ME, engine, make_active, peer

from gossipfast.wire import (
    Digest,
    Disconnect,
    ForwardJoin,
    Gossip,
    Graft,
    Hello,
    IHave,
    Join,
    Neighbor,
    NeighborReply,
    Ping,
    Prune,
    Shuffle,
    ShuffleReply,
    Want,
)

BIG = 1 << 70

HOSTILE = [
    Gossip(-1, 1, 0, b"x"),
    Gossip(BIG, 1, 0, b"x"),
    Gossip(5, 0, 0, b"x"),
    Gossip(5, -3, 0, b"x"),
    Gossip(5, BIG, 0, b"x"),
    Gossip(5, 1, -1, b"x"),
    Gossip(5, 1, BIG, b"x"),
    Gossip("x", 1, 0, b"x"),  # type: ignore[arg-type]
    IHave([1, 2, 2]),
    IHave([1, 2, 2, 3, "a", None, 4, 0]),  # type: ignore[list-item]
    IHave([-1, 1, 1, 0, 5, BIG, BIG, 0, 5, 1, 1, -7, 5, 3, 2, 0, 5, 1, BIG, 0]),
    IHave(None),  # type: ignore[arg-type]
    Graft([1]),
    Graft(["a", "b"]),  # type: ignore[list-item]
    Graft([BIG, BIG]),
    Digest([1]),
    Digest([5, -1, -5, 3, 5, BIG]),
    Want([5, 10, 1, 5, -1, 3, 5, 1]),
    Want([5, 1, BIG]),
    ForwardJoin(42, 3),  # type: ignore[arg-type]
    ForwardJoin("x" * 10_000, 3),
    ForwardJoin(peer(5), -1),
    ForwardJoin(peer(5), True),  # type: ignore[arg-type]
    ForwardJoin(ME, 0),
    Shuffle(peer(5), -1, []),
    Shuffle(7, 1, []),  # type: ignore[arg-type]
    Shuffle(peer(5), 0, [1, None, "y" * 1000, ME, peer(6)] * 1000),  # type: ignore[list-item]
    Shuffle(peer(5), BIG, "notalist"),  # type: ignore[arg-type]
    ShuffleReply(["a" * 300, 5, ME]),  # type: ignore[list-item]
    ShuffleReply(None),  # type: ignore[arg-type]
    Neighbor("yes"),  # type: ignore[arg-type]
    NeighborReply("yes"),  # type: ignore[arg-type]
    Disconnect("maybe"),  # type: ignore[arg-type]
    Hello(1, "c", "n", "a", 1),
    Ping(1),
    None,
    42,
    "garbage",
]


@pytest.mark.parametrize("msg", HOSTILE, ids=lambda m: type(m).__name__)
def test_hostile_message_never_raises(msg: object) -> None:
    e = engine(active_view_size=3, passive_view_size=5)
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(1), [msg], 1.0)
    e.on_frame(peer(9), [msg, msg], 1.0)  # and from a stranger
    e.drain()
    e.tick(100.0)
    act, pas = set(e.active_view), set(e.passive_view)
    assert ME not in act | pas and not act & pas
    assert len(act) <= 3 and len(pas) <= 5
    assert all(type(p) is str and len(p) <= 255 for p in act | pas)
    assert e.drain()[2] == []


def test_bad_messages_are_counted() -> None:
    e = engine()
    make_active(e, [peer(1)])
    e.on_frame(peer(1), HOSTILE, 1.0)
    assert e.stats()["bad_messages"] >= 25


def test_bad_peer_or_batch_is_rejected() -> None:
    e = engine()
    e.on_frame(ME, [Join()], 0.0)
    e.on_frame(123, [Join()], 0.0)  # type: ignore[arg-type]
    e.on_frame(peer(1), (Join(),), 0.0)  # type: ignore[arg-type]
    e.on_frame("z" * 1000, [Join()], 0.0)
    assert e.active_view == ()
    assert e.stats()["bad_messages"] == 4


def test_huge_ttl_is_clamped() -> None:
    e = engine(active_random_walk_length=6, shuffle_ttl=6)
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(1), [ForwardJoin(peer(9), BIG)], 1.0)
    e.on_frame(peer(1), [Shuffle(peer(8), BIG, [])], 1.0)
    outbox, _, _, _ = e.drain()
    assert outbox[peer(2)] == [ForwardJoin(peer(9), 5), Shuffle(peer(8), 5, [])]


def test_ihave_flood_is_bounded() -> None:
    e = engine()
    make_active(e, [peer(1)])
    runs = []
    for s in range(1, 200_001):
        runs += (s, 1, 1, 0)
    e.on_frame(peer(1), [IHave(runs)], 1.0)
    e.tick(2.0)
    # at most as many unseen ids looked at as one IHave of ours names
    assert e.stats()["missing"] == 1024
    assert e.stats()["bad_messages"] >= 1


def test_one_long_run_costs_no_more_than_an_honest_announcement() -> None:
    # 16 bytes on the wire name 2**62 seqs: each unseen one would be an entry and a Graft
    e = engine()
    make_active(e, [peer(1)])
    e.on_frame(peer(1), [IHave([7, 1, 1 << 62, 0])], 1.0)
    e.tick(1.5)
    assert e.stats()["missing"] == 1024 and e.stats()["bad_messages"] == 1


def _struct_strategy() -> st.SearchStrategy:
    ints = st.one_of(st.integers(-5, 40), st.integers(min_value=-(1 << 65), max_value=1 << 65))
    addrs = st.one_of(st.sampled_from([peer(i) for i in range(8)] + [ME]), st.text(max_size=5))
    any_ = st.one_of(ints, addrs, st.none(), st.booleans(), st.binary(max_size=4))
    return st.one_of(
        st.builds(Join),
        st.builds(ForwardJoin, any_, any_),
        st.builds(Neighbor, any_),
        st.builds(NeighborReply, any_),
        st.builds(Disconnect, any_),
        st.builds(Shuffle, any_, any_, st.lists(any_, max_size=12)),
        st.builds(ShuffleReply, st.lists(any_, max_size=12)),
        st.builds(Gossip, ints, ints, ints, st.binary(max_size=4)),
        st.builds(IHave, st.lists(ints, max_size=12)),
        st.builds(Graft, st.lists(ints, max_size=8)),
        st.builds(Prune),
        st.builds(Digest, st.lists(ints, max_size=8)),
        st.builds(Want, st.lists(ints, max_size=9)),
        any_,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from([peer(i) for i in range(6)]),
            st.lists(_struct_strategy(), min_size=1, max_size=4),
            st.floats(0, 3),
        ),
        max_size=25,
    )
)
def test_fuzzed_frames_never_raise_and_keep_invariants(
    frames: list[tuple[str, list, float]],
) -> None:
    e = engine(active_view_size=3, passive_view_size=4, shuffle_interval=1.0)
    e.join([peer(0)], 0.0)
    now = 0.0
    delivered = set()
    for p, msgs, dt in frames:
        now += dt
        e.on_frame(p, msgs, now)
        e.tick(now)
        _, _, deliveries, _ = e.drain()
        for o, s, _h, _p in deliveries:
            assert (o, s) not in delivered
            delivered.add((o, s))
        act, pas = set(e.active_view), set(e.passive_view)
        assert ME not in act | pas and not act & pas
        assert len(act) <= 3 and len(pas) <= 4
        assert set(e.eager_peers) | set(e.lazy_peers) == act
