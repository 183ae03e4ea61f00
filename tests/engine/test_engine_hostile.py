"""Hostile members contained in the engine, per peer (both builds, engine time only).

A member that passed the handshake can announce ids that do not exist (IHAVE flood) and
ask for payloads again and again (GRAFT/WANT storm). The transport pauses reading from
it (``peer_read_rate``, ``peer_control_rate``); these tests hold the engine's own limits,
which also bind in the simulator and whatever the transport lets through:

- ``peer_missing_max``: the missing-message entries one announcer's IHAVEs may hold;
- ``peer_graft_rate``: the missing messages we request from one peer per second;
- ``peer_answer_rate``: the payloads we resend to one peer per second.
"""

from __future__ import annotations

import gc
import random
import tracemalloc

from support.enginekit import engine, make_active, peer, sent

from gossipfast.engine import Engine
from gossipfast.wire import Gossip, Graft, IHave, Prune, Want

FLOODER = peer(9)
HONEST = peer(1)


def _flood(e: Engine, r: random.Random, now: float, batches: int = 1, ids: int = 1000) -> None:
    """``batches`` IHaves from the flooder, each of ``ids`` unknown ids (a random origin
    each, seq 1 .. 2**40)."""
    for _ in range(batches):
        runs: list[int] = []
        base = r.getrandbits(63)
        s = r.randrange(1, 1 << 40)
        for k in range(ids):
            runs += (base + k, s, s, 1)
        e.on_frame(FLOODER, [IHave(runs)], now)


def _requested_from(outbox: dict[str, list], p: str) -> int:
    """Ids asked of ``p`` in an outbox: Graft entries with a seq, Want range lengths."""
    n = 0
    for g in sent(outbox, Graft).get(p, []):
        n += sum(1 for i in range(1, len(g.ids), 2) if g.ids[i] != 0)
    for w in sent(outbox, Want).get(p, []):
        n += sum(w.ranges[i + 2] - w.ranges[i + 1] + 1 for i in range(0, len(w.ranges), 3))
    return n


def _run_until(e: Engine, t: float) -> dict[str, list]:
    """Fire every timer due up to ``t`` (as a driver does, at each next deadline);
    returns the messages sent meanwhile, per peer."""
    out: dict[str, list] = {}
    while True:
        d = e.next_deadline()
        if d is None or d > t:
            break
        e.tick(d)
        for p, msgs in e.drain()[0].items():
            out.setdefault(p, []).extend(msgs)
    e.tick(t)
    for p, msgs in e.drain()[0].items():
        out.setdefault(p, []).extend(msgs)
    return out


def _lazy_pair(**fields: object) -> Engine:
    e = engine(**fields)  # type: ignore[arg-type]
    make_active(e, [HONEST, FLOODER, peer(2)])
    e.on_frame(HONEST, [Prune([])], 0.5)  # both announcers are lazy links
    e.on_frame(FLOODER, [Prune([])], 0.5)
    e.drain()
    return e


def test_one_announcer_holds_at_most_its_share_of_missing_entries() -> None:
    e = _lazy_pair(peer_missing_max=5000)
    r = random.Random(1)
    _flood(e, r, 1.0, batches=20)  # 20,000 unknown ids
    e.tick(1.2)
    st = e.stats()
    assert st["missing"] == 5000
    assert st["ihave_dropped"] >= 15_000
    assert e.pt.requests.budgets[FLOODER].missing == 5000


def test_an_honest_announcer_is_recovered_while_a_flooder_floods() -> None:
    # The node's 65,536 missing entries, filled by one flooder, would leave none for an
    # honest announcer: with its share capped (default 16,384), the honest ids still get
    # their entries, are grafted from the honest peer and delivered.
    results = {}
    for share in (16384, 1 << 16):
        e = _lazy_pair(peer_missing_max=share)
        r = random.Random(2)
        now = 1.0
        for _ in range(70):  # 70,000 unknown ids, flooded faster than they expire
            _flood(e, r, now)
            now += 0.001
        now += 0.045  # every held announcement looked at, no entry expired yet
        e.tick(now)
        e.drain()
        e.on_frame(HONEST, [IHave([77, 1, 10, 2])], now)  # 10 ids nobody pushes
        e.tick(now + 0.2)
        out = e.drain()[0]
        asked = [g for g in sent(out, Graft).get(HONEST, [])]
        got = 0
        if asked:
            e.on_frame(HONEST, [Gossip(77, s, 2, b"x%d" % s) for s in range(1, 11)], now + 0.21)
            got = sum(1 for d in e.drain()[2] if d[0] == 77)
        results[share] = (got, e.stats()["recovered"], e.stats()["ihave_dropped"])
    got, recovered, dropped = results[16384]
    assert got == 10 and recovered >= 10 and dropped > 0
    # (the same flood against the node-wide cap alone leaves the honest ids untracked)
    assert results[1 << 16][0] == 0


