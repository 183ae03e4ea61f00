"""Exactly-once under origin churn: restarts (new incarnations), floods of fresh origins.

An origin's dedup state is forgotten only once it has been unseen for longer than a copy
of its messages can still come (``store_max_age`` plus the 30 s request horizon), so
neither honest restarts nor a member's flood of fresh origins can make a message new
again; the table stays bounded, and honest new origins are not refused in normal runs.
Time is the engine's virtual ``now``; both builds run these tests.
"""

from __future__ import annotations

import gc
import heapq
import logging
import random
import tracemalloc

import pytest
from support.enginekit import Net, addr, engine, make_active, peer, sent

from gossipfast import wire
from gossipfast.types import make_origin

#: Seconds a copy may come after its message was first sent (the store's retention).
STORE_AGE = 30.0


def test_restart_churn_with_late_copies_delivers_nothing_twice() -> None:
    """1,000 restarts of 20 members during a steady stream; every message is delivered
    once although a late copy of each (re-sent gossip, up to ``store_max_age`` later)
    and catch-up answers to digests keep coming; the table cycles within its bound."""
    cap = 256
    e = engine(dedup_max_origins=cap, store_max_age=STORE_AGE, ihave_interval=0.0)
    peers = [peer(i) for i in range(1, 5)]
    make_active(e, peers)
    rng = random.Random(20)
    members = 20
    incarnation = [1] * members
    seq = [0] * members
    restarts = 0
    sent: dict[tuple[int, int], float] = {}  # id -> time first sent (the peers' store)
    events: list[tuple[float, int, str, object]] = []  # (time, n, peer, message)
    n = 0

    def at(t: float, p: str, msg: object) -> None:
        nonlocal n
        n += 1
        heapq.heappush(events, (t, n, p, msg))

    delivered: dict[tuple[int, int], int] = {}
    total = 0
    wants = 0
    now = 0.0
    step = 0.05
    next_digest = 10.0
    while restarts < 1000 or events:
        if restarts < 1000:
            now += step
            # a steady stream: each tick one member broadcasts a message
            m = rng.randrange(members)
            if rng.random() < 0.06:  # a restart: a new incarnation is a new origin
                incarnation[m] += 1
                seq[m] = 0
                restarts += 1
            o = make_origin(f"member-{m}", incarnation[m])
            seq[m] += 1
            total += 1
            key = (o, seq[m])
            sent[key] = now
            msg = wire.Gossip(o, seq[m], 2, b"p")
            if rng.random() > 0.05:  # 5% of first copies are lost on their way
                at(now + rng.uniform(0.0, 0.2), rng.choice(peers), msg)
            # the late copy: re-sent gossip or a graft answer, up to the store's age
            at(now + rng.uniform(0.0, STORE_AGE), rng.choice(peers), msg)
        else:
            now = events[0][0]
        if now >= next_digest:
            # a neighbour's catch-up digest over the origins its store still holds
            next_digest += 10.0
            high: dict[int, int] = {}
            for (o, s), t in sent.items():
                if now - t <= STORE_AGE:
                    high[o] = max(high.get(o, 0), s)
            at(now, rng.choice(peers), wire.Digest([x for o in high for x in (o, high[o])]))
        while events and events[0][0] <= now:
            t, _, p, msg = heapq.heappop(events)
            e.on_frame(p, [msg], t)
            e.tick(t)
            outbox, _, deliveries, _ = e.drain()
            for o, s, _h, _p in deliveries:
                delivered[(o, s)] = delivered.get((o, s), 0) + 1
            for m2 in outbox.get(p, []):
                if type(m2) is wire.Want:
                    wants += 1
                    r = m2.ranges
                    for i in range(0, len(r), 3):
                        for s in range(r[i + 1], r[i + 2] + 1):
                            t0 = sent.get((r[i], s))
                            if t0 is not None and t - t0 <= STORE_AGE:
                                at(t + 0.01, p, wire.Gossip(r[i], s, 2, b"p"))
        # forget what no store holds any more (bounded test memory)
        if len(sent) > 4000:
            sent = {k: v for k, v in sent.items() if now - v <= STORE_AGE}
    twice = [k for k, c in delivered.items() if c > 1]
    assert not twice, f"{len(twice)} messages delivered twice, e.g. {twice[:3]}"
    st = e.stats()
    assert st["origins_refused"] == 0 and st["origins_throttled"] == 0
    assert st["origins"] <= cap
    assert sum(incarnation) > cap  # the table cycled: idle incarnations were forgotten
    assert wants > 0 and st["duplicates"] > 0  # catch-up and late copies were exercised
    # every message was delivered (its late copy always comes)
    assert len(delivered) == st["delivered"] == total > 15_000


