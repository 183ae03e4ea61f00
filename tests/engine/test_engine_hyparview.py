"""HyParView state transitions, one hand-written scenario each."""

from __future__ import annotations

import itertools

from support.enginekit import ME, engine, make_active, make_passive, peer, sent

from gossipfast.types import NeighborDown, NeighborUp
from gossipfast.wire import (
    Digest,
    Disconnect,
    ForwardJoin,
    Join,
    Neighbor,
    NeighborReply,
    Shuffle,
    ShuffleReply,
)


def test_join_contacts_every_seed_and_ignores_self() -> None:
    e = engine()
    e.join([peer(1), ME, peer(2)], 0.0)
    outbox, closing, deliveries, events = e.drain()
    assert outbox == {peer(1): [Join()], peer(2): [Join()]}
    assert closing == [] and deliveries == [] and events == []
    assert e.active_view == ()


def test_contact_takes_joiner_and_walks_it_to_its_other_neighbours() -> None:
    e = engine(active_random_walk_length=6)
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(9), [Join()], 1.0)
    outbox, _, _, events = e.drain()
    assert peer(9) in e.active_view
    assert events == [NeighborUp(peer(9))]
    # the joiner hears it was taken (high priority) and gets our digest
    assert outbox[peer(9)][0] == Neighbor(True)
    assert any(type(m) is Digest for m in outbox[peer(9)])
    assert sent(outbox, ForwardJoin) == {
        peer(1): [ForwardJoin(peer(9), 6)],
        peer(2): [ForwardJoin(peer(9), 6)],
    }


def test_joiner_accepts_high_priority_neighbor_and_replies() -> None:
    e = engine()
    e.join([peer(1)], 0.0)
    e.drain()
    e.on_frame(peer(1), [Neighbor(True)], 0.1)
    outbox, _, _, events = e.drain()
    assert e.active_view == (peer(1),)
    assert events == [NeighborUp(peer(1))]
    assert outbox[peer(1)][0] == NeighborReply(True)


def test_forward_join_ttl_zero_adds_to_active_with_high_priority_neighbor() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2), peer(3)])
    e.on_frame(peer(1), [ForwardJoin(peer(9), 0)], 1.0)
    outbox, _, _, events = e.drain()
    assert peer(9) in e.active_view
    assert outbox[peer(9)][0] == Neighbor(True)
    assert events == [NeighborUp(peer(9))]


def test_forward_join_when_only_the_sender_is_active_ends_the_walk() -> None:
    e = engine()
    make_active(e, [peer(1)])
    e.on_frame(peer(1), [ForwardJoin(peer(9), 5)], 1.0)
    outbox, _, _, _ = e.drain()
    assert set(e.active_view) == {peer(1), peer(9)}
    assert sent(outbox, ForwardJoin) == {}


def test_forward_join_at_prwl_adds_to_passive_and_forwards_to_another_peer() -> None:
    e = engine(active_random_walk_length=6, passive_random_walk_length=3)
    make_active(e, [peer(1), peer(2), peer(3)])
    e.on_frame(peer(1), [ForwardJoin(peer(9), 3)], 1.0)
    outbox, _, _, _ = e.drain()
    assert peer(9) in e.passive_view and peer(9) not in e.active_view
    fj = sent(outbox, ForwardJoin)
    assert len(fj) == 1
    ((target, msgs),) = fj.items()
    assert target in (peer(2), peer(3))  # never back to the sender
    assert msgs == [ForwardJoin(peer(9), 2)]


def test_forward_join_above_prwl_only_forwards() -> None:
    e = engine(active_random_walk_length=6, passive_random_walk_length=3)
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(1), [ForwardJoin(peer(9), 5)], 1.0)
    outbox, _, _, _ = e.drain()
    assert peer(9) not in e.passive_view and peer(9) not in e.active_view
    assert sent(outbox, ForwardJoin) == {peer(2): [ForwardJoin(peer(9), 4)]}


