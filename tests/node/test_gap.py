"""Messages lost for good are reported (``Gap``), never silent: Gone answers, their
relay, the bounds against forged ranges, and partitions longer than the retention."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from support.enginekit import engine, make_active, peer, sent, split_cluster
from support.nodekit import FAST, until

import gossipfast
from gossipfast.config import Config
from gossipfast.types import Gap, origin_str
from gossipfast.wire import Digest, Gone, Gossip, IHave, Want

X = 0xABCDEF


def seasoned(**fields: Any):
    """An engine with neighbours 1 and 2 (from 10.0 on past its fresh-join baseline)."""
    e = engine(**fields)
    make_active(e, [peer(1), peer(2)], now=0.0)
    return e


def gaps(events: list) -> list[Gap]:
    return [ev for ev in events if type(ev) is Gap]


# -- the answer: Gone for ids seen but no longer stored ---------------------------------


def test_want_of_expired_ids_is_answered_with_gone() -> None:
    e = engine(store_max_age=5.0)
    o, _ = e.broadcast(b"1", 0.0)
    e.broadcast(b"2", 0.0)
    e.broadcast(b"3", 8.0)
    e.pt.expire(8.0)  # 1 and 2 are older than the store keeps
    make_active(e, [peer(1)], now=8.0)
    e.on_frame(peer(1), [Want([o, 1, 5])], 8.0)
    outbox, _, _, _ = e.drain()
    # 3 is stored; 4 and 5 were never sent: no answer for them
    assert outbox[peer(1)] == [Gossip(o, 3, 0, b"3"), Gone([o, 1, 2])]
    assert e.stats()["sent_gone"] == 1


def test_relay_answers_gone_only_for_ids_it_has_seen() -> None:
    e = seasoned(store_max_age=5.0)
    e.on_frame(peer(1), [Gossip(X, s, 0, b"x") for s in (1, 2, 4)], 1.0)
    e.pt.expire(10.0)
    e.drain()
    e.on_frame(peer(2), [Want([X, 1, 4])], 10.0)
    outbox, _, _, _ = e.drain()
    assert outbox == {peer(2): [Gone([X, 1, 2, X, 4, 4])]}  # 3: never seen here


def test_want_of_stored_ids_gets_no_gone() -> None:
    e = engine()
    o, _ = e.broadcast(b"1", 0.0)
    make_active(e, [peer(1)], now=1.0)
    e.on_frame(peer(1), [Want([o, 1, 1])], 1.0)
    assert sent(e.drain()[0], Gone) == {}


# -- the asker: record, report once, pass on ---------------------------------------------


def test_gone_is_reported_once_recorded_and_passed_on() -> None:
    e = seasoned()
    e.on_frame(peer(1), [Gossip(X, 2, 0, b"2")], 1.0)
    e.drain()
    e.on_frame(peer(1), [Gone([X, 1, 5])], 2.0)
    outbox, _, deliveries, events = e.drain()
    # 2 was delivered: never counted as lost
    assert gaps(events) == [Gap(origin_str(X), None, 4)]
    assert deliveries == []
    # passed on to the other neighbours only, as the ranges that were new here
    assert sent(outbox, Gone) == {peer(2): [Gone([X, 1, 1, X, 3, 5])]}
    s = e.stats()
    assert (s["lost"], s["gaps"], s["received_gone"]) == (4, 1, 1)
    # the same news again (from the other neighbour): nothing new, nothing passed on
    e.on_frame(peer(2), [Gone([X, 1, 5])], 2.1)
    outbox, _, _, events = e.drain()
    assert gaps(events) == [] and sent(outbox, Gone) == {}
    # a late copy of a lost id is not delivered (it was reported lost)
    e.on_frame(peer(2), [Gossip(X, 3, 1, b"3")], 2.2)
    assert e.drain()[2] == []
    assert e.stats()["lost"] == 4


def test_catch_up_stops_asking_for_lost_ids() -> None:
    e = seasoned()
    e.on_frame(peer(1), [Digest([X, 5])], 10.0)
    outbox, _, _, _ = e.drain()
    assert sent(outbox, Want) == {peer(1): [Want([X, 1, 5])]}
    e.on_frame(peer(1), [Gossip(X, 5, 0, b"5"), Gone([X, 1, 4])], 10.1)
    _, _, deliveries, events = e.drain()
    assert [d[1] for d in deliveries] == [5]
    assert gaps(events) == [Gap(origin_str(X), None, 4)]
    assert e.stats()["recovered"] == 1
    e.on_frame(peer(3), [Gossip(X, 6, 0, b"6")], 11.0)
    e.on_frame(peer(2), [Digest([X, 6])], 11.0)  # nothing left to ask for
    assert sent(e.drain()[0], Want) == {}


def test_ids_still_announced_are_not_declared_lost() -> None:
    e = seasoned(graft_timeout_1=0.5)
    e.on_frame(peer(2), [IHave([X, 3, 3, 1])], 1.0)  # a push of 3 may still come
    e.drain()
    e.on_frame(peer(1), [Gone([X, 1, 3])], 1.1)
    _, _, _, events = e.drain()
    assert gaps(events) == [Gap(origin_str(X), None, 2)]
    e.on_frame(peer(2), [Gossip(X, 3, 1, b"3")], 1.2)
    assert [d[1] for d in e.drain()[2]] == [3]


def test_gone_for_our_own_origin_or_from_a_stranger_is_ignored() -> None:
    e = seasoned()
    e.broadcast(b"1", 0.0)
    e.on_frame(peer(1), [Gone([e.origin, 1, 5])], 1.0)
    e.on_frame(peer(7), [Gone([X, 1, 5])], 1.0)
    outbox, _, _, events = e.drain()
    assert gaps(events) == [] and sent(outbox, Gone) == {}
    assert e.stats()["lost"] == 0


def test_fifo_delivery_stops_waiting_for_lost_ids() -> None:
    e = seasoned(fifo=True)
    e.on_frame(peer(1), [Gossip(X, 1, 0, b"1"), Gossip(X, 4, 0, b"4")], 1.0)
    assert [d[1] for d in e.drain()[2]] == [1]  # 4 waits for 2 and 3
    e.on_frame(peer(1), [Gone([X, 2, 3])], 1.1)
    _, _, deliveries, events = e.drain()
    assert [d[1] for d in deliveries] == [4]
    assert gaps(events) == [Gap(origin_str(X), None, 2)]
    assert e.stats()["fifo_skipped"] == 0


# -- hostile ranges: bounded work, bounded reports, counted --------------------------------


def test_forged_huge_gone_is_capped_and_counted() -> None:
    e = seasoned(catch_up_max=1000)
    e.on_frame(peer(1), [Gone([X, 1, (1 << 63) - 1])], 1.0)
    _, _, _, events = e.drain()
    assert gaps(events) == [Gap(origin_str(X), None, 1000)]
    assert e.stats()["lost"] == 1000
    assert e.stats()["bad_messages"] == 1
    assert e.pt.dedup.highest(X) == 1000
    # far beyond what we know of the origin: no evidence, ignored and counted
    e.on_frame(peer(1), [Gone([X, 1 << 62, (1 << 62) + 5, X + 1, 1 << 40, 1 << 40])], 1.1)
    _, _, _, events = e.drain()
    assert gaps(events) == []
    assert e.pt.dedup.highest(X) == 1000 and X + 1 not in e.pt.dedup
    assert e.stats()["bad_messages"] == 3
    # many ranges in one message: at most catch_up_max ids looked at in all
    ranges = []
    for k in range(50):
        ranges += [X + 10 + k, 1, 100]
    e.on_frame(peer(1), [Gone(ranges)], 1.2)
    _, _, _, events = e.drain()
    assert sum(g.count for g in gaps(events)) == 1000
    assert e.stats()["lost"] == 2000


def test_forged_digest_then_gone_reports_at_most_one_budget() -> None:
    e = seasoned(catch_up_max=500)
    e.on_frame(peer(1), [Digest([X, (1 << 63) - 1])], 10.0)
    outbox, _, _, _ = e.drain()
    assert sent(outbox, Want) == {peer(1): [Want([X, 1, 500])]}
    e.on_frame(peer(1), [Gone([X, 1, (1 << 63) - 1])], 10.1)
    _, _, _, events = e.drain()
    assert gaps(events) == [Gap(origin_str(X), None, 500)]
    assert len(e.pt.requests.requested) <= max(500, 1 << 16)


def test_malformed_gone_never_raises() -> None:
    e = seasoned()
    for bad in ([X, 1], [X, 5, 1], [-1, 1, 2], [X, 0, 3], [X, "a", 3], [1 << 64, 1, 1]):
        e.on_frame(peer(1), [Gone(bad)], 1.0)  # type: ignore[arg-type]
    _, _, _, events = e.drain()
    assert gaps(events) == []
    assert e.stats()["bad_messages"] == 6


# -- partitions: longer than the retention, and within it ----------------------------------


CFG = Config(shuffle_interval=2.0, repair_interval=0.5, neighbor_timeout=0.5, store_max_age=5.0)


@pytest.mark.parametrize("seed", [9, 4])
def test_split_longer_than_retention_ends_with_a_gap_wherever_messages_were_missed(
    seed: int,
) -> None:
    net, left, right = split_cluster(CFG, seed)
    sent_by: dict[int, set[int]] = {}  # origin -> seqs broadcast during the split
    for a, k in ((left[0], 3), (left[1], 2), (right[0], 4)):
        for j in range(k):
            o, s = net.broadcast(a, b"split %d" % j)
            sent_by.setdefault(o, set()).add(s)
            net.run(0.2)
    net.run(20.0)  # four times store_max_age: every store dropped them
    assert all(len(net.engines[a].pt.store) == 0 for a in net.live())
    net.heal()
    net.run(60.0)
    net.check_invariants()
    assert net.connected()
    side = {a: left for a in left} | {a: right for a in right}
    for a in net.live():
        e = net.engines[a]
        got = {(o, s) for o, s, _h, _p in net.delivered[a]}
        missed: dict[str, int] = {}
        for o, seqs in sent_by.items():
            seen = {s for s in seqs if (o, s) in got}
            home = next(b for b in net.engines if net.engines[b].origin == o)
            if side[home] is side[a]:
                if o != e.origin:
                    assert seen == seqs, (a, "lost a message of its own side")
                continue
            assert not seen, a  # too old when the halves met: not fetched
            missed[origin_str(o)] = len(seqs)
        reported: dict[str, int] = {}
        for g in gaps(net.events[a]):
            assert g.sender is None
            reported[g.origin] = reported.get(g.origin, 0) + g.count
        assert reported == missed, a
        assert e.stats()["lost"] == sum(missed.values())
    # the healed cluster delivers what is broadcast after the heal
    o, s = net.broadcast(right[3], b"after")
    net.run(3.0)
    for a in net.live():
        if a != right[3]:
            assert (o, s) in {(d[0], d[1]) for d in net.delivered[a]}, a


def test_nodes_that_missed_nothing_report_no_gap() -> None:
    net, left, right = split_cluster(CFG, 9)
    for j in range(3):
        net.broadcast(left[2], b"L%d" % j)
        net.run(0.2)
    net.run(20.0)
    net.heal()
    net.run(60.0)
    assert net.connected()
    lo = net.engines[left[2]].origin
    for a in left:
        assert gaps(net.events[a]) == [], a
        assert net.engines[a].stats()["lost"] == 0
    for a in right:
        assert sum(g.count for g in gaps(net.events[a])) == 3, a
        assert {g.origin for g in gaps(net.events[a])} == {origin_str(lo)}


def test_split_within_retention_delivers_everything_and_reports_no_gap() -> None:
    net, left, right = split_cluster(msgspec.structs.replace(CFG, store_max_age=120.0), 9)
    ids = []
    for a in (left[0], left[1], right[0]):
        for j in range(3):
            ids.append(net.broadcast(a, b"p%d" % j))
            net.run(0.2)
    net.run(20.0)
    net.heal()
    net.run(60.0)
    assert net.connected()
    for a in net.live():
        e = net.engines[a]
        got = {(o, s) for o, s, _h, _p in net.delivered[a]}
        assert {i for i in ids if i[0] != e.origin} <= got, a
        assert gaps(net.events[a]) == [] and e.stats()["lost"] == 0, a


# -- the public API: node.events() yields Gap ---------------------------------------------


@pytest.mark.network
@pytest.mark.timeout(60)
def test_node_events_yield_gap_with_the_sender(arun: Any) -> None:
    cfg = msgspec.structs.replace(FAST, store_max_age=0.2)

    async def main() -> None:
        a = gossipfast.Node("127.0.0.1:0", config=cfg, node_id="a")
        b = gossipfast.Node("127.0.0.1:0", config=cfg, node_id="b")
        c = gossipfast.Node("127.0.0.1:0", config=cfg, node_id="c")
        for n in (a, b, c):
            await n.start()
        got: dict[str, list[Any]] = {"a": [], "c": []}

        async def collect(node: gossipfast.Node, name: str) -> None:
            async for ev in node.events():
                got[name].append(ev)

        tasks = [asyncio.ensure_future(collect(a, "a")), asyncio.ensure_future(collect(c, "c"))]
        await a.join([c.address])
        # b, alone, broadcasts; its store drops the messages before anyone joins it
        for k in range(3):
            await b.broadcast(b"early %d" % k)
        await until(lambda: b.stats()["store_messages"] == 0, what="b's store expired")
        await b.join([c.address])

        def gap_of(name: str) -> list[Gap]:
            return [ev for ev in got[name] if isinstance(ev, Gap)]

        await until(lambda: gap_of("a") and gap_of("c"), what="a and c report the gap")
        for name, node in (("a", a), ("c", c)):
            gs = gap_of(name)
            assert sum(g.count for g in gs) == 3 and {g.origin for g in gs} == {b.origin}
            assert node.stats().lost == 3 and node.stats().gaps == len(gs)
        assert "b" in {g.sender for g in gap_of("c") + gap_of("a")}
        assert b.stats().lost == 0 and a.stats().delivered == 0
        for t in tasks:
            t.cancel()
        for n in (a, b, c):
            await n.leave()

    arun(main())


@pytest.mark.network
@pytest.mark.timeout(150)
def test_gone_storm_reports_bounded_losses_and_the_stream_flows(arun: Any, caplog: Any) -> None:
    """A hostile member's forged Gones: each makes the node record at most catch_up_max
    ids (of a fresh origin) as lost; memory stays bounded (run_attack) and every honest
    broadcast still reaches every honest node."""
    import time

    from transport import test_hostile as th  # the hostile-cluster kit

    if not th._can_bind(th.EVIL_HOST):
        pytest.skip(f"no {th.EVIL_HOST} loopback address")
    sent_n = [0]

    async def attack(h: Any) -> None:
        ev = await th._become_neighbour(h.nodes[0])
        t_end = time.monotonic() + 2.0
        k = 0
        while time.monotonic() < t_end:  # a fresh origin each time: every id is new
            k += 1
            ev.send(Gone([0xBAD0000 + k, 1, 1 << 40]))
            sent_n[0] += 1
            await ev.drain(0.2)
            await ev.read_some(0.01)
        ev.close()

    cfg = msgspec.structs.replace(th.HCFG, catch_up_max=100_000)
    _h, s, total, _ = th.run_attack(arun, caplog, attack, cfg)
    # every Gone looked at was cut (its range reaches past highest + catch_up_max); one
    # read after the flooder's link was dropped (a heartbeat timeout under the flood) is
    # ignored, neither cut nor recorded, so bad_messages may trail received_gone
    assert s["received_gone"] >= 1 and s["bad_messages"] >= 1
    assert 0 < s["lost"] <= s["bad_messages"] * cfg.catch_up_max
    print(
        f"\nGONE storm: {sent_n[0]} sent, {s['received_gone']} read, lost {s['lost']},"
        f" honest deliveries {total}"
    )
