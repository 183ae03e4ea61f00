"""Plumtree state transitions: eager push, prune, lazy IHave, graft, optimisation, FIFO."""

from __future__ import annotations

import random

import pytest
from support.enginekit import engine, make_active, peer, sent

from gossipfast.wire import Gossip, Graft, IHave, Prune, Want


def test_broadcast_pushes_to_eager_peers_and_is_not_delivered_to_self() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2)])
    o, s = e.broadcast(b"hello", 1.0)
    assert (o, s) == (e.origin, 1)
    outbox, _, deliveries, _ = e.drain()
    assert deliveries == []
    assert sent(outbox, Gossip) == {
        peer(1): [Gossip(o, 1, 0, b"hello")],
        peer(2): [Gossip(o, 1, 0, b"hello")],
    }
    assert e.broadcast(b"again", 1.1) == (o, 2)
    assert e.stats()["broadcasts"] == 2


def test_broadcast_takes_any_bytes_like_payload_and_stores_bytes() -> None:
    e = engine()
    make_active(e, [peer(1)])
    ids = e.broadcast_many([bytearray(b"ab"), memoryview(b"cd")], 1.0)
    ids.append(e.broadcast(bytearray(b"ef"), 1.0))
    assert [s for _, s in ids] == [1, 2, 3]
    assert [g.payload for g in sent(e.drain()[0], Gossip)[peer(1)]] == [b"ab", b"cd", b"ef"]
    # a graft is answered from the store, as bytes
    e.on_frame(peer(1), [Graft([e.origin, 2])], 1.1)
    assert sent(e.drain()[0], Gossip) == {peer(1): [Gossip(e.origin, 2, 0, b"cd")]}


def test_new_gossip_is_delivered_once_and_forwarded_to_other_eager_peers() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2), peer(3)])
    e.on_frame(peer(1), [Gossip(77, 1, 4, b"p")], 1.0)
    outbox, _, deliveries, _ = e.drain()
    assert deliveries == [(77, 1, 5, b"p")]
    assert sent(outbox, Gossip) == {
        peer(2): [Gossip(77, 1, 5, b"p")],
        peer(3): [Gossip(77, 1, 5, b"p")],
    }
    st = e.stats()
    assert st["delivered"] == 1 and st["received_gossip"] == 1 and st["sent_gossip"] == 2


def test_duplicate_prunes_its_sender_to_lazy() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(1), [Gossip(77, 1, 0, b"p")], 1.0)
    e.drain()
    e.on_frame(peer(2), [Gossip(77, 1, 3, b"p")], 1.0)
    outbox, _, deliveries, _ = e.drain()
    assert deliveries == []
    assert outbox == {peer(2): [Prune([77])]}
    assert e.pt.tree_of(77) == ((peer(1),), (peer(2),))
    assert peer(2) in e.lazy_peers and peer(2) not in e.eager_peers  # the shared tree too
    st = e.stats()
    assert st["duplicates"] == 1 and st["prunes_sent"] == 1


def test_prune_makes_the_sender_lazy_and_ihave_is_batched() -> None:
    e = engine(ihave_interval=0.005, ihave_batch_max=1024)
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(2), [Prune([])], 1.0)
    assert e.lazy_peers == (peer(2),)
    o, _ = e.broadcast(b"a", 1.0)
    e.broadcast(b"b", 1.001)
    outbox, _, _, _ = e.drain()
    assert set(sent(outbox, Gossip)) == {peer(1)}
    assert sent(outbox, IHave) == {}
    assert e.next_deadline() is not None and e.next_deadline() <= 1.0051
    e.tick(1.006)
    outbox, _, _, _ = e.drain()
    assert outbox == {peer(2): [IHave([o, 1, 2, 0])]}  # one run: seqs 1 to 2
    assert e.stats()["ihaves_sent"] == 1


def test_announcements_of_interleaved_streams_go_as_one_run_per_stream() -> None:
    e = engine(ihave_interval=0.005)
    make_active(e, [peer(1), peer(2), peer(3)])
    e.on_frame(peer(3), [Prune([])], 1.0)
    # two origins interleaved, then 7 of origin 8 at another hop count, then a gap
    frame = [Gossip(o, s, 2, b"x") for s in range(1, 6) for o in (8, 9)]
    frame += [Gossip(8, 6, 4, b"x"), Gossip(8, 9, 2, b"x")]
    e.on_frame(peer(1), frame, 1.0)
    e.tick(1.006)
    assert sent(e.drain()[0], IHave) == {
        peer(3): [IHave([8, 1, 5, 3, 9, 1, 5, 3, 8, 6, 6, 5, 8, 9, 9, 3])]
    }