def test_forward_join_about_ourselves_is_dropped() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(1), [ForwardJoin(ME, 0)], 1.0)
    outbox, _, _, _ = e.drain()
    assert outbox == {}
    assert ME not in e.active_view


def test_low_priority_neighbor_accepted_when_room_refused_when_full() -> None:
    e = engine(active_view_size=2)
    e.on_frame(peer(1), [Neighbor(False)], 0.0)
    outbox, _, _, _ = e.drain()
    assert outbox[peer(1)][0] == NeighborReply(True)
    e.on_frame(peer(2), [Neighbor(False)], 0.0)
    e.drain()
    assert set(e.active_view) == {peer(1), peer(2)}
    e.on_frame(peer(3), [Neighbor(False)], 0.0)
    outbox, closing, _, events = e.drain()
    assert outbox == {peer(3): [NeighborReply(False)]}
    assert events == [] and closing == []
    assert peer(3) not in e.active_view


def test_high_priority_neighbor_evicts_a_random_active_peer() -> None:
    e = engine(active_view_size=2)
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(3), [Neighbor(True)], 1.0)
    outbox, closing, _, events = e.drain()
    assert peer(3) in e.active_view and len(e.active_view) == 2
    (victim,) = {peer(1), peer(2)} - set(e.active_view)
    assert outbox[victim] == [Disconnect(True)]
    assert closing == [victim]
    assert victim in e.passive_view
    assert events == [NeighborDown(victim, "replaced"), NeighborUp(peer(3))]
    assert outbox[peer(3)][0] == NeighborReply(True)


def test_disconnect_alive_moves_to_passive_and_promotes() -> None:
    e = engine(active_view_size=2)
    make_active(e, [peer(1), peer(2)])
    make_passive(e, [peer(5)])
    e.on_frame(peer(1), [Disconnect(True)], 1.0)
    outbox, closing, _, events = e.drain()
    assert events == [NeighborDown(peer(1), "disconnected")]
    assert peer(1) in e.passive_view and peer(1) not in e.active_view
    assert peer(1) in closing
    # one free slot -> exactly one low-priority request (the view is not empty)
    (target,) = sent(outbox, Neighbor)
    assert sent(outbox, Neighbor)[target] == [Neighbor(False)]
    assert target in (peer(1), peer(5))


def test_disconnect_dead_forgets_the_peer() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(1), [Disconnect(False)], 1.0)
    _, _, _, events = e.drain()
    assert events == [NeighborDown(peer(1), "left")]
    assert peer(1) not in e.active_view and peer(1) not in e.passive_view


def test_failed_active_peer_is_dropped_and_replaced_with_high_priority_when_alone() -> None:
    e = engine()
    make_active(e, [peer(1)])
    make_passive(e, [peer(5)])
    e.on_disconnected(peer(1), "failed", 1.0)
    outbox, _, _, events = e.drain()
    assert events == [NeighborDown(peer(1), "failed")]
    assert peer(1) not in e.passive_view
    assert sent(outbox, Neighbor) == {peer(5): [Neighbor(True)]}


def test_clean_close_of_active_link_counts_as_disconnected() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2)])
    e.on_disconnected(peer(1), "closed", 1.0)
    _, _, _, events = e.drain()
    assert events == [NeighborDown(peer(1), "disconnected")]
    assert peer(1) in e.passive_view


def test_slow_peer_goes_down_with_reason_slow() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2)])
    e.on_disconnected(peer(1), "slow", 1.0)
    _, _, _, events = e.drain()
    assert events == [NeighborDown(peer(1), "slow")]