def test_honest_new_origins_are_not_refused_in_a_normal_run() -> None:
    """A 12-node cluster whose members restart over and over (each start a new origin):
    every broadcast reaches every node that was up, once; nothing is refused."""
    net = Net(12, seed=5)
    for i in range(1, 12):
        net.join(addr(i), [addr(0)])
        net.run(0.5)
    net.run(5.0)
    rng = random.Random(6)
    incarnation = dict.fromkeys(net.engines, 1)
    for _ in range(40):
        a = addr(rng.randrange(1, 12))
        net.crash(a)
        net.run(1.0)
        incarnation[a] += 1
        net.add(a, incarnation[a])
        net.join(a, [addr(0)])
        net.run(2.0)
        b = rng.choice(net.live())
        o, s = net.broadcast(b, b"after a restart")
        net.run(2.0)
        for x in net.live():
            if x != b:
                assert (o, s) in {d[:2] for d in net.delivered[x]}, (x, o, s)
    net.check_invariants()  # nothing delivered twice
    for e in net.engines.values():
        st = e.stats()
        assert st["origins_refused"] == 0 and st["origins_throttled"] == 0


def test_a_flood_of_fresh_origins_keeps_memory_bounded() -> None:
    """A member pushes 10 x dedup_max_origins fresh origins, mid-stream (each would need
    a ring): the table, its rings and the bytes it holds stay within the bound, honest
    origins stay tracked, and an honest new origin still gets in."""
    cap = 1024
    window = 4096
    e = engine(dedup_max_origins=cap, dedup_window=window)
    make_active(e, [peer(1), peer(2)])
    honest = [(o, 1) for o in range(1, 51)]
    e.on_frame(peer(1), [wire.Gossip(o, s, 1, b"h") for o, s in honest], 1.0)
    assert len(e.drain()[2]) == 50
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        t = 1.0
        for k in range(10):
            t += 5.0
            flood = [wire.Gossip((k + 1) << 32 | i, 100, 1, b"") for i in range(cap)]
            e.on_frame(peer(2), flood, t)
            e.drain()
        gc.collect()
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    st = e.stats()
    assert st["origins"] <= cap and e.pt.dedup.rings <= cap
    assert st["origins_throttled"] + st["origins_refused"] >= 9 * cap
    # the bound: a ring (window / 8 bytes) plus bookkeeping per origin; payloads of the
    # store and trees come on top (small here: empty payloads, 4096 trees at most)
    assert used - base <= cap * (window // 8 + 600) + 4 << 20, used - base
    e.on_frame(peer(1), [wire.Gossip(o, s, 1, b"h") for o, s in honest], t + 1.0)
    assert e.drain()[2] == []  # late copies of honest messages: not again
    e.on_frame(peer(1), [wire.Gossip(999, 1, 1, b"new")], t + 1.0)
    assert [d[:2] for d in e.drain()[2]] == [(999, 1)]


def test_dropped_new_origins_are_logged_once_and_never_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cap = 64
    e = engine(dedup_max_origins=cap, store_max_age=10.0)
    peers = [peer(i) for i in range(1, 6)]
    make_active(e, peers)
    outboxes = []
    with caplog.at_level(logging.WARNING, logger="gossipfast"):
        for k, p in enumerate(peers):  # each over its budget; then the table is full
            flood = [wire.Gossip(k << 16 | i, 1, 1, b"") for i in range(2 * cap)]
            e.on_frame(p, flood, 1.0 + k)
            outboxes.append(e.drain()[0])
    st = e.stats()
    assert st["origins_throttled"] > 0 and st["origins_refused"] > 0
    assert st["origins"] == cap and st["duplicates"] == 0 and st["bad_messages"] == 0
    assert st["delivered"] == cap == 5 * 2 * cap - st["origins_throttled"] - st["origins_refused"]
    assert all(sent(out, wire.Prune) == {} for out in outboxes)  # senders not pruned
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("origins_throttled" in m for m in msgs) == 1
    assert sum("origins_refused" in m for m in msgs) == 1
    # once the live origins are idle for store_max_age + 30 s, new ones get in again
    e.on_frame(peer(2), [wire.Gossip(12345, 1, 1, b"x")], 1.0 + 10.0 + 30.0)
    assert [d[:2] for d in e.drain()[2]] == [(12345, 1)]


def test_fifo_next_seq_table_stays_bounded_under_churn() -> None:
    """FIFO delivery's per-origin table forgets the origins dedup forgot (idle ones)."""
    cap = 64
    e = engine(dedup_max_origins=cap, store_max_age=1.0, fifo=True)
    make_active(e, [peer(1)])
    t = 0.0
    for o in range(1, 20 * cap):
        t += 2.0  # a new incarnation every 2 s: 16 seen within the 31 s idle horizon
        e.on_frame(peer(1), [wire.Gossip(o, 1, 1, b""), wire.Gossip(o, 2, 1, b"")], t)
        assert len(e.drain()[2]) == 2
        assert len(e.pt.fifo_order.next_seq) <= 2 * cap + 1
    st = e.stats()
    assert st["origins"] <= cap and st["origins_refused"] == st["origins_throttled"] == 0
