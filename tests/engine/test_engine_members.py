"""The member list over simulated clusters: joins, leaves, crashes, metadata, heals."""

from __future__ import annotations

from typing import Any

import pytest
from support.enginekit import Net, addr, engine, make_active, peer, sent, split_cluster

from gossipfast._members import ALIVE, FAILED, LEFT, SUSPECT
from gossipfast.config import Config
from gossipfast.types import MemberDown, MemberUp, make_origin
from gossipfast.wire import MemberRecord, Members, MemberSync


def grown(n: int, seed: int = 1, **fields: Any) -> Net:
    """``n`` engines joined one by one through random earlier ones, then settled."""
    net = Net(n, Config(**fields), seed=seed)
    for i in range(1, n):
        net.join(addr(i), [addr(net.rng.randrange(i))])
        net.run(0.2)
    net.run(5.0)
    return net


def lists(net: Net) -> dict[str, set[str]]:
    return {a: set(net.engines[a].members.members()) for a in net.live()}


def ids(net: Net, addrs: list[str]) -> set[str]:
    return {net.engines[a].node_id for a in addrs}


def test_every_node_lists_every_node_after_joins() -> None:
    net = grown(20)
    everyone = ids(net, net.live())
    assert all(got == everyone for got in lists(net).values())
    for a in net.live():
        ups = {ev.member.id for ev in net.events[a] if type(ev) is MemberUp}
        assert ups == everyone - {net.engines[a].node_id}, a


def test_a_leaver_disappears_everywhere_with_reason_left() -> None:
    net = grown(16)
    gone = addr(5)
    gone_id = net.engines[gone].node_id
    net.call(gone, "leave")
    net.dead.add(gone)
    net.run(2.0)
    for a in net.live():
        assert gone_id not in net.engines[a].members.members(), a
        downs = [ev for ev in net.events[a] if type(ev) is MemberDown]
        assert [(d.member.id, d.reason) for d in downs] == [(gone_id, "left")], a


def test_crashed_nodes_disappear_with_reason_failed_and_no_one_else() -> None:
    net = grown(30, seed=3)
    crashed = [addr(i) for i in range(0, 30, 3)]
    for a in crashed:
        net.crash(a)
    net.run(15.0)
    survivors = ids(net, net.live())
    for a in net.live():
        assert set(net.engines[a].members.members()) == survivors, a
        downs = {(ev.member.id, ev.reason) for ev in net.events[a] if type(ev) is MemberDown}
        assert downs == {(i, "failed") for i in ids(net, crashed)}, a


def test_no_member_goes_down_in_a_stable_run() -> None:
    net = grown(30, seed=4)
    net.run(120.0)
    for a in net.live():
        assert not [ev for ev in net.events[a] if type(ev) is MemberDown], a


def test_metadata_reaches_every_member_list() -> None:
    net = grown(16, seed=2)
    src = addr(7)
    net.engines[src].members.set_meta({"zone": "eu-1"}, net.now)
    net.pump(src)
    net.run(2.0)
    me = net.engines[src].node_id
    for a in net.live():
        assert net.engines[a].members.members()[me].meta == {"zone": "eu-1"}, a


def test_sender_of_every_origin_is_known() -> None:
    net = grown(12, seed=5)
    for a in net.live():
        e = net.engines[a]
        for b in net.live():
            assert e.members.sender_of(net.engines[b].origin) == net.engines[b].node_id


def test_member_lists_merge_after_a_partition_heals() -> None:
    cfg = Config(shuffle_interval=2.0, repair_interval=0.5, neighbor_timeout=0.5)
    net, left, right = split_cluster(cfg, 9)
    # the links across the cut failed: each side took the nodes at their other ends for
    # failed, and the news spread over its side
    assert all(lists(net)[a] < ids(net, net.live()) for a in left + right)
    mark = {a: len(net.events[a]) for a in net.live()}
    net.heal()
    net.run(60.0)
    everyone = ids(net, net.live())
    assert all(got == everyone for got in lists(net).values())
    for a in net.live():  # every node taken for failed came back up there
        downs = {ev.member.id for ev in net.events[a][: mark[a]] if type(ev) is MemberDown}
        ups = {ev.member.id for ev in net.events[a][mark[a] :] if type(ev) is MemberUp}
        assert downs and downs <= ups, a