def test_promotion_timeout_tries_the_next_candidate() -> None:
    e = engine(active_view_size=1, neighbor_timeout=2.0, repair_interval=100.0)
    make_active(e, [peer(1)])
    make_passive(e, [peer(5), peer(6)])
    e.on_disconnected(peer(1), "failed", 1.0)
    outbox, _, _, _ = e.drain()
    (first,) = sent(outbox, Neighbor)
    assert e.hv.pending.keys() == {first}  # never more requests than free slots
    e.tick(2.9)
    assert sent(e.drain()[0], Neighbor) == {}
    e.tick(3.0)
    outbox, _, _, _ = e.drain()
    (second,) = sent(outbox, Neighbor)
    assert {first, second} == {peer(5), peer(6)}
    assert first in e.passive_view  # a timeout is not a proof of death
    # a refusal moves on again; with everyone tried, nothing until the repair round
    e.on_frame(second, [NeighborReply(False)], 3.1)
    assert sent(e.drain()[0], Neighbor) == {}
    assert not e.hv.pending


def test_promotion_accept_makes_neighbours() -> None:
    e = engine(active_view_size=1)
    make_active(e, [peer(1)])
    make_passive(e, [peer(5)])
    e.on_disconnected(peer(1), "failed", 1.0)
    e.drain()
    e.on_frame(peer(5), [NeighborReply(True)], 1.1)
    _, _, _, events = e.drain()
    assert e.active_view == (peer(5),)
    assert peer(5) not in e.passive_view
    assert events == [NeighborUp(peer(5))]


def test_late_accept_with_full_view_is_undone() -> None:
    e = engine(active_view_size=1)
    make_active(e, [peer(1)])
    e.on_frame(peer(7), [NeighborReply(True)], 1.0)
    outbox, closing, _, _ = e.drain()
    assert outbox == {peer(7): [Disconnect(True)]}
    assert closing == [peer(7)]
    assert e.active_view == (peer(1),)


def test_failed_passive_dial_forgets_the_peer_and_tries_another() -> None:
    e = engine(active_view_size=1)
    make_passive(e, [peer(5), peer(6)])
    e.on_frame(peer(1), [Neighbor(True)], 0.0)
    e.on_disconnected(peer(1), "failed", 1.0)
    outbox, _, _, _ = e.drain()
    (first,) = sent(outbox, Neighbor)
    e.on_disconnected(first, "failed", 1.1)
    outbox, _, _, _ = e.drain()
    assert first not in e.passive_view
    (second,) = sent(outbox, Neighbor)
    assert second != first


def test_periodic_shuffle_carries_samples_of_both_views() -> None:
    e = engine(shuffle_interval=10.0, shuffle_active=2, shuffle_passive=3, shuffle_ttl=4)
    e.join([peer(1)], 0.0)
    e.drain()
    make_active(e, [peer(1), peer(2), peer(3)])
    make_passive(e, [peer(10), peer(11), peer(12), peer(13)])
    e.tick(7.4)  # jitter is within +-25%
    assert sent(e.drain()[0], Shuffle) == {}
    e.tick(12.6)
    shuffles = sent(e.drain()[0], Shuffle)
    ((target, (msg,)),) = shuffles.items()
    assert target in e.active_view
    assert msg.origin == ME and msg.ttl == 4
    act = [n for n in msg.nodes if n in e.active_view]
    pas = [n for n in msg.nodes if n in e.passive_view]
    assert len(act) == 2 and target not in act
    assert len(pas) == 3
    assert e.next_deadline() is not None  # re-armed


def test_shuffle_is_forwarded_while_ttl_and_peers_allow() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(1), [Shuffle(peer(40), 3, [peer(41)])], 1.0)
    outbox, _, _, _ = e.drain()
    assert sent(outbox, Shuffle) == {peer(2): [Shuffle(peer(40), 2, [peer(41)])]}
    assert peer(41) not in e.passive_view