@pytest.mark.parametrize("seed", range(40))
def test_runs_name_exactly_the_announced_ids(seed: int) -> None:
    # streams of three origins, mostly in order, some seqs ahead or behind, hop counts
    # that change, two lazy peers, batches cut at random sizes: expanded, the runs sent
    # are the announcements made, each once, to the peer it was made for
    rng = random.Random(seed)
    e = engine(ihave_interval=10.0, ihave_batch_max=rng.choice([3, 50, 1024]))
    pt = e.pt
    made = []
    nxt = {o: rng.randrange(1, 100) for o in (5, 6, 7)}
    for _ in range(rng.randrange(1, 400)):
        o = rng.choice((5, 5, 6, 7))
        r = rng.random()
        if r < 0.8:
            s = nxt[o]
        elif r < 0.9:
            s = nxt[o] + rng.randrange(1, 5)
        else:
            s = max(1, nxt[o] - rng.randrange(1, 5))
        nxt[o] = max(nxt[o], s + 1)
        p = rng.choice((peer(1), peer(2)))
        h = rng.choice((1, 1, 1, 2))
        pt.ihaves.announce(p, o, s, h, 1.0)
        made.append((p, o, s, h))
    pt.ihaves.flush()
    got = []
    for p, msgs in e.drain()[0].items():
        for m in msgs:
            for i in range(0, len(m.runs), 4):
                o, first, last, h = m.runs[i : i + 4]
                got += [(p, o, s, h) for s in range(first, last + 1)]
    assert sorted(got) == sorted(made)


def test_ihave_batches_are_capped() -> None:
    e = engine(ihave_interval=10.0, ihave_batch_max=2)
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(2), [Prune([])], 1.0)
    for k in range(5):
        e.broadcast(b"%d" % k, 1.0)
    outbox, _, _, _ = e.drain()
    ihaves = sent(outbox, IHave)[peer(2)]
    o = e.origin
    assert ihaves == [IHave([o, 1, 2, 0]), IHave([o, 3, 4, 0])]  # 2 full batches of 2 ids
    e.tick(11.0)
    assert sent(e.drain()[0], IHave)[peer(2)] == [IHave([o, 5, 5, 0])]  # the 5th waited


def test_ihave_interval_zero_sends_at_once() -> None:
    e = engine(ihave_interval=0)
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(2), [Prune([])], 1.0)
    e.on_frame(peer(1), [Gossip(9, 1, 0, b"x")], 1.0)
    outbox, _, _, _ = e.drain()
    assert sent(outbox, IHave) == {peer(2): [IHave([9, 1, 1, 1])]}


def test_ihave_of_missing_message_grafts_first_then_next_announcer() -> None:
    e = engine(graft_timeout_1=0.08, graft_timeout_2=0.04)
    make_active(e, [peer(1), peer(2), peer(3)])
    e.on_frame(peer(1), [Prune([])], 1.0)
    e.on_frame(peer(2), [Prune([])], 1.0)
    e.on_frame(peer(1), [IHave([55, 7, 7, 2])], 1.0)
    e.on_frame(peer(2), [IHave([55, 7, 7, 1])], 1.01)
    e.on_frame(peer(2), [IHave([55, 7, 7, 1])], 1.02)  # repeated announcer counted once
    assert e.drain()[0] == {}
    e.tick(1.079)
    assert e.drain()[0] == {}
    e.tick(1.08)
    outbox, _, _, _ = e.drain()
    assert outbox == {peer(1): [Graft([55, 7])]}
    assert peer(1) in e.eager_peers
    e.tick(1.12)
    outbox, _, _, _ = e.drain()
    assert outbox == {peer(2): [Graft([55, 7])]}
    e.tick(1.2)
    assert e.drain()[0] == {}  # nobody left to ask
    assert e.stats()["grafts_sent"] == 2
    # the answer arrives: delivered, counted as recovered
    e.on_frame(peer(2), [Gossip(55, 7, 1, b"late")], 1.3)
    _, _, deliveries, _ = e.drain()
    assert deliveries == [(55, 7, 2, b"late")]
    assert e.stats()["recovered"] == 1


def test_arrival_cancels_the_missing_timer() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(2), [Prune([])], 1.0)
    e.on_frame(peer(2), [IHave([55, 7, 7, 1])], 1.0)
    e.on_frame(peer(1), [Gossip(55, 7, 2, b"x")], 1.01)
    e.drain()
    e.tick(5.0)
    assert sent(e.drain()[0], Graft) == {}
    assert e.stats()["missing"] == 0


def _announced(first: int, last: int) -> list:
    """IHave runs of origin 55's seqs ``first .. last``, 1 hop away, one id per run (as a
    relay announces messages that came out of order)."""
    return [x for s in range(first, last + 1) for x in (55, s, s, 1)]


def test_one_announcement_arms_one_timer_for_all_its_new_ids() -> None:
    # at full rate 4 in 10 messages are announced just before their push, and a timer per
    # id was costly. One timer per announcement still grafts each missing one
    e = engine(graft_timeout_1=0.08, graft_timeout_2=0.04)
    make_active(e, [peer(1), peer(2), peer(3)])
    e.on_frame(peer(2), [Prune([])], 1.0)
    e.on_frame(peer(3), [Prune([])], 1.0)
    armed = len(e.timers)
    ids = _announced(1, 20)  # small: looked at at once
    e.on_frame(peer(2), [IHave(ids)], 1.0)
    assert len(e.timers) == armed + 1
    e.on_frame(peer(3), [IHave(ids)], 1.01)  # a second announcer arms nothing more
    assert len(e.timers) == armed + 1 and e.stats()["missing"] == 20
    # all but seq 7 and 14 are pushed in time
    e.on_frame(peer(1), [Gossip(55, s, 1, b"x") for s in range(1, 21) if s not in (7, 14)], 1.05)
    e.drain()
    assert e.stats()["missing"] == 2
    e.tick(1.079)
    assert e.drain()[0] == {}
    # the tree pushed newer ones: the two are fetched from their first announcer...
    e.tick(1.08)
    assert e.drain()[0] == {peer(2): [Want([55, 7, 7, 55, 14, 14])]}
    e.tick(1.12)  # ...then from the next one, each on a timer of its own
    assert e.drain()[0] == {peer(3): [Want([55, 7, 7, 55, 14, 14])]}