@pytest.mark.parametrize("status", [SUSPECT, FAILED])
def test_a_rumour_of_our_death_is_denied_with_a_higher_version(status: int) -> None:
    e = engine(address=peer(9))
    make_active(e, [peer(1)], now=0.0)
    own = e.members.own
    dead = MemberRecord(own.id, own.address, own.incarnation, own.version, status, {})
    e.on_frame(peer(1), [Members([dead], False)], 1.0)
    e.drain()
    e.tick(1.05)  # news goes out with the next 50 ms of news
    out = sent(e.drain()[0], Members)
    [[msg]] = out.values()
    assert msg.records[0].status == ALIVE and msg.records[0].version == own.version + 1


def test_a_suspect_stays_listed_until_its_timeout_then_is_failed() -> None:
    e = engine(member_suspect_timeout=3.0)
    make_active(e, [peer(1)], now=0.0)
    alive = MemberRecord("x", "10.2.0.1:1", 1, 4, ALIVE, {})
    e.on_frame(peer(1), [Members([alive], False)], 1.0)
    e.on_frame(peer(1), [Members([MemberRecord("x", "10.2.0.1:1", 1, 4, SUSPECT, {})], False)], 2.0)
    e.tick(4.9)
    assert "x" in e.members.members()
    e.tick(5.0)
    assert "x" not in e.members.members()
    downs = [ev for ev in e.drain()[3] if type(ev) is MemberDown]
    assert [(d.member.id, d.reason) for d in downs] == [("x", "failed")]


def test_a_denied_suspicion_takes_no_one_down() -> None:
    e = engine(member_suspect_timeout=3.0)
    make_active(e, [peer(1)], now=0.0)
    e.on_frame(peer(1), [Members([MemberRecord("x", "10.2.0.1:1", 1, 4, ALIVE, {})], False)], 1.0)
    e.on_frame(peer(1), [Members([MemberRecord("x", "10.2.0.1:1", 1, 4, SUSPECT, {})], False)], 2.0)
    e.on_frame(peer(1), [Members([MemberRecord("x", "10.2.0.1:1", 1, 5, ALIVE, {})], False)], 2.5)
    e.tick(10.0)
    assert "x" in e.members.members()
    assert not [ev for ev in e.drain()[3] if type(ev) is MemberDown]


def test_bad_member_records_are_counted_not_raised() -> None:
    e = engine()
    make_active(e, [peer(1)], now=0.0)
    bad = [
        MemberRecord("", "x:1", 1, 1, ALIVE, {}),
        MemberRecord("n", "x:1", 1, 0, ALIVE, {}),
        MemberRecord("n", "x:1", 1, 1, 7, {}),
        MemberRecord("n", "x:1", 1, 1, ALIVE, {"k": "v" * 1000}),
    ]
    e.on_frame(peer(1), [Members(bad, False)], 1.0)
    e.on_frame(peer(1), [MemberSync(bad[0], 5, 1)], 1.0)
    assert e.stats()["bad_messages"] == 5
    assert set(e.members.members()) == {e.node_id}


def test_member_news_from_a_stranger_is_ignored() -> None:
    e = engine()
    rec = MemberRecord("x", peer(3), 1, 1, ALIVE, {})
    e.on_frame(peer(3), [Members([rec], False)], 1.0)
    assert set(e.members.members()) == {e.node_id}


def test_the_table_is_bounded() -> None:
    e = engine(max_members=10)
    make_active(e, [peer(1)], now=0.0)
    recs = [MemberRecord(f"n{i}", f"10.2.0.{i}:1", 1, 1, ALIVE, {}) for i in range(20)]
    e.on_frame(peer(1), [Members(recs, False)], 1.0)
    assert len(e.members.records) == 10 and e.stats()["members_refused"] == 11