def test_shuffle_accepted_replies_and_integrates_evicting_what_it_sent() -> None:
    e = engine(passive_view_size=4, shuffle_active=2, shuffle_passive=2)
    make_active(e, [peer(1)])
    make_passive(e, [peer(10), peer(11), peer(12), peer(13)])
    e.on_frame(peer(1), [Shuffle(peer(40), 3, [peer(41), peer(42), ME])], 1.0)
    outbox, _, _, _ = e.drain()
    ((_, (reply,)),) = sent(outbox, ShuffleReply).items()
    assert peer(40) in outbox  # the reply goes straight to the origin
    assert len(reply.nodes) == 3  # as many as it received (self is not a sample)
    pas = set(e.passive_view)
    assert len(pas) == 4
    # the newcomers got in by evicting only nodes we sent away in the reply
    assert {peer(40), peer(41), peer(42)} <= pas
    assert pas - {peer(40), peer(41), peer(42)} <= {peer(10), peer(11), peer(12), peer(13)}
    assert not set(reply.nodes) & pas  # 3 evictions, all among the 3 sent away
    assert ME not in pas


def test_shuffle_reply_integration_prefers_evicting_what_we_sent() -> None:
    e = engine(passive_view_size=3, shuffle_active=0, shuffle_passive=2)
    e.join([peer(1)], 0.0)
    make_active(e, [peer(1)])
    make_passive(e, [peer(10), peer(11), peer(12)])
    e.tick(20.0)
    ((_, (msg,)),) = sent(e.drain()[0], Shuffle).items()
    shipped = set(msg.nodes)
    assert len(shipped) == 2
    e.on_frame(peer(30), [ShuffleReply([peer(31), peer(32)])], 20.5)
    e.drain()
    pas = set(e.passive_view)
    assert {peer(31), peer(32)} <= pas
    assert not shipped & pas


def test_views_stay_disjoint_and_never_hold_self() -> None:
    e = engine(active_view_size=2, passive_view_size=3)
    make_passive(e, [peer(1), peer(2), ME])
    make_active(e, [peer(1), peer(2)])
    make_passive(e, [peer(1), peer(3), ME])
    assert ME not in e.active_view and ME not in e.passive_view
    assert not set(e.active_view) & set(e.passive_view)


def test_isolated_node_rejoins_through_seeds() -> None:
    e = engine(repair_interval=1.0, neighbor_timeout=0.5)
    e.join([peer(1)], 0.0)
    e.drain()
    e.on_frame(peer(1), [Neighbor(True)], 0.1)
    e.drain()
    e.on_frame(peer(1), [Disconnect(False)], 0.2)  # our only neighbour leaves
    e.drain()
    assert e.active_view == ()
    joins = []
    t = 0.2
    while t < 3.0:
        t += 0.1
        e.tick(t)
        joins += list(sent(e.drain()[0], Join))
    assert peer(1) in joins
    assert e.stats()["rejoins"] >= 1


def test_leave_says_goodbye_and_goes_quiet() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2)])
    e.leave(1.0)
    outbox, closing, _, events = e.drain()
    assert outbox[peer(1)][-1] == Disconnect(False)
    assert outbox[peer(2)][-1] == Disconnect(False)
    assert set(closing) == {peer(1), peer(2)}
    assert {ev.reason for ev in events} == {"left"}
    assert e.active_view == ()
    e.on_frame(peer(3), [Join()], 2.0)
    e.tick(100.0)
    assert e.drain()[0] == {}


def test_repair_rounds_back_off_while_everyone_refuses() -> None:
    e = engine(active_view_size=2, repair_interval=1.0, neighbor_timeout=0.5)
    e.join([], 0.0)
    make_active(e, [peer(1)])
    make_passive(e, [peer(i) for i in range(10, 20)])
    rounds: list[tuple[float, int]] = []
    t = 0.0
    while t < 40.0:
        t = round(t + 0.05, 2)
        e.tick(t)
        asked = list(sent(e.drain()[0], Neighbor))
        n = 0
        while asked:  # every request is refused at once
            n += len(asked)
            for p in asked:
                e.on_frame(p, [NeighborReply(False)], t)
            asked = list(sent(e.drain()[0], Neighbor))
        if n:
            rounds.append((t, n))
    # at most size + 1 requests per round (one per free slot, retried after refusals)
    assert all(n <= 3 for _, n in rounds), rounds
    gaps = [round(b[0] - a[0], 1) for a, b in itertools.pairwise(rounds)]
    assert gaps[:5] == [1.0, 2.0, 4.0, 8.0, 8.0], gaps  # the first round saw a change
    assert e.active_view == (peer(1),)


