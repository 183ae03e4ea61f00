"""Catch-up (Digest / Want), the fresh-join baseline and partition healing."""

from __future__ import annotations

import pytest
from support.enginekit import Net, addr, engine, make_active, peer, sent, split_cluster

from gossipfast.config import Config
from gossipfast.wire import Digest, Gone, Gossip, IHave, Neighbor, NeighborReply, ShuffleReply, Want

X = 0xABCDEF


def seasoned(**fields: object):
    """An engine that had a neighbour long ago (not fresh any more)."""
    e = engine(**fields)
    make_active(e, [peer(1)], now=0.0)
    return e


def test_neighbor_up_sends_our_digest() -> None:
    e = engine()
    o, _ = e.broadcast(b"a", 0.0)
    e.broadcast(b"b", 0.0)
    e.on_frame(peer(1), [Neighbor(True)], 1.0)
    outbox, _, _, _ = e.drain()
    assert sent(outbox, Digest) == {peer(1): [Digest([o, 2])]}


def test_digest_pulls_missing_ranges() -> None:
    e = seasoned()
    e.on_frame(peer(1), [Gossip(X, s, 0, b"%d" % s) for s in (1, 2, 4)], 0.5)
    e.drain()
    e.on_frame(peer(2), [Neighbor(True)], 10.0)
    e.drain()
    e.on_frame(peer(2), [Digest([X, 7])], 10.0)
    outbox, _, _, _ = e.drain()
    assert outbox == {peer(2): [Want([X, 3, 3, X, 5, 7])]}
    assert e.stats()["catch_up_requested"] == 4
    e.on_frame(peer(2), [Gossip(X, s, 2, b"%d" % s) for s in (3, 5, 6, 7)], 10.1)
    _, _, deliveries, _ = e.drain()
    assert [d[1] for d in deliveries] == [3, 5, 6, 7]
    assert e.stats()["recovered"] == 4


def test_catch_up_request_is_capped() -> None:
    e = seasoned(catch_up_max=3)
    e.on_frame(peer(1), [Neighbor(True)], 10.0)
    e.on_frame(peer(2), [Neighbor(True)], 10.0)
    e.drain()
    e.on_frame(peer(2), [Digest([X, 100, X + 1, 50])], 10.0)
    outbox, _, _, _ = e.drain()
    assert outbox == {peer(2): [Want([X, 1, 3])]}


def test_want_is_answered_from_the_store_and_bounded() -> None:
    e = engine(catch_up_max=3)
    o, _ = e.broadcast(b"1", 0.0)
    for k in range(2, 6):
        e.broadcast(b"%d" % k, 0.0)
    make_active(e, [peer(1)])
    e.on_frame(peer(1), [Want([o, 2, 1 << 40])], 1.0)
    outbox, _, _, _ = e.drain()
    assert outbox == {peer(1): [Gossip(o, s, 0, b"%d" % s) for s in (2, 3, 4)]}


def test_want_and_digest_from_strangers_are_ignored() -> None:
    e = engine()
    o, _ = e.broadcast(b"1", 0.0)
    e.on_frame(peer(7), [Want([o, 1, 1]), Digest([X, 5])], 1.0)
    assert e.drain()[0] == {}


def test_fresh_node_adopts_the_first_digest_as_baseline() -> None:
    e = engine()
    e.on_frame(peer(1), [Neighbor(True)], 0.0)
    e.on_frame(peer(1), [Digest([X, 100])], 0.0)
    outbox, _, _, _ = e.drain()
    assert sent(outbox, Want) == {}
    e.on_frame(peer(2), [Neighbor(True)], 0.5)
    e.on_frame(peer(2), [Digest([X, 101, X + 1, 3])], 0.5)  # a later digest
    outbox, _, _, _ = e.drain()
    # X: 101 is new since the baseline. X + 1 was not in the first digest: it may have
    # started after we joined, so its messages are pulled, not skipped.
    assert sent(outbox, Want) == {peer(2): [Want([X, 101, 101, X + 1, 1, 3])]}
    e.on_frame(peer(2), [Gossip(X + 1, s, 0, b"%d" % s) for s in (1, 2, 3)], 0.6)
    assert [d[1] for d in e.drain()[2]] == [1, 2, 3]


def test_origin_first_seen_in_a_later_digest_is_not_lost() -> None:
    # the race seen in the churn simulation: a new origin's first message reaches us in a
    # neighbour's digest before its push arrives; the push must still be delivered
    e = engine()
    e.on_frame(peer(1), [Neighbor(True)], 0.0)
    e.on_frame(peer(1), [Digest([X, 5])], 0.0)
    e.on_frame(peer(2), [Neighbor(True)], 0.3)
    e.on_frame(peer(2), [Digest([X, 5, X + 1, 1])], 0.3)
    e.drain()
    e.on_frame(peer(1), [Gossip(X + 1, 1, 3, b"new")], 0.35)
    assert [(d[0], d[1]) for d in e.drain()[2]] == [(X + 1, 1)]