def test_a_run_gets_entries_only_for_its_unseen_ids() -> None:
    e = engine(graft_timeout_1=0.08)
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(2), [Prune([])], 1.0)
    e.on_frame(peer(1), [Gossip(55, s, 1, b"x") for s in range(1, 21) if s not in (7, 8, 19)], 1.0)
    e.drain()
    e.on_frame(peer(2), [IHave([55, 3, 25, 1])], 1.01)  # 7, 8, 19 and 21..25 unseen
    assert e.stats()["missing"] == 8
    e.tick(1.091)
    out = e.drain()[0]
    # the tree pushed newer ones than the gaps: fetched; the newest are grafted
    assert sent(out, Want) == {peer(2): [Want([55, 7, 7, 55, 8, 8, 55, 19, 19])]}
    assert sent(out, Graft) == {peer(2): [Graft([x for s in range(21, 26) for x in (55, s)])]}


def test_a_big_announcement_is_held_for_half_the_graft_delay() -> None:
    # a peer announcing 100 ids in one batch relays at full speed: most of them are pushed
    # to us meanwhile, and for those an entry made and dropped is wasted work
    # (no anti-entropy timer: the next deadline looked at is the held announcement's)
    e = engine(graft_timeout_1=0.08, graft_timeout_2=0.04, anti_entropy_interval=0.0)
    make_active(e, [peer(1), peer(2), peer(3)])
    e.on_frame(peer(2), [Prune([])], 1.0)
    e.on_frame(peer(3), [Prune([])], 1.0)
    ids = _announced(1, 100)
    e.on_frame(peer(2), [IHave(ids)], 1.0)
    assert e.stats()["missing"] == 0 and e.next_deadline() == pytest.approx(1.04, abs=2e-3)
    e.on_frame(peer(1), [Gossip(55, s, 1, b"x") for s in range(1, 101) if s not in (7, 40)], 1.02)
    e.drain()
    e.tick(1.04)  # looked at: entries only for the two still missing...
    assert e.stats()["missing"] == 2
    out = e.drain()[0]
    assert sent(out, Graft) == {} and sent(out, Want) == {}
    e.tick(1.079)
    assert e.drain()[0] == {}
    e.tick(1.08)  # ...and fetched when they would have been without the hold
    assert e.drain()[0] == {peer(2): [Want([55, 7, 7, 55, 40, 40])]}


def test_announcements_held_at_once_are_bounded() -> None:
    # beyond 65,536 held ids the oldest announcement is looked at early, not kept (one
    # announcer here: its own share of missing entries raised to the node's)
    e = engine(graft_timeout_1=0.08, ihave_batch_max=1 << 16, peer_missing_max=1 << 16)
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(2), [Prune([])], 1.0)
    e.on_frame(peer(2), [IHave([55, 1, 40_000, 1])], 1.0)
    assert e.stats()["missing"] == 0
    e.on_frame(peer(2), [IHave([55, 40_001, 80_000, 1])], 1.001)
    assert e.stats()["missing"] == 40_000 and e.pt.intake.ids == 40_000


def test_a_held_announcement_from_a_peer_gone_meanwhile_is_dropped() -> None:
    e = engine(graft_timeout_1=0.08)
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(2), [Prune([])], 1.0)
    e.on_frame(peer(2), [IHave(_announced(1, 100))], 1.0)
    e.on_disconnected(peer(2), "failed", 1.01)
    e.drain()
    e.tick(1.2)
    assert e.stats()["missing"] == 0
    out = e.drain()[0]
    assert sent(out, Graft) == {} and sent(out, Want) == {}


def test_a_held_hostile_announcement_is_counted_not_raised() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(2), [Prune([])], 1.0)
    ids: list = _announced(1, 100)
    ids[41] = "x"  # wrong type inside a batch big enough to be held
    e.on_frame(peer(2), [IHave(ids)], 1.0)
    bad = e.pt.bad
    e.tick(1.5)
    assert e.pt.bad == bad + 1


def test_a_peer_that_announced_a_payload_gets_no_announcement_of_it_back() -> None:
    e = engine(ihave_interval=0)
    make_active(e, [peer(1), peer(2), peer(3)])
    e.on_frame(peer(2), [Prune([])], 1.0)
    e.on_frame(peer(3), [Prune([])], 1.0)
    e.on_frame(peer(2), [IHave([55, 7, 7, 1])], 1.0)
    e.on_frame(peer(1), [Gossip(55, 7, 1, b"x")], 1.01)
    outbox, _, deliveries, _ = e.drain()
    assert [d[:2] for d in deliveries] == [(55, 7)]
    # peer 2 has it (it said so); peer 3 may not
    assert sent(outbox, IHave) == {peer(3): [IHave([55, 7, 7, 2])]}


