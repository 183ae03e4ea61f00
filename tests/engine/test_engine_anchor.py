"""The anchored shared tree (``_anchor.py``): beacons, up links, elections, and how
Plumtree keeps its shared tree equal to the anchor's fewest-hops tree."""

from __future__ import annotations

from collections import deque

import pytest
from support.enginekit import Net, addr, engine, make_active, peer, sent

from gossipfast.config import Config
from gossipfast.engine import Engine
from gossipfast.wire import Beacon, Gossip, Graft, IHave, Prune, Want

ANCHOR = 555  # an origin
INTERVAL = Config().tree_beacon_interval


def hang(e, up: str, hops: int = 2, *, term: int = 1, epoch: int = 1, now: float = 1.0) -> None:
    """``e`` hears a beacon from ``up`` (hops from the anchor) and adopts it."""
    e.on_frame(up, [Beacon(term, ANCHOR, epoch, hops, False)], now)


def in_tree() -> Engine:
    """An engine with three neighbours: peer(1) its up link (2 hops from the anchor),
    peer(2) its child, peer(3) lazy."""
    e = engine()
    make_active(e, [peer(1), peer(2), peer(3)])
    hang(e, peer(1), hops=2)
    e.on_frame(peer(2), [Beacon(1, ANCHOR, 1, 4, True)], 1.1)
    e.drain()
    return e


def beacons(outbox: dict[str, list]) -> dict[str, Beacon]:
    """The one beacon sent to each peer."""
    got = sent(outbox, Beacon)
    assert all(len(v) == 1 for v in got.values()), got
    return {p: v[0] for p, v in got.items()}


def test_a_beacon_is_adopted_and_forwarded_telling_only_the_parent_it_is_one() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2), peer(3)])
    hang(e, peer(1), hops=2)
    outbox, *_ = e.drain()
    assert beacons(outbox) == {
        peer(1): Beacon(1, ANCHOR, 1, 3, True),
        peer(2): Beacon(1, ANCHOR, 1, 3, False),
        peer(3): Beacon(1, ANCHOR, 1, 3, False),
    }
    assert e.tree.up == peer(1) and e.tree.anchor == ANCHOR
    # the shared tree is the up link only; the other neighbours are lazy
    assert e.eager_peers == (peer(1),)
    assert set(e.lazy_peers) == {peer(2), peer(3)}
    st = e.stats()
    assert st["tree_hops"] == 3 and st["sent_beacon"] == 3 and st["received_beacon"] == 1


def test_a_shorter_copy_of_the_epoch_moves_the_up_link_an_equal_one_does_not() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2), peer(3)])
    hang(e, peer(1), hops=4)
    e.drain()
    hang(e, peer(2), hops=1)
    outbox, *_ = e.drain()
    assert e.tree.up == peer(2) and e.tree.hops == 2
    b = beacons(outbox)
    assert b[peer(2)].up and not b[peer(1)].up and not b[peer(3)].up
    assert e.eager_peers == (peer(2),)
    hang(e, peer(3), hops=1)  # as short as the up link: the first one stays
    outbox, *_ = e.drain()
    assert sent(outbox, Beacon) == {} and e.tree.up == peer(2)


def test_children_are_eager_and_each_epoch_resets_the_shared_tree() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2), peer(3)])
    hang(e, peer(1), hops=2)
    e.on_frame(peer(2), [Beacon(1, ANCHOR, 1, 4, True)], 1.1)  # peer(2) hangs from us
    e.drain()
    assert set(e.eager_peers) == {peer(1), peer(2)} and e.lazy_peers == (peer(3),)
    e.on_frame(peer(2), [Prune([])], 1.2)  # a prune bends the shared tree meanwhile
    assert e.lazy_peers.count(peer(2)) == 1
    hang(e, peer(1), hops=2, epoch=2, now=11.0)
    e.drain()
    assert set(e.eager_peers) == {peer(1), peer(2)}
    # the child moves to another parent: it is lazy for us from then on
    e.on_frame(peer(2), [Beacon(1, ANCHOR, 2, 4, False)], 11.1)
    assert e.eager_peers == (peer(1),)