def test_grafts_toward_a_flooder_stay_within_its_budget() -> None:
    rate = 200.0
    e = _lazy_pair(peer_graft_rate=rate, peer_missing_max=1000)
    r = random.Random(3)
    now = 1.0
    asked = 0
    for _ in range(300):  # 3 s of 30,000 unknown ids a second
        _flood(e, r, now, ids=300)
        e.tick(now)
        asked += _requested_from(e.drain()[0], FLOODER)
        assert e.stats()["missing"] <= 1000
        now += 0.01
    for _ in range(100):  # and 1 s for the last timers to fire
        e.tick(now)
        asked += _requested_from(e.drain()[0], FLOODER)
        now += 0.01
    st = e.stats()
    # at most the burst (1 s) plus the rate over the time that passed
    assert 0 < asked <= rate * (1.0 + (now - 1.0)), asked
    assert st["grafts_withheld"] >= 5_000
    assert st["missing"] == 0  # unanswered entries expire; none stays behind


def test_a_spent_budget_asks_the_next_announcer() -> None:
    e = _lazy_pair(peer_graft_rate=1.0, graft_timeout_1=0.08)
    e.on_frame(FLOODER, [IHave([77, 1, 1, 1])], 1.0)  # spends its one token
    e.tick(1.1)
    assert _requested_from(e.drain()[0], FLOODER) == 1
    e.on_frame(FLOODER, [IHave([77, 2, 2, 1])], 1.1)  # first announcer, budget spent
    e.on_frame(HONEST, [IHave([77, 2, 2, 1])], 1.1)
    e.tick(1.2)
    out = e.drain()[0]
    assert _requested_from(out, FLOODER) == 0 and _requested_from(out, HONEST) == 1
    assert e.stats()["grafts_withheld"] == 1


def _with_store(n: int, **fields: object) -> Engine:
    e = engine(**fields)  # type: ignore[arg-type]
    make_active(e, [peer(1), peer(2)])
    for k in range(n):
        e.broadcast(b"m%d" % k, 0.5)
    e.drain()
    return e


def _payloads_to(e: Engine, p: str) -> int:
    return len(sent(e.drain()[0], Gossip).get(p, []))


def test_answered_wants_are_capped_per_peer() -> None:
    e = _with_store(1000, peer_answer_rate=100.0, catch_up_max=50)
    o = e.origin
    got = 0
    for _ in range(20):  # "send me everything", over and over within one second
        e.on_frame(peer(1), [Want([o, 1, 1000])], 1.0)
        got += _payloads_to(e, peer(1))
    # burst max(rate, catch_up_max) = 100; each Want answers catch_up_max at most
    assert got == 100
    st = e.stats()
    assert st["answers_refused"] == 20 * 50 - 100
    e.on_frame(peer(1), [Want([o, 1, 1000])], 1.25)  # a quarter second refills 25
    assert _payloads_to(e, peer(1)) == 25
    # another peer has its own budget
    e.on_frame(peer(2), [Want([o, 1, 1000])], 1.25)
    assert _payloads_to(e, peer(2)) == 50