def test_fresh_node_still_pulls_origins_it_knew_before() -> None:
    e = engine()
    e.on_frame(peer(9), [Gossip(X, 1, 0, b"x")], 0.0)  # heard from a stranger
    e.on_frame(peer(1), [Neighbor(True)], 1.5)  # (its stream stopped: 2, 3 are missing)
    e.on_frame(peer(1), [Digest([X, 3])], 1.5)
    outbox, _, _, _ = e.drain()
    assert sent(outbox, Want) == {peer(1): [Want([X, 2, 3])]}


def test_partition_heals_with_its_messages() -> None:
    net = Net(10, seed=5)
    for i in range(1, 5):
        net.join(addr(i), [addr(0)])
        net.run(0.3)
    for i in range(6, 10):
        net.join(addr(i), [addr(5)])
        net.run(0.3)
    net.run(3.0)
    ids = []
    for k in range(6):
        ids.append(net.broadcast(addr(k % 10 if k % 2 else 5 + k % 5), b"p%d" % k))
        net.run(0.3)
    net.run(3.0)
    net.join(addr(5), [addr(0)])  # the halves meet
    net.run(5.0)
    net.check_invariants()
    assert net.connected()
    for a in net.engines:
        got = {(o, s) for o, s, _h, _p in net.delivered[a]}
        own = {i for i in ids if i[0] == net.engines[a].origin}
        assert got == set(ids) - own, a
    assert sum(e.stats()["recovered"] for e in net.engines.values()) > 0


def test_digest_in_the_same_frame_as_the_accepting_reply_is_used() -> None:
    e = engine(active_view_size=1)
    make_active(e, [peer(1)])
    e.on_frame(peer(1), [Gossip(X, 1, 0, b"1")], 0.5)
    e.on_disconnected(peer(1), "failed", 10.0)  # promotion: Neighbor to peer 2
    e.on_frame(peer(9), [ShuffleReply([peer(2)])], 10.0)
    e.tick(12.0)
    e.drain()
    assert peer(2) in e.hv.pending
    e.on_frame(peer(2), [NeighborReply(True), Digest([X, 3])], 12.1)
    outbox, _, _, _ = e.drain()
    assert sent(outbox, Want) == {peer(2): [Want([X, 2, 3])]}


def test_healed_partition_remerges_and_exchanges_its_messages() -> None:
    cfg = Config(shuffle_interval=2.0, repair_interval=0.5, neighbor_timeout=0.5)
    net, left, right = split_cluster(cfg, 9)
    ids = [net.broadcast(left[0], b"L"), net.broadcast(right[0], b"R")]
    net.run(5.0)
    net.heal()
    net.run(60.0)
    net.check_invariants()
    assert net.connected()
    for a in net.engines:
        got = {(o, s) for o, s, _h, _p in net.delivered[a]}
        assert {i for i in ids if i[0] != net.engines[a].origin} <= got, a
    assert sum(e.stats()["probes"] for e in net.engines.values()) > 0


# -- anti-entropy: a digest to the neighbours in turn ---------------------------------------


def test_anti_entropy_sends_the_previous_digest_to_the_neighbours_in_turn() -> None:
    e = engine(anti_entropy_interval=1.0)
    make_active(e, [peer(1), peer(2)], now=0.0)
    e.on_frame(peer(1), [Gossip(X, 1, 0, b"1")], 0.5)
    e.drain()
    e.tick(1.0)  # the first snapshot: nothing sent yet
    assert sent(e.drain()[0], Digest) == {}
    e.on_frame(peer(1), [Gossip(X, 2, 0, b"2")], 1.5)
    e.drain()
    e.tick(2.0)  # seq 2 came after the snapshot: it may still be on its way elsewhere
    first = sent(e.drain()[0], Digest)
    e.tick(3.0)
    second = sent(e.drain()[0], Digest)
    assert list(first.values()) == [[Digest([X, 1])]]
    assert list(second.values()) == [[Digest([X, 2])]]
    assert set(first) | set(second) == {peer(1), peer(2)}


def test_anti_entropy_leaves_out_origins_idle_past_the_retention() -> None:
    e = engine(anti_entropy_interval=1.0, store_max_age=5.0)
    make_active(e, [peer(1)], now=0.0)
    e.on_frame(peer(1), [Gossip(X, 1, 0, b"x")], 0.5)
    e.on_frame(peer(1), [Gossip(X + 1, 1, 0, b"y")], 1.5)
    e.on_frame(peer(1), [Gossip(X + 1, 2, 0, b"y")], 9.5)
    e.tick(10.0)
    # X was last seen before 1.5, over 5 s ago: its payloads are gone everywhere
    assert e.pt.catchup.ae_snapshot == [X + 1, 2]