def test_ihave_of_known_message_is_ignored() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(1), [Gossip(55, 7, 0, b"x")], 1.0)
    e.on_frame(peer(2), [IHave([55, 7, 7, 0])], 1.0)
    e.drain()
    e.tick(5.0)
    assert sent(e.drain()[0], Graft) == {}


def test_graft_makes_sender_eager_and_resends_stored_payloads() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(2), [Prune([])], 1.0)
    o, s = e.broadcast(b"mine", 1.0)
    e.on_frame(peer(1), [Gossip(9, 3, 2, b"theirs")], 1.0)
    e.drain()
    e.on_frame(peer(2), [Graft([o, s, 9, 3, 9, 4])], 1.1)
    outbox, _, _, _ = e.drain()
    assert outbox == {peer(2): [Gossip(o, s, 0, b"mine"), Gossip(9, 3, 3, b"theirs")]}
    assert peer(2) in e.eager_peers


def test_empty_prune_and_graft_concern_every_tree() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(1), [Gossip(5, 1, 0, b"x"), Gossip(6, 1, 0, b"x")], 1.0)
    e.drain()
    e.on_frame(peer(2), [Prune([])], 1.0)
    assert e.lazy_peers == (peer(2),)
    assert e.pt.tree_of(5)[1] == (peer(2),) and e.pt.tree_of(6)[1] == (peer(2),)
    e.on_frame(peer(2), [Graft([])], 1.0)
    assert e.lazy_peers == ()
    assert e.pt.tree_of(5)[1] == () and e.pt.tree_of(6)[1] == ()
    assert e.drain()[0] == {}


def test_repeat_senders_get_their_own_tree() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2), peer(3)])
    # two messages of each origin: both trees are their own from then on
    e.on_frame(peer(1), [Gossip(o, s, 0, b"") for o in (5, 6) for s in (1, 2)], 1.0)
    e.drain()
    e.on_frame(peer(3), [Prune([5])], 1.0)  # lazy for origin 5 only
    assert e.pt.tree_of(5) == ((peer(1), peer(2)), (peer(3),))
    assert e.pt.tree_of(6) == ((peer(1), peer(2), peer(3)), ())
    assert e.lazy_peers == ()  # own trees leave the shared tree alone
    e.on_frame(peer(1), [Gossip(5, 3, 0, b"a"), Gossip(6, 3, 0, b"b")], 1.0)
    outbox, _, _, _ = e.drain()
    assert sent(outbox, Gossip) == {
        peer(2): [Gossip(5, 3, 1, b"a"), Gossip(6, 3, 1, b"b")],
        peer(3): [Gossip(6, 3, 1, b"b")],
    }
    e.tick(1.01)
    assert e.drain()[0] == {peer(3): [IHave([5, 3, 3, 1])]}
    e.on_frame(peer(3), [Graft([5, 0])], 1.1)  # back into 5's tree, nothing to resend
    assert e.pt.tree_of(5) == ((peer(1), peer(2), peer(3)), ())
    assert e.drain()[0] == {}


def test_new_origins_share_one_tree_until_they_repeat() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2), peer(3)])
    e.on_frame(peer(1), [Gossip(5, 1, 0, b"a")], 1.0)
    e.on_frame(peer(2), [Gossip(5, 1, 0, b"a")], 1.0)  # duplicate: 2 lazy, shared tree
    assert e.lazy_peers == (peer(2),)
    e.on_frame(peer(1), [Gossip(6, 1, 0, b"b")], 1.0)
    assert e.pt.tree_of(6) == ((peer(1), peer(3)), (peer(2),))
    e.on_frame(peer(3), [Gossip(6, 1, 0, b"b")], 1.0)  # prunes the shared tree again
    assert e.pt.tree_of(5) == ((peer(1),), (peer(2), peer(3)))
    # origin 5 repeats: its tree becomes its own copy and evolves alone
    e.on_frame(peer(1), [Gossip(5, 2, 0, b"a")], 1.0)
    e.on_frame(peer(3), [Graft([5, 0])], 1.0)
    assert e.pt.tree_of(5) == ((peer(1), peer(3)), (peer(2),))
    assert e.lazy_peers == (peer(2), peer(3))


def test_duplicate_from_an_already_lazy_peer_is_still_pruned() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(1), [Gossip(5, 1, 0, b"a")], 1.0)
    e.on_frame(peer(2), [Gossip(5, 1, 0, b"a")], 1.0)
    e.drain()
    e.on_frame(peer(2), [Gossip(5, 1, 0, b"a"), Gossip(5, 1, 0, b"a")], 1.1)
    assert e.drain()[0] == {peer(2): [Prune([5])]}  # one per batch and origin