def test_answered_grafts_are_capped_per_peer() -> None:
    e = _with_store(1000, peer_answer_rate=100.0, catch_up_max=10)
    o = e.origin
    ids: list[int] = []
    for s in range(1, 301):
        ids += (o, s)
    e.on_frame(peer(1), [Graft(ids)], 1.0)
    assert _payloads_to(e, peer(1)) == 100
    e.on_frame(peer(1), [Graft(ids)], 1.0)
    assert _payloads_to(e, peer(1)) == 0
    assert e.stats()["answers_refused"] == 500
    e.on_frame(peer(1), [Graft([o, 0])], 1.0)  # a link-only graft costs nothing
    assert e.stats()["answers_refused"] == 500
    e.on_frame(peer(2), [Graft(ids[:20])], 1.0)
    assert _payloads_to(e, peer(2)) == 10
    e.on_frame(peer(1), [Graft(ids)], 2.0)  # a second later: 100 more
    assert _payloads_to(e, peer(1)) == 100


def test_a_catch_up_want_fits_in_one_burst_by_default() -> None:
    # the answer budget's burst is at least catch_up_max: an honest catch-up is whole
    e = _with_store(3000, catch_up_max=3000, peer_answer_rate=1000.0)
    e.on_frame(peer(1), [Want([e.origin, 1, 3000])], 1.0)
    assert _payloads_to(e, peer(1)) == 3000
    assert e.stats()["answers_refused"] == 0


def test_ihave_flood_memory_is_bounded_per_announcer() -> None:
    """One announcer floods unknown ids for ever: the engine's memory levels off at its
    share (default peer_missing_max) plus the requests its graft budget allows."""
    e = _lazy_pair(catch_up_max=1000)
    r = random.Random(4)
    now = [1.0]

    def flood(batches: int) -> None:
        for _ in range(batches):  # 300,000 ids a second: faster than entries expire
            _flood(e, r, now[0], batches=3)
            now[0] += 0.01
            e.tick(now[0])
            e.drain()

    tracemalloc.start()
    try:
        gc.collect()
        base, _ = tracemalloc.get_traced_memory()
        flood(30)
        gc.collect()
        warm, _ = tracemalloc.get_traced_memory()
        peak_missing = 0
        for _ in range(3):
            flood(10)
            peak_missing = max(peak_missing, e.stats()["missing"])
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    st = e.stats()
    assert peak_missing <= 16384 and e.pt.requests.budgets[FLOODER].missing <= 16384
    # requests toward a peer that never answers: one share, then no more (30 s)
    assert len(e.pt.requests.requested) <= 16384 and e.pt.requests.budgets[FLOODER].asked <= 16384
    assert st["ihave_dropped"] > 0 and st["grafts_withheld"] > 0
    print(
        f"\nIHAVE flood per announcer: {(warm - base) / 2**20:.1f} MiB at warm-up, "
        f"{(end - base) / 2**20:.1f} at end; missing {st['missing']}, requests "
        f"{len(e.pt.requests.requested)}, dropped {st['ihave_dropped']}, "
        f"withheld {st['grafts_withheld']}"
    )
    assert end - warm < 2 << 20, (warm, end)


def test_a_peer_that_never_answers_is_asked_its_share_then_nothing() -> None:
    e = _lazy_pair(peer_missing_max=50)
    r = random.Random(6)
    now = 1.0
    asked = 0
    for _ in range(10):  # 10 x 40 unknown ids, each round grafted and never answered
        _flood(e, r, now, ids=40)
        now += 0.2
        asked += _requested_from(_run_until(e, now), FLOODER)
    assert asked == 50 and e.pt.requests.budgets[FLOODER].asked == 50
    st = e.stats()  # every other id was either not tracked or not requested
    assert st["grafts_withheld"] > 0 and st["grafts_withheld"] + st["ihave_dropped"] == 350
    # an honest peer that answers keeps being asked meanwhile
    e.on_frame(HONEST, [IHave([77, 1, 3, 2])], now)
    assert _requested_from(_run_until(e, now + 0.2), HONEST) == 3
    e.on_frame(HONEST, [Gossip(77, s, 2, b"x") for s in (1, 2, 3)], now + 0.21)
    assert e.pt.requests.budgets[HONEST].asked == 0 and e.stats()["recovered"] == 3
    # unanswered requests are forgotten after their 30 s (at the next housekeeping
    # round, every store_max_age / 8 = 15 s): the peer is asked again
    now += 46.0
    _run_until(e, now)
    assert e.pt.requests.budgets[FLOODER].asked == 0
    _flood(e, r, now, ids=10)
    assert _requested_from(_run_until(e, now + 0.2), FLOODER) == 10