def test_dead_records_are_forgotten_after_the_retention() -> None:
    e = engine(member_dead_retention=30.0, member_sync_interval=1.0)
    make_active(e, [peer(1)], now=0.0)
    rec = MemberRecord("x", "10.2.0.1:1", 1, 1, LEFT, {})
    e.on_frame(peer(1), [Members([rec], False)], 1.0)
    assert "x" in e.members.records and make_origin("x", 1) in e.members.origins
    for t in range(2, 40):
        e.tick(float(t))
    assert "x" not in e.members.records and make_origin("x", 1) not in e.members.origins


def test_member_traffic_in_a_stable_run_is_one_small_message_per_interval() -> None:
    n = 50
    net = grown(n, seed=6, member_refresh_interval=0.0)  # (refreshes: the next test)
    before = dict(net.frames)
    ups0 = sum(e.stats()["neighbor_up"] for e in net.engines.values())
    net.run(60.0)
    tables = net.frames.get("Members", 0) - before.get("Members", 0)
    syncs = net.frames.get("MemberSync", 0) - before.get("MemberSync", 0)
    ups = sum(e.stats()["neighbor_up"] for e in net.engines.values()) - ups0
    # once the lists agree: one MemberSync per node per member_sync_interval (5 s), one
    # per link that came up meanwhile, and no table
    assert tables == 0
    assert syncs <= n * (60 // 5 + 1) + 2 * ups, (syncs, ups)


def test_a_node_whose_neighbours_all_crashed_with_it_is_found_by_the_refresh() -> None:
    net = grown(20, seed=7, member_refresh_interval=10.0)
    victim = addr(4)
    gone = [victim, *net.engines[victim].active_view]
    for a in gone:
        net.crash(a)  # no survivor has a link to the victim: no one notices it fail
    net.run(5.0)
    vid = net.engines[victim].node_id
    assert all(vid in net.engines[a].members.members() for a in net.live())
    net.run(3 * 10.0 + 5.0 + 3.0 + 1.0)  # three refreshes missed, a tick, the suspicion
    survivors = ids(net, net.live())
    assert all(set(net.engines[a].members.members()) == survivors for a in net.live())
    # and the refreshes of the living took no one else down
    for a in net.live():
        downs = {ev.member.id for ev in net.events[a] if type(ev) is MemberDown}
        assert downs == ids(net, gone), a


def test_news_goes_over_every_link_and_refreshes_along_the_tree() -> None:
    # news must reach every node the overlay connects even where the broadcast tree is
    # broken; refreshes (every member, every interval) keep to the cheaper tree
    from gossipfast._members import MemberList
    from gossipfast._outputs import Outputs
    from gossipfast._timers import TimerWheel

    out = Outputs()
    ml = MemberList("me", peer(9), 1, Config(), TimerWheel(), out, tree=lambda: (peer(1), peer(2)))
    for p in (peer(1), peer(2), peer(3)):
        ml.link_up(p, 0.0)
    out.take()

    def flooded(recs: list[MemberRecord], now: float) -> set[str]:
        ml.on_records(peer(1), recs, now, False)
        ml.flush()
        outbox = out.take()[0]
        return {p for p, msgs in outbox.items() if any(type(m) is Members for m in msgs)}

    x = MemberRecord("x", "10.2.0.1:1", 1, 4, ALIVE, {})
    assert flooded([x], 1.0) == {peer(2), peer(3)}  # a new member: every link but its source
    refresh = MemberRecord("x", "10.2.0.1:1", 1, 5, ALIVE, {})
    assert flooded([refresh], 2.0) == {peer(2)}  # a refresh: the tree only
    meta = MemberRecord("x", "10.2.0.1:1", 1, 6, ALIVE, {"zone": "b"})
    assert flooded([meta], 3.0) == {peer(2), peer(3)}  # new metadata is news
    suspect = MemberRecord("x", "10.2.0.1:1", 1, 6, SUSPECT, {"zone": "b"})
    assert flooded([suspect], 4.0) == {peer(2), peer(3)}  # so is a status
    assert flooded([suspect], 5.0) == set()  # and nothing that is not new here
