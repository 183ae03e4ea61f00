"""The simulator's network model on its own: links, latency, loss, partitions, failures
(:class:`gossipfast.sim.core.Network`, read through the events it puts on its heap)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from gossipfast.sim.core import Network

# core's event kinds: heap entries are (time, counter, kind, a, b, c, d)
DELIVER, FAIL, CLOSED, IDLE = 0, 2, 3, 4


def make_net(n: int, **kw: Any) -> Network:
    """``n`` live nodes ``n<i>:1``, no links; 10 ms links, no loss, no jitter."""
    params: dict[str, Any] = {
        "seed": 1,
        "latency": (0.01, 0.01),
        "jitter": 0.0,
        "loss": 0.0,
        "hb_delay": 5.0,
        "dial_delay": 3.0,
        "dial_rtts": 1.0,
        "idle_close": 2.0,
    }
    params.update(kw)
    alive: bytearray = bytearray()
    addr: list[str] = []
    act: list[set[int]] = []
    net = Network(random.Random(params["seed"]), alive, addr, act, **params)
    for i in range(n):
        alive.append(1)
        addr.append(f"n{i}:1")
        act.append(set())
        net.add_node()
    return net


def events(net: Network, kind: int) -> list[tuple]:
    return sorted(e for e in net.heap if e[2] == kind)


def test_bad_latency_and_loss_are_refused() -> None:
    with pytest.raises(ValueError, match="latency"):
        make_net(0, latency=(0.05, 0.01))
    with pytest.raises(ValueError, match="loss"):
        make_net(0, loss=1.0)


def test_a_first_send_dials_then_the_link_is_open_both_ways() -> None:
    net = make_net(2)
    net.act[0].add(1)
    net.send(0, 1, ["a"], 0.0)
    ((t, _, _, i, j, epoch, msgs),) = events(net, DELIVER)
    assert (i, j, msgs) == (0, 1, ["a"])
    assert t == pytest.approx(0.03)  # a handshake round trip, then one latency
    assert net.ladj[0] == {1: epoch} and net.ladj[1] == {0: epoch}
    net.send(1, 0, ["b"], 1.0)  # the open link: one latency, same connection
    assert events(net, DELIVER)[-1][0] == pytest.approx(1.01)
    assert events(net, DELIVER)[-1][5] == epoch
    assert events(net, IDLE) == []  # an active link is never idle


def test_a_link_keeps_its_messages_in_order_under_jitter() -> None:
    net = make_net(2, latency=(0.01, 0.05), jitter=5.0)
    for k in range(100):
        net.send(0, 1, [k], k * 0.001)
    arrivals = sorted(net.heap)
    assert [e[6][0] for e in arrivals if e[2] == DELIVER] == list(range(100))


def test_latency_is_fixed_per_pair_symmetric_and_seeded() -> None:
    net = make_net(20, latency=(0.01, 0.1), seed=3)
    lats = [net.link_latency(i, j) for i in range(20) for j in range(i + 1, 20)]
    assert all(0.01 <= x <= 0.1 for x in lats) and len(set(lats)) > 100
    assert net.link_latency(4, 7) == net.link_latency(7, 4)
    assert make_net(20, latency=(0.01, 0.1), seed=3).link_latency(4, 7) == net.link_latency(4, 7)
    assert make_net(20, latency=(0.01, 0.1), seed=4).link_latency(4, 7) != net.link_latency(4, 7)


def test_loss_counts_what_it_drops() -> None:
    net = make_net(2, loss=0.5)
    for _ in range(200):
        net.send(0, 1, ["x"], 0.0)
    kept = sum(len(e[6]) for e in events(net, DELIVER))
    assert net.lost == 200 - kept and 60 < kept < 140


def test_a_send_to_a_dead_node_fails_once_after_the_dial_timeout() -> None:
    net = make_net(2)
    net.alive[1] = 0
    net.send(0, 1, ["x", "y"], 1.0)
    net.send(0, 1, ["z"], 1.5)  # a notice is pending already
    assert net.dropped == 3
    assert [(e[0], e[3], e[4]) for e in events(net, FAIL)] == [(4.0, 0, "n1:1")]
    net.fail_due(0, "n1:1")
    net.send(0, 1, ["w"], 4.0)
    assert len(events(net, FAIL)) == 2


def test_a_crash_breaks_every_link_and_live_peers_see_it_fail() -> None:
    net = make_net(3)
    net.send(1, 0, ["x"], 0.0)
    net.send(1, 2, ["x"], 0.0)
    net.alive[1] = 0
    net.alive[2] = 0  # crashed too: told nothing
    net.cut(1, 10.0)
    assert net.ladj == [{}, {}, {}]
    assert [(e[0], e[3], e[4]) for e in events(net, FAIL)] == [(15.0, 0, "n1:1")]


def test_close_flushes_then_the_peer_reads_eof_and_refuses_late_data() -> None:
    net = make_net(2)
    net.send(0, 1, ["bye"], 0.0)
    epoch = net.ladj[0][1]
    net.close_link(0, 1, 0.0)
    assert net.ladj[0] == {} and net.ladj[1] == {0: epoch}  # half-closed
    ((t, _, _, a, b, c, _),) = events(net, CLOSED)
    assert (a, b, c) == (1, 0, epoch)
    assert t == pytest.approx(0.03)  # not before the data sent ahead of it
    assert not net.arrives(1, 0, epoch)  # what 1 sends before the EOF is refused
    assert net.arrives(0, 1, epoch)
    assert net.eof(1, 0, epoch) and net.ladj[1] == {}
    assert not net.eof(1, 0, epoch)  # read once


def test_a_partition_cuts_links_across_groups_until_healed() -> None:
    net = make_net(4)
    for i, j in ((0, 1), (1, 2), (2, 3)):
        net.send(i, j, ["x"], 0.0)
    net.partition([[0, 1], [2, 3]], 1.0)
    assert net.ladj[1] == {0: net.ladj[0][1]} and net.ladj[2] == {3: net.ladj[3][2]}
    fails = [(e[0], e[3], e[4]) for e in events(net, FAIL)]
    assert fails == [(6.0, 1, "n2:1"), (6.0, 2, "n1:1")]
    assert not net.arrives(1, 2, 99) and net.arrives(0, 1, 99)
    net.send(0, 3, ["x"], 2.0)
    assert net.dropped == 1
    net.heal()
    assert net.arrives(1, 2, 99)
    assert net.group == [0, 0, 0, 0]


def test_an_idle_link_without_active_peers_closes_silently() -> None:
    net = make_net(3, idle_close=1.0)
    net.send(0, 1, ["x"], 0.0)  # a one-off message to a non-neighbour
    ((t, _, _, lk, _, _, _),) = events(net, IDLE)
    assert t == 1.0
    net.send(0, 1, ["y"], 0.5)  # used again: the check moves on
    net.heap.clear()
    net.idle_check(lk, 1.0)
    ((t, _, _, lk2, _, _, _),) = events(net, IDLE)
    assert (t, lk2) == (1.5, lk) and 1 in net.ladj[0]
    net.idle_check(lk, 1.5)
    assert net.ladj[0] == {} and net.ladj[1] == {}
    # a link that carries an active view stays open
    net.send(0, 2, ["x"], 2.0)
    net.act[2].add(0)
    lk3 = events(net, IDLE)[-1][3]
    net.idle_check(lk3, 10.0)
    assert 2 in net.ladj[0]


def test_purge_forgets_past_arrivals_and_dead_refusals() -> None:
    net = make_net(2)
    net.send(0, 1, ["x"], 0.0)
    net.close_link(0, 1, 0.0)
    net.eof(1, 0, net.ladj[1][0])
    assert net._last and net._dead_dir
    net.purge(40.0)
    assert net._last == {} and net._dead_dir == {} and net.next_purge == 70.0
