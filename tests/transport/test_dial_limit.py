"""``Config.dial_rate``: forged views against a real cluster on loopback dial at most
that many never-reached addresses a second, honest joins go on meanwhile, and the
default is above what simulated joins need.

An attacker (from 127.0.0.2, as in test_hostile.py) becomes a neighbour of one honest
node and streams ForwardJoin and Shuffle messages naming hundreds of forged addresses,
all loopback ports nobody listens on. Before the limit, the attacked node and the nodes
its walks reached dialled every one of them (about 300 failed dials in 3 s).
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from typing import Any

import msgspec
import pytest
from transport.test_hostile import (
    EVIL_HOST,
    HCFG,
    Honest,
    _become_neighbour,
    _can_bind,
    _closed_port,
    run_attack,
    until,
)

import gossipfast
from gossipfast import wire
from gossipfast.config import Config
from gossipfast.engine import Engine
from gossipfast.sim import SIM_CONFIG, Simulator

RATE = 10.0


@pytest.mark.network
@pytest.mark.skipif(not _can_bind(EVIL_HOST), reason=f"no {EVIL_HOST} loopback address")
@pytest.mark.timeout(150)
def test_forged_views_dial_at_most_dial_rate_and_joins_go_on(arun: Any, caplog: Any) -> None:
    cfg = msgspec.structs.replace(HCFG, dial_rate=RATE)
    dialled: dict[str, list[tuple[float, str]]] = collections.defaultdict(list)
    window: list[float] = []
    figures: dict[str, Any] = {}

    async def attack(h: Honest) -> None:
        loop = asyncio.get_running_loop()
        target = h.nodes[0]
        for node in h.nodes:  # record every dial the limit lets through, per node
            tr = node._transport
            assert tr is not None
            dialer = tr.dialer
            orig = dialer._dial_task

            def record(link: Any, orig: Any = orig, log: list = dialled[node.address]) -> Any:
                log.append((loop.time(), link.peer))
                return orig(link)

            dialer._dial_task = record  # type: ignore[method-assign]
        ev = await _become_neighbour(target)
        forged = [f"127.0.0.1:{_closed_port()}" for _ in range(300)]
        newcomer = gossipfast.Node("127.0.0.1:0", config=cfg)
        await newcomer.start()
        got: collections.Counter[bytes] = collections.Counter()

        async def collect() -> None:
            async for m in newcomer.messages():
                assert isinstance(m, gossipfast.Message)
                got[m.payload] += 1

        reader = asyncio.ensure_future(collect())
        window.append(loop.time())
        t_end = time.monotonic() + 3.0
        k = 0
        joined = None
        while time.monotonic() < t_end:
            k += 1
            ev.send(wire.ForwardJoin(forged[k % 300], 1 << 62))
            ev.send(wire.Shuffle(forged[(k + 7) % 300], 1 << 62, forged[(k * 10) % 290 :][:10]))
            await ev.drain(0.5)
            await asyncio.sleep(0.01)  # the attack's pace
            if joined is None and k == 50:  # an honest node joins through the target
                joined = asyncio.ensure_future(newcomer.join([target.address]))
        assert joined is not None
        await joined  # JoinError would fail the test
        window.append(loop.time())
        ev.close()
        # the newcomer is a full member: it gets broadcasts and its own reach everyone
        hello = b"from the newcomer"
        await newcomer.broadcast(hello)
        await until(lambda: all(c[hello] == 1 for c in h.got), 20, "newcomer's broadcast")
        await until(lambda: len(got) > 0, 20, "a broadcast reached the newcomer")
        figures["forged"] = set(forged) | {ev.address}
        figures["limited"] = sum(n.stats()["dials_limited"] for n in h.nodes)
        figures["newcomer"] = newcomer.address
        reader.cancel()
        close = h.close

        async def close_with_newcomer() -> None:
            # the newcomer logs its causes once too: count it among the nodes
            h.nodes.append(newcomer)
            await close()

        h.close = close_with_newcomer  # type: ignore[method-assign]

    h, s, total, _ = run_attack(arun, caplog, attack, cfg)
    t0, t1 = window
    allowed = RATE + RATE * (t1 - t0)  # a full bucket, then dial_rate
    honest = {n.address for n in h.nodes} | {figures["newcomer"]}
    per_node = {}
    for addr, log in dialled.items():
        per_node[addr] = sum(1 for t, p in log if t0 <= t <= t1 and p not in honest)
        assert per_node[addr] <= allowed, (addr, per_node[addr], allowed)
    assert all(
        p in figures["forged"] for log in dialled.values() for _t, p in log if p not in honest
    )
    assert s["dials_limited"] >= 1  # the attacked node hit the limit
    print(
        f"\nforged views at dial_rate={RATE:g}: dials to forged addresses per node in "
        f"{t1 - t0:.1f} s {sorted(per_node.values())} (allowed {allowed:.0f}), "
        f"refused {figures['limited']}, honest deliveries {total}"
    )


class _CountDials:
    """Wraps an engine in the simulator: records, per send to a peer with no open link
    (a dial in the transport), those to addresses this node never reached before."""

    def __init__(self, engine: Any, counter: _DialCounter, index: int) -> None:
        self._e = engine
        self._counter = counter
        self._i = index

    def __getattr__(self, name: str) -> Any:
        return getattr(self._e, name)

    def drain(self) -> Any:
        out = self._e.drain()
        sim = self._counter.sim
        if sim is not None:
            i = self._i
            for peer, msgs in out[0].items():
                j = sim.index.get(peer)
                if not msgs or (j is not None and sim.ladj[i].get(j) is not None):
                    continue  # nothing to send, or a link is open
                if (i, peer) not in self._counter.reached:
                    self._counter.dials[i].append(sim.now)
                if j is not None and sim.alive[j]:
                    self._counter.reached.add((i, peer))
        return out


class _DialCounter:
    def __init__(self) -> None:
        self.sim: Simulator | None = None
        self.reached: set[tuple[int, str]] = set()
        self.dials: dict[int, list[float]] = collections.defaultdict(list)
        self.n = 0

    def factory(self, *args: Any, **kw: Any) -> _CountDials:
        self.n += 1
        return _CountDials(Engine(*args, **kw), self, self.n - 1)


def _refused(times: list[float], rate: float) -> int:
    """Dials a dial_rate bucket (burst one second's worth) would have refused."""
    tokens, at, refused = rate, 0.0, 0
    for t in times:
        tokens = min(rate, tokens + (t - at) * rate)
        at = t
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            refused += 1
    return refused


def _most_in_a_second(times: list[float]) -> int:
    best = k = 0
    for j, t in enumerate(times):
        while times[k] < t - 1.0:
            k += 1
        best = max(best, j - k + 1)
    return best


def simulated_join(n: int, seed: int, over: float = 0.0) -> dict[int, list[float]]:
    """``n`` nodes join node 0 (all at once, or spread over ``over`` seconds through
    random earlier nodes), then a minute of shuffles: each node's dials to addresses it
    never reached, by simulated time."""
    counter = _DialCounter()
    sim = Simulator(SIM_CONFIG, seed=seed, engine_factory=counter.factory)
    counter.sim = sim
    for _ in range(n):
        sim.add_node()
    pick = random.Random(seed)
    for i in range(1, n):
        seeds = [0] if not over else [pick.randrange(i)]
        sim.at(over * i / n, lambda _now, i=i, seeds=seeds: sim.join(i, seeds))
    sim.run_until(over + 60.0)
    return {i: sorted(t) for i, t in counter.dials.items()}


@pytest.mark.timeout(60)
def test_default_dial_rate_is_not_hit_by_a_10_node_start() -> None:
    rate = Config().dial_rate
    for seed in (1, 2, 3):
        for over in (0.0, 1.0):
            dials = simulated_join(10, seed, over)
            assert dials, "the join dialled no one"
            assert max(map(_most_in_a_second, dials.values())) <= rate / 4
            assert sum(_refused(t, rate) for t in dials.values()) == 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_default_dial_rate_is_not_hit_by_a_1000_node_join() -> None:
    """The worst case measured: 1,000 nodes joining one seed in the same instant (300
    in the pure-Python build, as test_sim.py does)."""
    rate = Config().dial_rate
    n = 1000 if gossipfast.COMPILED else 300
    for seed in (1, 2) if gossipfast.COMPILED else (1,):
        dials = simulated_join(n, seed)
        most = max(map(_most_in_a_second, dials.values()))
        assert sum(_refused(t, rate) for t in dials.values()) == 0
        assert most <= rate * 0.75, most  # a margin: at most 20 were measured (seeds 1-4)
        print(
            f"\n{n} nodes joining at once (seed {seed}): at most {most} dials to new "
            f"addresses by one node in 1 s; none refused at dial_rate={rate:g}"
        )
