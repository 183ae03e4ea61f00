"""Validators: a message every honest node refuses stops at the first honest hop."""

from __future__ import annotations

from support.enginekit import Net, addr, engine, make_active, peer, sent

from gossipfast.config import Config
from gossipfast.wire import Digest, Gone, Gossip, IHave, Want

X = 0xABCDEF


def _honest(origin: int, seq: int, hops: int, payload: bytes) -> bool:
    return not payload.startswith(b"bad")


def test_a_hostile_members_bad_messages_stop_at_its_neighbours() -> None:
    net = Net(24, Config(), seed=3)
    for i in range(1, 24):
        net.join(addr(i), [addr(net.rng.randrange(i))])
        net.run(0.2)
    net.run(5.0)
    hostile = addr(0)
    for a in net.live():
        if a != hostile:
            net.engines[a].set_validator(_honest)
    for k in range(20):
        net.broadcast(hostile, b"bad %d" % k)
        net.broadcast(hostile, b"good %d" % k)
        net.run(0.2)
    net.run(10.0)
    neighbours = set(net.engines[hostile].active_view)
    for a in net.live():
        if a == hostile:
            continue
        got = [p for _o, _s, _h, p in net.delivered[a]]
        assert sorted(got) == sorted(b"good %d" % k for k in range(20)), a
        rejected = net.engines[a].stats()["rejected"]
        # only the hostile node's own neighbours ever saw a bad payload
        assert (rejected > 0) == (a in neighbours), (a, rejected)


def test_a_refused_message_is_not_stored_announced_or_reported_gone() -> None:
    e = engine(ihave_interval=0.0)
    make_active(e, [peer(1), peer(2)], now=0.0)
    e.set_validator(_honest)
    e.on_frame(peer(1), [IHave([X, 1, 1, 0])], 0.1)  # announced first: a graft timer runs
    e.on_frame(peer(1), [Gossip(X, 1, 0, b"bad"), Gossip(X, 2, 0, b"fine")], 0.2)
    outbox, _, deliveries, _ = e.drain()
    assert [d[3] for d in deliveries] == [b"fine"]
    assert all(m.seq != 1 for msgs in sent(outbox, Gossip).values() for m in msgs)
    assert e.stats()["rejected"] == 1 and e.stats()["missing"] == 0
    e.tick(5.0)  # no graft for the refused one
    e.drain()
    e.on_frame(peer(2), [Want([X, 1, 2])], 6.0)
    outbox, _, _, _ = e.drain()
    assert sent(outbox, Gossip) == {peer(2): [Gossip(X, 2, 1, b"fine")]}
    assert sent(outbox, Gone) == {}  # refused, not lost
    # and a digest does not make it ask for it again
    e.on_frame(peer(2), [Digest([X, 2])], 7.0)
    assert sent(e.drain()[0], Want) == {}