def test_graft_answers_are_not_pruned_nor_pushed_back() -> None:
    e = engine(graft_timeout_1=0.08)
    make_active(e, [peer(1), peer(2), peer(3)])
    e.on_frame(peer(2), [Prune([55])], 1.0)
    e.on_frame(peer(2), [IHave([55, 7, 7, 1])], 1.0)
    e.tick(1.08)
    assert e.drain()[0] == {peer(2): [Graft([55, 7])]}
    # the slow eager copy arrives first: not pushed to peer 2, which answers our Graft
    e.on_frame(peer(1), [Gossip(55, 7, 5, b"x")], 1.09)
    outbox, _, deliveries, _ = e.drain()
    assert len(deliveries) == 1
    assert sent(outbox, Gossip) == {peer(3): [Gossip(55, 7, 6, b"x")]}
    e.on_frame(peer(2), [Gossip(55, 7, 1, b"x")], 1.1)  # the answer: no Prune
    assert e.drain()[0] == {}
    assert peer(2) in e.pt.tree_of(55)[0]


def test_per_origin_trees_are_bounded() -> None:
    from gossipfast._plumtree import MAX_TREES

    e = engine()
    make_active(e, [peer(1)])
    e.on_frame(peer(1), [Gossip(o, 1, 0, b"") for o in range(1, MAX_TREES + 50)], 1.0)
    assert len(e.pt.trees) == MAX_TREES


def test_optimisation_swaps_a_long_eager_path_for_a_short_lazy_one() -> None:
    e = engine(optimization_threshold=3)
    make_active(e, [peer(1), peer(2), peer(3)])
    e.on_frame(peer(2), [Prune([])], 1.0)  # peer 2 lazy
    e.on_frame(peer(2), [IHave([55, 7, 7, 1])], 1.0)
    e.on_frame(peer(1), [Gossip(55, 7, 4, b"x")], 1.01)  # 4 >= 1 + 3
    outbox, _, deliveries, _ = e.drain()
    assert deliveries == [(55, 7, 5, b"x")]
    assert outbox[peer(2)] == [Graft([55, 0])]  # the link only: no payload either way
    assert outbox[peer(1)] == [Prune([55])]
    assert peer(2) in e.eager_peers and peer(1) in e.lazy_peers
    assert e.stats()["optimizations"] == 1


def test_no_optimisation_below_threshold() -> None:
    e = engine(optimization_threshold=3)
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(2), [Prune([])], 1.0)
    e.on_frame(peer(2), [IHave([55, 7, 7, 2])], 1.0)
    e.on_frame(peer(1), [Gossip(55, 7, 4, b"x")], 1.01)
    outbox, _, _, _ = e.drain()
    assert sent(outbox, Graft) == {} and sent(outbox, Prune) == {}
    assert peer(1) in e.eager_peers


def test_late_announcement_of_a_shorter_path_replaces_the_parent() -> None:
    e = engine(optimization_threshold=3)
    make_active(e, [peer(1), peer(2), peer(3)])
    e.on_frame(peer(2), [Prune([])], 1.0)  # peer 2 lazy
    e.on_frame(peer(1), [Gossip(55, 7, 4, b"x")], 1.0)  # delivered at hop 5 via peer 1
    e.drain()
    e.on_frame(peer(2), [IHave([55, 7, 7, 3])], 1.01)  # 3 + 1 + 3 > 5: not worth it
    outbox, _, _, _ = e.drain()
    assert sent(outbox, Graft) == {} and sent(outbox, Prune) == {}
    e.on_frame(peer(2), [IHave([55, 7, 7, 1])], 1.02)  # 1 + 1 + 3 <= 5: a shorter path
    outbox, _, deliveries, _ = e.drain()
    assert deliveries == []
    assert outbox[peer(2)] == [Graft([55, 0])]  # the link only: we have the payload
    assert outbox[peer(1)] == [Prune([55])]
    assert set(e.pt.tree_of(55)[0]) == {peer(2), peer(3)}
    assert e.pt.tree_of(55)[1] == (peer(1),)
    assert e.stats()["optimizations"] == 1
    # the new parent is remembered: a second late announcement is measured against it
    e.on_frame(peer(3), [IHave([55, 7, 7, 0])], 1.03)
    outbox, _, _, _ = e.drain()
    assert sent(outbox, Graft) == {} and sent(outbox, Prune) == {}


def test_late_announcement_of_an_older_message_changes_nothing() -> None:
    e = engine(optimization_threshold=3)
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(2), [Prune([])], 1.0)
    e.on_frame(peer(1), [Gossip(55, 7, 9, b"x"), Gossip(55, 8, 9, b"y")], 1.0)
    e.drain()
    e.on_frame(peer(2), [IHave([55, 7, 7, 0])], 1.01)  # not the origin's latest: no parent known
    outbox, _, _, _ = e.drain()
    assert outbox == {}
    assert peer(1) in e.eager_peers


def test_a_payload_older_than_the_dedup_window_is_counted_as_stale() -> None:
    e = engine(dedup_window=64)
    make_active(e, [peer(1)])
    e.on_frame(peer(1), [Gossip(77, 200, 1, b"new")], 1.0)
    e.on_frame(peer(1), [Gossip(77, 100, 1, b"late")], 1.1)  # 100 seqs behind, window 64
    _, _, deliveries, _ = e.drain()
    assert [d[1] for d in deliveries] == [200]  # refused: taken for an old duplicate
    st = e.stats()
    assert st["stale_drops"] == 1 and st["duplicates"] == 1  # but not silently
    e.on_frame(peer(1), [Gossip(77, 200, 1, b"new")], 1.2)  # a plain duplicate
    assert e.stats()["stale_drops"] == 1