def test_a_first_message_from_a_tree_link_is_never_pruned_from_a_lazy_peer_it_is() -> None:
    e = in_tree()
    e.on_frame(peer(1), [Gossip(77, 1, 1, b"p")], 2.0)
    outbox, _, deliveries, _ = e.drain()
    assert deliveries == [(77, 1, 2, b"p")]
    assert sent(outbox, Gossip) == {peer(2): [Gossip(77, 1, 2, b"p")]}
    # a copy from the child (a graft below it made it): the tree link stays
    e.on_frame(peer(2), [Gossip(77, 1, 7, b"p")], 2.1)
    outbox, *_ = e.drain()
    assert sent(outbox, Prune) == {}
    assert set(e.eager_peers) == {peer(1), peer(2)}
    # a push from a lazy neighbour means it has us eager: prune it, as the paper does
    e.on_frame(peer(3), [Gossip(77, 1, 3, b"p")], 2.2)
    outbox, *_ = e.drain()
    assert sent(outbox, Prune) == {peer(3): [Prune([77])]}
    assert e.stats()["duplicates"] == 2


def test_a_missing_first_message_is_fetched_with_a_want_that_moves_no_link() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2), peer(3)])
    hang(e, peer(1), hops=2)
    e.drain()
    e.on_frame(peer(3), [IHave([77, 1, 1, 1])], 2.0)
    e.tick(2.0 + e.pt.graft_delay.value + 0.01)
    outbox, *_ = e.drain()
    assert sent(outbox, Want) == {peer(3): [Want([77, 1, 1])]} and sent(outbox, Graft) == {}
    assert e.eager_peers == (peer(1),)  # the anchor's tree is unchanged
    assert e.stats()["grafts_sent"] == 1  # counted as a recovery request all the same
    # the answer is delivered, and its sender stays lazy
    e.on_frame(peer(3), [Gossip(77, 1, 1, b"p")], 2.2)
    _, _, deliveries, _ = e.drain()
    assert deliveries == [(77, 1, 2, b"p")] and e.eager_peers == (peer(1),)
    assert e.stats()["recovered"] == 1
    # the parent's late push is no reason to prune it
    e.on_frame(peer(1), [Gossip(77, 1, 1, b"p")], 2.3)
    outbox, *_ = e.drain()
    assert sent(outbox, Prune) == {} and e.eager_peers == (peer(1),)
    # a neighbour's Want is answered from the store and moves no link either
    e.on_frame(peer(2), [Want([77, 1, 1])], 2.4)
    outbox, *_ = e.drain()
    assert sent(outbox, Gossip) == {peer(2): [Gossip(77, 1, 2, b"p")]}
    assert e.eager_peers == (peer(1),)
    # a Graft (from a detached neighbour, say) is the paper's: the link joins the tree
    e.on_frame(peer(2), [Graft([77, 1])], 2.5)
    outbox, *_ = e.drain()
    assert sent(outbox, Gossip) == {peer(2): [Gossip(77, 1, 2, b"p")]}
    assert set(e.eager_peers) == {peer(1), peer(2)}


def test_a_repeat_sender_gets_a_tree_of_its_own_shaped_as_the_paper_says() -> None:
    e = in_tree()
    e.on_frame(peer(1), [Gossip(77, 1, 1, b"a")], 2.0)
    e.on_frame(peer(1), [Gossip(77, 2, 1, b"b")], 2.1)  # origin 77's own tree from here
    e.drain()
    assert e.pt.owns(77)
    e.on_frame(peer(2), [Gossip(77, 2, 5, b"b")], 2.2)
    outbox, *_ = e.drain()
    assert sent(outbox, Prune) == {peer(2): [Prune([77])]}
    assert e.pt.tree_of(77)[0] == (peer(1),)
    assert set(e.eager_peers) == {peer(1), peer(2)}  # the shared tree is untouched