def test_no_anti_entropy_when_disabled() -> None:
    e = engine(anti_entropy_interval=0.0)
    make_active(e, [peer(1)], now=0.0)
    e.on_frame(peer(1), [Gossip(X, 1, 0, b"1")], 0.5)
    for t in range(1, 20):
        e.tick(float(t))
        assert sent(e.drain()[0], Digest) == {}


def test_digest_does_not_ask_for_ids_on_their_way() -> None:
    e = seasoned()
    make_active(e, [peer(2)], now=10.0)
    e.on_frame(peer(1), [Gossip(X, 1, 0, b"1")], 8.0)
    e.on_frame(peer(1), [IHave([X, 2, 2, 1])], 10.0)  # its graft timer runs
    e.on_frame(peer(2), [Digest([X, 4])], 10.01)
    assert sent(e.drain()[0], Want) == {peer(2): [Want([X, 3, 4])]}
    # asked just now: a second digest does not ask again...
    e.on_frame(peer(1), [Digest([X, 4])], 10.02)
    assert sent(e.drain()[0], Want) == {}
    # ...but once the answer is an interval late, it does (2 is still announced)
    e.on_frame(peer(1), [Digest([X, 4])], 11.5)
    assert sent(e.drain()[0], Want).get(peer(1)) == [Want([X, 3, 4])]


def test_fresh_node_answers_no_gone_for_ids_its_baseline_skipped() -> None:
    e = engine(store_max_age=5.0)
    e.on_frame(peer(1), [Neighbor(True)], 0.0)
    e.on_frame(peer(1), [Digest([X, 100])], 0.0)  # the baseline: X up to 100 skipped
    e.on_frame(peer(1), [Gossip(X, 101, 0, b"101")], 0.1)
    e.pt.expire(10.0)
    make_active(e, [peer(2)], now=10.0)
    e.on_frame(peer(2), [Want([X, 95, 101])], 10.0)
    # never seen here: no answer (others may still store them); 101 was seen, and expired
    assert sent(e.drain()[0], Gone) == {peer(2): [Gone([X, 101, 101])]}


@pytest.mark.parametrize("seed", [2, 4, 10])  # seeds that lost messages before the fix
def test_messages_of_a_partition_reach_the_other_side_past_a_fresh_bridge(seed: int) -> None:
    # The case of the chaos test: a node restarted on one side after the heal joins
    # through the other side, so its baseline skips the messages broadcast there during
    # the split. Its neighbours must not take its silence (or a Gone) for a loss: every
    # message reaches every node, and no gap is reported.
    cfg = Config(shuffle_interval=2.0, repair_interval=0.5, neighbor_timeout=0.5)
    net, left, right = split_cluster(cfg, seed)
    ids = [net.broadcast(left[k], b"L%d" % k) for k in range(3)]
    net.run(1.0)
    net.crash(right[0])
    net.run(2.0)
    net.heal()
    net.add(right[0], incarnation=2)
    net.join(right[0], [left[1]])
    net.run(60.0)
    assert net.connected()
    for a in net.live():
        got = {(o, s) for o, s, _h, _p in net.delivered[a]}
        if a == right[0]:
            continue  # the fresh node starts at the present
        assert {i for i in ids if i[0] != net.engines[a].origin} <= got, a
    assert not [ev for a in net.live() for ev in net.events[a] if type(ev).__name__ == "Gap"]


def test_a_digest_does_not_ask_for_what_a_flowing_stream_brings_next() -> None:
    # a neighbour's digest runs ahead of a stream still reaching us: its newest ids are
    # on their way, and asking for them would bring each twice (and prune the link)
    e = seasoned(anti_entropy_interval=1.0)
    make_active(e, [peer(2)], now=10.0)
    e.on_frame(peer(1), [Gossip(X, s, 0, b"%d" % s) for s in (1, 2, 4, 5)], 10.0)
    e.drain()
    e.on_frame(peer(2), [Digest([X, 8])], 10.5)
    assert sent(e.drain()[0], Want) == {peer(2): [Want([X, 3, 3])]}  # the hole only
    # the stream stopped more than an interval ago: what it did not bring is missing
    e.on_frame(peer(2), [Digest([X, 8])], 12.0)  # (3: asked over an interval ago)
    assert sent(e.drain()[0], Want) == {peer(2): [Want([X, 3, 3, X, 6, 8])]}


def test_a_stream_whose_link_failed_is_not_taken_for_flowing() -> None:
    # pushes in flight when a link fails are lost with it: when the sender comes back,
    # its digest must pull them even though its stream reached us a moment ago
    e = seasoned(anti_entropy_interval=1.0)
    e.on_frame(peer(1), [Gossip(X, s, 0, b"%d" % s) for s in (1, 2, 3)], 10.0)
    e.drain()
    e.on_disconnected(peer(1), "failed", 10.2)
    e.drain()
    make_active(e, [peer(1)], now=10.3)
    e.drain()
    e.on_frame(peer(1), [Digest([X, 7])], 10.4)
    assert sent(e.drain()[0], Want) == {peer(1): [Want([X, 4, 7])]}