def test_node_without_any_view_tries_addresses_it_heard_of() -> None:
    e = engine(repair_interval=1.0)
    e.join([peer(1)], 0.0)
    make_active(e, [peer(2), peer(3)])
    e.on_frame(peer(2), [Shuffle(peer(40), 3, [peer(41)])], 0.5)  # forwarded, heard
    e.drain()
    assert e.passive_view == ()
    e.on_disconnected(peer(2), "failed", 1.0)
    e.on_disconnected(peer(3), "failed", 1.0)
    assert e.stats()["graveyard"] == 2
    joined: set[str] = set()
    t = 1.0
    while t < 6.0:
        t += 0.1
        e.tick(t)
        joined |= set(sent(e.drain()[0], Join))
    # the seed, the failed neighbours (graveyard) and the addresses heard of
    assert {peer(1), peer(2), peer(3), peer(40), peer(41)} <= joined


def _probes(e, until: float, t: float = 0.0, fail: bool = True) -> list[tuple[float, str, object]]:
    """Tick ``e`` to ``until``; each probe of a failed peer as (time, peer, message).

    With ``fail`` every probed peer stays unreachable (the driver reports the failure).
    """
    out = []
    while t < until:
        t = round(t + 0.05, 2)
        e.tick(t)
        for p, msgs in e.drain()[0].items():
            for m in msgs:
                probe = (type(m) is Neighbor and m.high) or (type(m) is Shuffle and m.ttl == 0)
                if probe and p in e.hv.graveyard:
                    out.append((t, p, m))
                    if fail:
                        e.on_disconnected(p, "failed", t)
    return out


def test_a_failed_peer_is_probed_for_as_long_as_it_stays_unreachable() -> None:
    e = engine(reconnect_interval=1.0, active_view_size=3)
    make_active(e, [peer(1), peer(2), peer(3)])
    e.on_disconnected(peer(3), "failed", 0.0)
    probes = _probes(e, 2000.0)
    # no give-up and no backoff: about one probe a reconnect_interval (jitter +-25%)
    # from start to end of a split far longer than every other timeout
    assert {p for _, p, _ in probes} == {peer(3)}
    assert all(m == Neighbor(True) for _, _, m in probes)
    assert 1500 <= len(probes) <= 2700, len(probes)
    assert probes[-1][0] > 1995.0
    e.on_frame(peer(3), [NeighborReply(True)], 2001.0)  # back
    assert e.stats()["graveyard"] == 0 and peer(3) in e.active_view


def test_probes_cost_one_message_an_interval_however_many_peers_failed() -> None:
    e = engine(reconnect_interval=2.0, active_view_size=5, passive_view_size=30)
    make_active(e, [peer(i) for i in range(1, 6)])
    make_passive(e, [peer(i) for i in range(10, 40)])
    for i in range(1, 6):
        e.on_disconnected(peer(i), "failed", 0.0)
    for i in range(10, 40):  # every passive peer fails too (tried by the repair)
        e.on_disconnected(peer(i), "failed", 0.0)
    assert e.stats()["graveyard"] == 30  # bounded by the passive view's size
    probes = _probes(e, 200.0)
    assert 75 <= len(probes) <= 135, len(probes)  # ~ 200 s / 2 s, not 30 times that
    assert len({p for _, p, _ in probes}) > 20  # random choice: the probes spread


def test_hearsay_does_not_forget_a_failed_peer() -> None:
    # during a split, shuffles on our side still carry stale addresses of the other
    # side: that is no sign of life, so the peer stays probed
    e = engine(reconnect_interval=1.0)
    make_active(e, [peer(1), peer(2)])
    e.on_disconnected(peer(2), "failed", 0.0)
    e.on_frame(peer(1), [Shuffle(peer(7), 0, [peer(2), peer(8)])], 0.5)
    e.on_frame(peer(1), [ShuffleReply([peer(2)])], 0.6)
    assert peer(2) in e.hv.graveyard
    assert peer(2) in {p for _, p, _ in _probes(e, 10.0, 0.6)}