def test_own_message_coming_back_is_a_duplicate() -> None:
    e = engine()
    make_active(e, [peer(1)])
    o, s = e.broadcast(b"m", 1.0)
    e.drain()
    e.on_frame(peer(1), [Gossip(o, s, 3, b"m")], 1.1)
    outbox, _, deliveries, _ = e.drain()
    assert deliveries == []
    assert outbox == {peer(1): [Prune([o])]}


def test_gossip_from_a_stranger_is_delivered_but_not_answered() -> None:
    e = engine()
    make_active(e, [peer(1)])
    e.on_frame(peer(9), [Gossip(5, 1, 0, b"x")], 1.0)
    e.on_frame(peer(9), [Gossip(5, 1, 0, b"x")], 1.0)
    outbox, _, deliveries, _ = e.drain()
    assert deliveries == [(5, 1, 1, b"x")]
    assert outbox == {peer(1): [Gossip(5, 1, 1, b"x")]}  # no Prune to a non-neighbour


def test_neighbor_down_removes_the_peer_from_the_tree() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(2), [Prune([])], 1.0)
    e.on_disconnected(peer(2), "failed", 1.0)
    e.on_disconnected(peer(1), "failed", 1.0)
    assert e.eager_peers == () and e.lazy_peers == ()


def test_fifo_holds_back_until_the_gap_fills() -> None:
    e = engine(fifo=True)
    make_active(e, [peer(1)])
    e.on_frame(peer(1), [Gossip(5, 1, 0, b"1")], 1.0)
    e.on_frame(peer(1), [Gossip(5, 3, 0, b"3"), Gossip(5, 4, 0, b"4")], 1.0)
    assert [d[1] for d in e.drain()[2]] == [1]
    e.on_frame(peer(1), [Gossip(5, 2, 0, b"2")], 1.0)
    assert [d[1] for d in e.drain()[2]] == [2, 3, 4]


def test_fifo_gives_up_on_a_gap_after_a_second() -> None:
    e = engine(fifo=True)
    make_active(e, [peer(1)])
    e.on_frame(peer(1), [Gossip(5, 1, 0, b"1"), Gossip(5, 3, 0, b"3")], 1.0)
    e.on_frame(peer(1), [Gossip(5, 5, 0, b"5")], 1.5)
    assert [d[1] for d in e.drain()[2]] == [1]
    e.tick(1.99)
    assert e.drain()[2] == []
    e.tick(2.0)
    assert [d[1] for d in e.drain()[2]] == [3]  # 5 waits for 4 in turn
    e.tick(3.0)
    assert [d[1] for d in e.drain()[2]] == [5]
    assert e.stats()["fifo_skipped"] == 2
    e.on_frame(peer(1), [Gossip(5, 4, 0, b"4")], 3.5)  # late: delivered, never lost
    assert [d[1] for d in e.drain()[2]] == [4]


def _graft_early(e, now: float, seq: int) -> None:
    """Peer 2 (lazy) announces ``seq`` of origin 55, we graft it, then the push from
    peer 1 (eager) arrives anyway: an early graft."""
    e.on_frame(peer(2), [IHave([55, seq, seq, 1])], now)
    e.tick(now + e.stats()["graft_delay_ms"] / 1000.0 + 1e-6)
    assert sent(e.drain()[0], Graft) == {peer(2): [Graft([55, seq])]}
    e.on_frame(peer(1), [Gossip(55, seq, 3, b"slow")], now + 1.0)
    e.drain()


def test_early_grafts_lengthen_the_graft_delay_and_on_time_pushes_shorten_it() -> None:
    e = engine(graft_timeout_1=0.08)
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(2), [Prune([])], 1.0)
    assert e.stats()["graft_delay_ms"] == 80
    _graft_early(e, 2.0, 1)
    assert e.stats()["early_grafts"] == 1 and e.stats()["graft_delay_ms"] == 160
    for k in range(2, 12):
        _graft_early(e, 2.0 * k, k)
    # bounded: at most 8x the configured delay
    assert e.stats()["graft_delay_ms"] == 640
    # on-time pushes (no announcement before them) shrink it at most once per current
    # delay: a burst of them at one instant counts once (at 10,000 pushes/s a per-push
    # decay collapsed the delay within milliseconds and the next late hop set off a
    # storm of early grafts)
    for k in range(12, 400):
        e.on_frame(peer(1), [Gossip(55, k, 1, b"x")], 30.0)
    e.drain()
    assert e.stats()["graft_delay_ms"] == round(640 * 0.98)
    # ... and spread out over time they bring it back down to the configured delay
    for k in range(400, 600):
        e.on_frame(peer(1), [Gossip(55, k, 1, b"x")], 30.0 + (k - 399) * 1.0)
    e.drain()
    assert e.stats()["graft_delay_ms"] == 80