def test_losing_the_up_link_reattaches_to_a_neighbour_with_fewer_hops() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2), peer(3)])
    hang(e, peer(1), hops=2)
    e.on_frame(peer(2), [Beacon(1, ANCHOR, 1, 2, False)], 1.1)  # as short: not adopted
    e.on_frame(peer(3), [Beacon(1, ANCHOR, 1, 4, True)], 1.2)  # our child
    e.drain()
    assert e.tree.up == peer(1)
    e.on_disconnected(peer(1), "failed", 2.0)
    outbox, *_ = e.drain()
    assert e.tree.up == peer(2) and e.tree.hops == 3
    assert beacons(outbox)[peer(2)].up
    assert set(e.eager_peers) == {peer(2), peer(3)} and e.pt.anchored


def test_with_no_shorter_neighbour_the_node_waits_detached_and_grafts_as_the_paper() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2), peer(3)])
    hang(e, peer(1), hops=2)
    e.on_frame(peer(2), [Beacon(1, ANCHOR, 1, 4, True)], 1.1)  # a child: never an up link
    e.on_frame(peer(3), [Beacon(1, ANCHOR, 1, 3, False)], 1.2)  # as far as we are
    e.drain()
    e.on_disconnected(peer(1), "failed", 2.0)
    outbox, *_ = e.drain()
    assert e.tree.up is None and sent(outbox, Beacon) == {}
    assert not e.pt.anchored
    e.on_frame(peer(3), [IHave([77, 1, 1, 1])], 2.1)
    e.tick(2.1 + e.pt.graft_delay.value + 0.01)
    e.drain()
    assert peer(3) in e.eager_peers  # detached: the graft repairs the tree (the paper)
    hang(e, peer(3), hops=3, epoch=2, now=11.0)  # the next epoch re-attaches
    e.drain()
    assert e.tree.up == peer(3) and e.pt.anchored


def test_losing_the_anchor_itself_starts_an_election_among_its_neighbours() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2)])
    hang(e, peer(1), hops=0)  # peer(1) is the anchor
    e.drain()
    e.on_disconnected(peer(1), "failed", 2.0)
    e.drain()
    e.tick(2.0 + 0.05 * INTERVAL + 0.001)
    outbox, *_ = e.drain()
    assert e.tree.is_anchor and e.stats()["tree_elections"] == 1
    assert beacons(outbox) == {peer(2): Beacon(2, e.origin, 1, 0, False)}
    # and it beacons a new epoch every interval
    e.tick(2.0 + 0.05 * INTERVAL + INTERVAL + 0.002)
    outbox, *_ = e.drain()
    assert beacons(outbox)[peer(2)].epoch == 2


def test_a_swapped_anchor_link_does_not_start_an_election() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2)])
    hang(e, peer(1), hops=0)
    e.drain()
    e.on_disconnected(peer(1), "closed", 2.0)  # a membership swap: the anchor lives on
    e.tick(2.0 + INTERVAL)
    assert not e.tree.is_anchor and e.stats()["tree_elections"] == 0


def test_when_epochs_stop_coming_a_node_stands_as_candidate() -> None:
    e = engine()
    make_active(e, [peer(1)])
    e.on_frame(peer(1), [], 0.0)  # starts the engine's timers at 0
    hang(e, peer(1), hops=3, now=0.5)
    t = 0.5
    while t < 3 * INTERVAL:
        t += 1.0
        e.tick(t)
    assert not e.tree.is_anchor  # not before three intervals
    while t < 5 * INTERVAL:
        t += 1.0
        e.tick(t)
    assert e.tree.is_anchor and e.tree.key[0] == 2  # term 1 + 1


def test_a_higher_term_wins_then_the_lower_anchor_and_older_epochs_lose() -> None:
    e = engine()
    make_active(e, [peer(1), peer(2)])
    hang(e, peer(1), hops=2, term=1, epoch=9)
    e.on_frame(peer(2), [Beacon(2, 999, 1, 5, False)], 1.1)
    assert e.tree.anchor == 999 and e.tree.up == peer(2)
    e.on_frame(peer(1), [Beacon(2, 100, 1, 7, False)], 1.2)
    assert e.tree.anchor == 100 and e.tree.up == peer(1)
    e.on_frame(peer(2), [Beacon(2, 500, 50, 0, False)], 1.3)
    e.on_frame(peer(2), [Beacon(1, 1, 99, 0, False)], 1.4)
    assert e.tree.anchor == 100 and e.tree.up == peer(1) and e.tree.hops == 8


