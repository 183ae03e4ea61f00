"""HyParView's repair (``gossipfast._repair``): repair rounds, isolation and the probes of
failed peers, driven through a lone HyParView (whichever build is loaded)."""

from __future__ import annotations

import random
from typing import Any

from gossipfast._hyparview import HyParView
from gossipfast._outputs import Outputs
from gossipfast._timers import TimerWheel
from gossipfast.config import Config
from gossipfast.wire import Join, Neighbor, Shuffle

ME = "10.0.0.1:7000"


def peer(i: int) -> str:
    return f"10.0.1.{i}:7000"


def hyparview(**fields: Any) -> tuple[HyParView, Outputs]:
    """A started HyParView and its outputs; its ``down`` events go to ``outputs.events``."""
    out = Outputs()
    hv = HyParView(
        ME,
        Config(**fields),
        random.Random(7),
        TimerWheel(),
        out,
        up=lambda p, now: None,
        down=lambda p, reason, now: out.events.append((p, reason)),
    )
    hv.start(0.0)
    return hv, out


def take(out: Outputs) -> dict[str, list]:
    outbox: dict[str, list] = out.take()[0]
    return outbox


def fire(hv: HyParView, until: float, handler: str) -> list[float]:
    """Run ``hv``'s timers up to ``until``; the times a ``handler`` timer fired."""
    times: list[float] = []
    t = 0.0
    while t < until:
        t = round(t + 0.05, 2)
        for item in hv.timers.expire(t):
            if getattr(item[0], "__name__", "") == handler:
                times.append(t)
            item[0](item, t)
    return times


def test_heard_addresses_are_a_bounded_fifo_without_ourselves() -> None:
    hv, _ = hyparview(passive_view_size=2)
    r = hv.repair
    for i in range(6):
        r.hear(peer(i))
    r.hear(ME)
    r.hear(peer(5))
    assert list(r.heard) == [peer(2), peer(3), peer(4), peer(5)]  # twice the passive view


def test_the_isolation_clock_starts_with_the_last_active_peer_and_stops_at_a_link() -> None:
    hv, out = hyparview()
    hv.add_active(peer(1), 1.0, notify=False)
    hv.add_active(peer(2), 1.0, notify=False)
    hv.remove_active(peer(1), "failed", 2.0, keep=False)
    assert hv.repair.empty_since == -1.0
    hv.remove_active(peer(2), "failed", 3.0, keep=False)
    assert hv.repair.empty_since == 3.0 and hv.repair.changed and hv.repair.backoff == 1
    assert out.events == [(peer(1), "failed"), (peer(2), "failed")]
    hv.add_active(peer(3), 4.0, notify=False)
    assert hv.repair.empty_since == -1.0


def test_rounds_that_change_nothing_back_off_to_eight_times_and_escalate_once() -> None:
    hv, out = hyparview(active_view_size=4, repair_interval=1.0)
    hv.add_active(peer(1), 0.0, notify=False)
    r = hv.repair
    r.run(1.0)  # the link above was a change
    assert (r.backoff, r.stuck, hv.escalations) == (1, False, 0)
    backoffs = []
    for t in range(2, 7):
        r.run(float(t))
        backoffs.append(r.backoff)
    assert backoffs == [2, 4, 8, 8, 8]
    assert r.stuck and hv.escalations == 1  # at most half full and nothing changed
    hv.add_passive(peer(9))
    hv.fill(7.0)
    assert take(out)[peer(9)] == [Neighbor(True)]  # stuck: the request cannot be refused


def test_after_size_refusals_a_round_waits_for_the_next_one() -> None:
    hv, _ = hyparview(active_view_size=2, passive_view_size=10)
    hv.add_active(peer(1), 0.0, notify=False)
    for i in range(10, 16):
        hv.add_passive(peer(i))
    hv.fill(0.0)
    asked = []
    while hv.pending:
        (p,) = hv.pending  # one request for the one free slot
        asked.append(p)
        hv.on_neighbor_reply(p, False, 0.1)
    assert len(asked) == 3  # the first two refusals are retried at once, the third waits
    assert hv.tried == set(asked) and hv.repair.armed


def test_a_node_alone_for_a_repair_interval_rejoins_through_its_seeds() -> None:
    hv, out = hyparview(repair_interval=1.0)
    hv.join([peer(1)], 0.0)
    assert take(out) == {peer(1): [Join()]}
    times = []
    for t in (0.5, 1.0, 1.5, 2.0, 3.0):
        hv.repair.run(t)
        if take(out).get(peer(1)) == [Join()]:
            times.append(t)
    assert times == [1.0, 2.0, 3.0] and hv.rejoins == 3


def test_failed_peers_are_bounded_and_evicted_at_random() -> None:
    hv, _ = hyparview(passive_view_size=3)
    for i in range(1, 8):
        hv.repair.bury(peer(i), 1.0)
    assert len(hv.graveyard) == 3 and peer(7) in hv.graveyard
    assert all(hv.graveyard.values())  # forced probes while nothing came back
    assert hv.repair.reconnect_armed


def test_a_failed_peer_that_answers_is_a_backup_again_and_the_others_are_asked_gently() -> None:
    hv, out = hyparview(reconnect_interval=1.0)
    for i in (1, 2, 3):
        hv.repair.bury(peer(i), 0.0)
    hv.alive(peer(9))  # never failed: nothing changes
    assert hv.graveyard == dict.fromkeys([peer(1), peer(2), peer(3)], True)
    hv.alive(peer(2))
    assert hv.graveyard == {peer(1): False, peer(3): False}
    assert peer(2) in hv.passive
    hv.repair.reconnect(1.0)
    ((p, msgs),) = take(out).items()
    assert msgs == [Shuffle(ME, 0, [peer(2)])] and hv.probes == 1
    assert p in (peer(1), peer(3)) and not hv.pending  # a shuffle books no request


def test_a_forced_probe_is_a_pending_high_priority_request_every_interval() -> None:
    hv, out = hyparview(reconnect_interval=1.0, neighbor_timeout=0.5)
    hv.repair.bury(peer(1), 0.0)
    times = fire(hv, 5.0, "timer_reconnect")
    assert len(times) == 5 and hv.probes == 5  # one probe an interval (+-25% jitter)
    assert take(out) == {peer(1): [Neighbor(True)] * 5}
    assert peer(1) in hv.tried  # each timed out: a refused candidate of this round