def test_a_burst_of_early_grafts_doubles_the_delay_once() -> None:
    e = engine(graft_timeout_1=0.08)
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(2), [Prune([])], 1.0)
    e.on_frame(peer(2), [IHave([55, 1, 5, 1])], 1.0)
    e.tick(1.081)
    assert sent(e.drain()[0], Graft) == {
        peer(2): [Graft([v for k in range(1, 6) for v in (55, k)])]
    }
    # the parent's backlog arrives at once: five early grafts, one event (per push, the
    # delay went from the floor to its cap within a millisecond of one late batch)
    e.on_frame(peer(1), [Gossip(55, k, 3, b"slow") for k in range(1, 6)], 1.2)
    e.drain()
    assert e.stats()["early_grafts"] == 5 and e.stats()["graft_delay_ms"] == 160
    # a later one, once the doubled delay has passed, doubles it again
    _graft_early(e, 2.0, 6)
    assert e.stats()["early_grafts"] == 6 and e.stats()["graft_delay_ms"] == 320


def test_a_push_late_behind_its_announcement_lengthens_the_delay_before_any_graft() -> None:
    e = engine(graft_timeout_1=0.08)
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(2), [Prune([])], 1.0)

    def late(seq: int, at: float, lag: float) -> None:
        e.on_frame(peer(2), [IHave([55, seq, seq, 1])], at)
        e.on_frame(peer(1), [Gossip(55, seq, 3, b"late")], at + lag)
        e.drain()

    late(1, 2.0, 0.03)  # twice the lag is under the delay: nothing to learn
    assert e.stats()["graft_delay_ms"] == 80
    late(2, 3.0, 0.06)  # the tree lags 60 ms: wait twice that before grafting
    assert e.stats()["graft_delay_ms"] == 120
    assert e.stats()["grafts_sent"] == 0 and e.stats()["early_grafts"] == 0
    late(3, 3.07, 0.1)  # once per current delay: a backlog of late pushes is one event
    assert e.stats()["graft_delay_ms"] == 120
    late(4, 4.0, 0.1)
    assert e.stats()["graft_delay_ms"] == 200
    late(5, 5.0, 5.0)  # bounded by the cap
    assert e.stats()["graft_delay_ms"] == 640
    # and the next announced message that does not come is grafted after that delay
    e.on_frame(peer(2), [IHave([55, 6, 6, 1])], 20.0)
    e.tick(20.639)
    assert sent(e.drain()[0], Graft) == {}
    e.tick(20.64)
    assert sent(e.drain()[0], Graft) == {peer(2): [Graft([55, 6])]}


def test_a_needed_graft_does_not_lengthen_the_delay() -> None:
    e = engine(graft_timeout_1=0.08)
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(2), [Prune([])], 1.0)
    e.on_frame(peer(2), [IHave([55, 1, 1, 1])], 1.0)
    e.tick(1.081)
    e.drain()
    e.on_frame(peer(2), [Gossip(55, 1, 1, b"answer")], 1.1)  # only the answer comes
    assert len(e.drain()[2]) == 1
    assert e.stats()["early_grafts"] == 0 and e.stats()["graft_delay_ms"] == 80


def _own_tree(e, o: int = 55) -> None:
    """Two pushes of origin ``o`` from peer 1: ``o`` has its own tree, peer 1 the parent."""
    e.on_frame(peer(1), [Gossip(o, 1, 1, b"a"), Gossip(o, 2, 1, b"b")], 1.0)
    e.drain()
    assert e.pt.owns(o)


def _own_tree_announcing(seq: int, **cfg: float):
    """An engine whose own tree of origin 55 has parent peer 1, child peer 3 and peer 2
    lazy, which has just announced ``seq``."""
    e = engine(**cfg)
    make_active(e, [peer(1), peer(2), peer(3)])
    _own_tree(e)
    e.on_frame(peer(2), [Prune([55])], 1.1)
    e.on_frame(peer(2), [IHave([55, seq, seq, 1])], 1.1)
    return e


def test_a_push_sent_before_our_prune_arrived_does_not_relink_its_sender() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2), peer(3)])
    _own_tree(e)
    e.on_frame(peer(2), [Gossip(55, 3, 1, b"c")], 1.1)  # peer 2 is the faster parent now
    e.on_frame(peer(1), [Gossip(55, 3, 1, b"c")], 1.1)
    assert sent(e.drain()[0], Prune) == {peer(1): [Prune([55])]}
    # a push peer 1 sent before our Prune reached it: delivered, and peer 1 stays lazy
    # (it has us lazy by now; making it eager at our end only would leave a link that
    # no one pushes over)
    e.on_frame(peer(1), [Gossip(55, 4, 1, b"d")], 1.2)
    outbox, _, deliveries, _ = e.drain()
    assert [d[1] for d in deliveries] == [4]
    assert peer(1) in e.pt.tree_of(55)[1]
    assert sent(outbox, Graft) == {} and sent(outbox, Prune) == {}


def test_a_payload_from_elsewhere_is_not_pushed_back_to_the_parent() -> None:
    e = _own_tree_announcing(3)
    e.tick(1.5)  # no push from the parent since: the tree is broken, graft
    assert sent(e.drain()[0], Graft) == {peer(2): [Graft([55, 3])]}
    assert peer(2) in e.pt.tree_of(55)[0]
    # the payload from peer 2 (the answer) goes to the child only: the parent has it,
    # and a duplicate from us would make it prune the link it is our parent by
    e.on_frame(peer(2), [Gossip(55, 3, 1, b"c")], 1.6)
    outbox, _, deliveries, _ = e.drain()
    assert len(deliveries) == 1
    assert sent(outbox, Gossip) == {peer(3): [Gossip(55, 3, 2, b"c")]}