@pytest.mark.parametrize(
    "bad",
    [
        Beacon(-1, ANCHOR, 1, 1, False),
        Beacon(1, 1 << 64, 1, 1, False),
        Beacon(1, ANCHOR, 1, 1 << 16, False),
        Beacon(1, ANCHOR, "1", 1, False),  # type: ignore[arg-type]
        Beacon(1, ANCHOR, 1, 1, 1),  # type: ignore[arg-type]
    ],
)
def test_bad_beacons_are_counted_and_change_nothing(bad: Beacon) -> None:
    e = engine()
    make_active(e, [peer(1)])
    e.on_frame(peer(1), [bad], 1.0)
    outbox, *_ = e.drain()
    assert sent(outbox, Beacon) == {} and not e.tree.known
    assert e.stats()["bad_messages"] == 1


def test_without_beacons_the_shared_tree_is_the_papers() -> None:
    e = engine(tree_beacon_interval=0.0)
    make_active(e, [peer(1), peer(2)])
    e.on_frame(peer(1), [Beacon(1, ANCHOR, 1, 1, False)], 1.0)
    outbox, *_ = e.drain()
    assert e.tree is None and sent(outbox, Beacon) == {}
    assert set(e.eager_peers) == {peer(1), peer(2)}
    assert e.stats()["tree_hops"] == -1


# -- whole clusters on the test harness ------------------------------------------------------


def _levels(net: Net, root: str) -> dict[str, int]:
    """Fewest hops from ``root`` over the live active views."""
    lv = {root: 0}
    q = deque([root])
    while q:
        a = q.popleft()
        for b in net.engines[a].active_view:
            if b not in lv and b not in net.dead:
                lv[b] = lv[a] + 1
                q.append(b)
    return lv


def assert_one_fewest_hops_tree(net: Net) -> str:
    """Every live node follows one anchor, at its fewest hops, over one spanning tree."""
    live = net.live()
    keys = {net.engines[a].tree.key for a in live}
    assert len(keys) == 1, keys
    anchors = [a for a in live if net.engines[a].tree.is_anchor]
    assert len(anchors) == 1, anchors
    lv = _levels(net, anchors[0])
    edges = 0
    for a in live:
        e = net.engines[a]
        assert e.tree.hops == lv[a], (a, e.tree.hops, lv[a])
        for b in e.eager_peers:
            assert a in net.engines[b].eager_peers  # both ends agree
            edges += 1
    assert edges == 2 * (len(live) - 1)  # a spanning tree
    return anchors[0]


@pytest.mark.parametrize("seed", [1, 2])
def test_a_cluster_converges_to_one_fewest_hops_tree_and_reelects_after_a_crash(
    seed: int,
) -> None:
    net = Net(40, seed=seed, latency=0.01)
    for i in range(1, 40):
        net.join(addr(i), [addr(0)])
        net.run(0.05)
    net.run(3 * INTERVAL)
    assert net.connected()
    anchor = assert_one_fewest_hops_tree(net)
    net.crash(anchor)
    net.run(2 * INTERVAL)
    assert net.connected()
    assert_one_fewest_hops_tree(net)
    # broadcasts from anywhere reach everyone once, over the tree
    for k, a in enumerate(net.live()[:5]):
        net.broadcast(a, b"m%d" % k)
        net.run(1.0)
    for a in net.live():
        assert len(net.delivered[a]) >= 4
    net.check_invariants()


def test_partition_halves_elect_their_own_anchors_and_merge_into_one_tree() -> None:
    net = Net(30, seed=3, latency=0.01)
    for i in range(1, 30):
        net.join(addr(i), [addr(0)])
        net.run(0.05)
    net.run(3 * INTERVAL)
    assert_one_fewest_hops_tree(net)
    left = [addr(i) for i in range(15)]
    right = [addr(i) for i in range(15, 30)]
    net.partition(left, right)
    net.run(6 * INTERVAL)
    for side in (left, right):
        assert len({net.engines[a].tree.key[:2] for a in side}) == 1
    net.heal()
    net.run(8 * INTERVAL)
    assert net.connected()
    assert_one_fewest_hops_tree(net)