def test_after_a_heal_one_link_is_forced_and_the_other_failed_peers_asked_gently() -> None:
    e = engine(reconnect_interval=1.0, active_view_size=3)
    make_active(e, [peer(1), peer(2), peer(3)])
    for i in (1, 2, 3):
        e.on_disconnected(peer(i), "failed", 0.0)
    (t, first, msg), *_ = _probes(e, 5.0, fail=False)
    assert msg == Neighbor(True)
    e.on_frame(first, [NeighborReply(True)], t + 0.1)  # the network healed
    assert first in e.active_view
    rest = _probes(e, t + 20.0, t + 0.1, fail=False)
    assert rest and all(type(m) is Shuffle and m.origin == ME and m.ttl == 0 for _, _, m in rest)
    others = sorted({p for _, p, _ in rest})
    assert others == sorted({peer(1), peer(2), peer(3)} - {first})
    for p in others:  # they answer: remembered as passive peers, not failed any more
        e.on_frame(p, [ShuffleReply([])], t + 20.5)
    assert e.stats()["graveyard"] == 0
    assert set(others) <= set(e.passive_view)


def test_a_gentle_probe_that_fails_forces_the_next_one() -> None:
    # a three-way split: one side came back, another did not
    e = engine(reconnect_interval=1.0, active_view_size=2)
    make_active(e, [peer(1), peer(2)])
    for i in (1, 2):
        e.on_disconnected(peer(i), "failed", 0.0)
    e.on_frame(peer(1), [Neighbor(True)], 0.5)  # peer 1's side is back, it asked us in
    assert e.hv.graveyard == {peer(2): False}
    probes = _probes(e, 10.0, 0.5)
    assert type(probes[0][2]) is Shuffle  # gentle first; it failed
    assert all(m == Neighbor(True) for _, _, m in probes[1:]) and len(probes) > 2


def test_short_node_refused_for_a_whole_round_asks_with_high_priority() -> None:
    # a small island: we hold one neighbour, the rest of the cluster is full and refuses
    e = engine(active_view_size=5, repair_interval=1.0, neighbor_timeout=0.5)
    e.join([], 0.0)
    make_active(e, [peer(1)])
    make_passive(e, [peer(i) for i in range(10, 20)])
    highs: list[tuple[str, bool]] = []
    t = 0.0
    while t < 12.0 and not any(h for _, h in highs):
        t = round(t + 0.05, 2)
        e.tick(t)
        for p, msgs in sent(e.drain()[0], Neighbor).items():
            highs.append((p, msgs[0].high))
            if not msgs[0].high:
                e.on_frame(p, [NeighborReply(False)], t)
                e.drain()
    assert highs and not highs[0][1]  # the first round asks politely
    assert highs[-1][1], highs  # a round later, with high priority
    assert e.stats()["escalations"] == 1
    # a high-priority request is accepted: the island is joined to the cluster
    p = highs[-1][0]
    e.on_frame(p, [NeighborReply(True)], t)
    assert p in e.active_view


def test_one_short_in_a_full_cluster_never_forces_its_way_in() -> None:
    # four of five: more than half full, so every request stays low priority
    e = engine(active_view_size=5, repair_interval=1.0, neighbor_timeout=0.5)
    e.join([], 0.0)
    make_active(e, [peer(i) for i in range(1, 5)])
    make_passive(e, [peer(i) for i in range(10, 20)])
    t = 0.0
    asked = 0
    while t < 30.0:
        t = round(t + 0.05, 2)
        e.tick(t)
        for p, msgs in sent(e.drain()[0], Neighbor).items():
            assert not msgs[0].high
            asked += 1
            e.on_frame(p, [NeighborReply(False)], t)
            e.drain()
    assert asked > 0 and e.stats()["escalations"] == 0