def test_a_payload_is_not_pushed_to_a_peer_that_announced_it() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2), peer(3)])
    _own_tree(e)
    # peer 2 is eager at our end but announces: it has the payload. A copy from us would
    # only make it prune us, and when we had grafted it for other messages of a stalled
    # tree, that undid the repair
    e.on_frame(peer(2), [IHave([55, 3, 3, 1])], 1.1)
    e.on_frame(peer(1), [Gossip(55, 3, 1, b"c")], 1.12)
    outbox, _, deliveries, _ = e.drain()
    assert [d[1] for d in deliveries] == [3]
    assert sent(outbox, Gossip) == {peer(3): [Gossip(55, 3, 2, b"c")]}


def test_the_parents_late_push_does_not_prune_it_until_a_faster_parent_takes_over() -> None:
    e = _own_tree_announcing(3, graft_timeout_1=0.08)
    e.tick(1.5)  # the parent is silent: graft peer 2
    assert sent(e.drain()[0], Graft) == {peer(2): [Graft([55, 3])]}
    e.on_frame(peer(2), [Gossip(55, 3, 1, b"c")], 1.55)  # the answer
    e.drain()
    # the parent's push of it, late: the parent delivered our latest new message, so
    # it stays (pruning every late parent after a storm of grafts left trees with none)
    e.on_frame(peer(1), [Gossip(55, 3, 1, b"c")], 1.6)
    assert sent(e.drain()[0], Prune) == {}
    assert peer(1) in e.pt.tree_of(55)[0]
    # the grafted peer pushes the next one first: it is the parent now, and the old
    # parent's copy is pruned as in the paper
    e.on_frame(peer(2), [Gossip(55, 4, 1, b"d")], 1.7)
    e.on_frame(peer(1), [Gossip(55, 4, 1, b"d")], 1.71)
    assert sent(e.drain()[0], Prune) == {peer(1): [Prune([55])]}
    assert e.pt.tree_of(55) == ((peer(2), peer(3)), (peer(1),))


def test_a_message_a_working_tree_missed_is_fetched_without_moving_the_tree() -> None:
    e = _own_tree_announcing(3, graft_timeout_1=0.08)
    e.on_frame(peer(1), [Gossip(55, 4, 1, b"d")], 1.12)  # the parent pushes a newer one
    e.drain()
    e.tick(1.5)
    outbox, _, _, _ = e.drain()
    # a Want (a fetch), not a Graft: a second parent would only add duplicates
    assert sent(outbox, Want) == {peer(2): [Want([55, 3, 3])]} and sent(outbox, Graft) == {}
    assert e.pt.tree_of(55) == ((peer(1), peer(3)), (peer(2),))
    e.on_frame(peer(2), [Gossip(55, 3, 1, b"c")], 1.55)  # the answer: no tree change
    outbox, _, deliveries, _ = e.drain()
    assert [d[1] for d in deliveries] == [3]
    assert sent(outbox, Graft) == {} and sent(outbox, Prune) == {}
    assert e.pt.tree_of(55) == ((peer(1), peer(3)), (peer(2),))
    # the parent's late push of it is no reason to prune the parent
    e.on_frame(peer(1), [Gossip(55, 3, 1, b"c")], 1.6)
    assert sent(e.drain()[0], Prune) == {}
    assert e.stats()["recovered"] == 1


def test_a_message_queued_behind_the_trees_pushes_waits_for_them() -> None:
    e = _own_tree_announcing(5, graft_timeout_1=0.08)
    # the parent is behind but delivering, oldest first (an overloaded hop)
    e.on_frame(peer(1), [Gossip(55, 3, 1, b"c")], 1.15)
    e.on_frame(peer(1), [Gossip(55, 4, 1, b"d")], 1.17)
    e.drain()
    e.tick(1.19)  # the graft delay since the announcement is over: wait, do not graft
    assert sent(e.drain()[0], Graft) == {} and e.stats()["grafts_sent"] == 0
    e.on_frame(peer(1), [Gossip(55, 5, 1, b"e")], 1.21)
    e.drain()
    e.tick(2.0)
    outbox = e.drain()[0]
    assert sent(outbox, Graft) == {} and sent(outbox, Want) == {}
    assert e.stats()["grafts_sent"] == 0
    assert e.pt.tree_of(55) == ((peer(1), peer(3)), (peer(2),))
    # the push of 5 came 110 ms after its announcement: the delay is twice that now
    d = e.stats()["graft_delay_ms"] / 1000.0
    assert d == 0.22
    # a tree silent for a whole graft delay is broken: graft as the paper does
    e.on_frame(peer(2), [IHave([55, 6, 6, 1])], 2.1)
    e.tick(2.1 + d - 0.001)
    assert sent(e.drain()[0], Graft) == {}
    e.tick(2.1 + d + 1e-6)
    assert sent(e.drain()[0], Graft) == {peer(2): [Graft([55, 6])]}
