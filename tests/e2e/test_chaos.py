"""Chaos: 8 ``gossipfast run`` processes, kill -9 and restarts, partitions and heals.

A checker records every broadcast (a unique line written to a node's stdin) and every
delivery (a JSON line on a node's stdout). At the end, every message broadcast by a node
that stayed alive (never killed) must have been delivered to every other node that
stayed alive, exactly once; and no process ever delivers a message twice.

Partitions need network namespaces (root, ``ip`` and ``tc``): the nodes run in two
namespaces joined by one veth pair, and a partition drops every packet on it. Without
namespaces the test runs on loopback with crashes only (and says so).

Short variant in the default suite (about 20 s of chaos); the long one::

    GOSSIPFAST_CHAOS_SECONDS=180 python -m pytest tests/e2e/test_chaos.py -p no:cacheprovider -s
"""

from __future__ import annotations

import collections
import json
import os
import random
import subprocess
import time
from typing import Any

import pytest
from support.netns import netns_unavailable
from support.runproc import RunProc
from support.wait import wait_for

from gossipfast._procs import free_ports

pytestmark = [pytest.mark.network, pytest.mark.slow]

SECONDS = float(os.environ.get("GOSSIPFAST_CHAOS_SECONDS", "20"))
SEED = int(os.environ.get("GOSSIPFAST_CHAOS_SEED", "6"))
#: A folder to keep every node's debug log and stats lines in (``nodeN.log``).
KEEP = os.environ.get("GOSSIPFAST_CHAOS_KEEP", "")
N = 8


class Proc(RunProc):
    """One incarnation of node ``index``: a ``gossipfast run`` child process."""

    def __init__(self, index: int, address: str, seeds: list[str], prefix: list[str]) -> None:
        self.index = index
        self.delivered: collections.Counter[str] = collections.Counter()
        self._keep = 0  # lines of a traceback still to keep
        options = ["--log-level", "ERROR"]
        self._log = None
        if KEEP:
            # every incarnation's log and stats, appended to one file per node index
            options = ["--log-level", "DEBUG", "--stats-interval", "1"]
            self._log = open(os.path.join(KEEP, f"node{index}.log"), "a")  # noqa: SIM115
            self._log.write(f"=== start {time.time():.3f} {address}\n")
        super().__init__(address, seeds, options=options, prefix=prefix)

    def on_delivery(self, d: dict[str, Any]) -> None:
        self.delivered[d["payload"]] += 1

    def on_stderr(self, line: str) -> None:
        if self._log is not None:
            self._log.write(line)
        if "Traceback" in line or " ERROR " in line or "CRITICAL" in line:
            self._keep = 40
        if self._keep:
            self._keep -= 1
            self.errors.append(line.rstrip())

    def snapshot(self) -> collections.Counter[str]:
        """A copy of the deliveries (the reader thread keeps adding to them)."""
        with self.lock:
            return collections.Counter(self.delivered)

    def has(self, payload: str) -> bool:
        with self.lock:
            return payload in self.delivered


def _run(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True, timeout=10)


def _netns_reason() -> str | None:
    if os.environ.get("GOSSIPFAST_CHAOS_NO_NETNS"):
        return "GOSSIPFAST_CHAOS_NO_NETNS is set"
    return netns_unavailable("tc")


class Net:
    """Where the nodes live: two namespaces joined by a veth pair, or plain loopback."""

    def __init__(self) -> None:
        self.reason = _netns_reason()
        self.ns: list[str] = []
        self.dev: list[str] = []
        self.cut = False
        if self.reason is None:
            tag = os.getpid() % 100000
            self.ns = [f"gfxa{tag}", f"gfxb{tag}"]
            self.dev = [f"gfxva{tag}", f"gfxvb{tag}"]
            for ns in self.ns:
                _run("ip", "netns", "add", ns)
            ips = ("10.78.0.1/24", "10.78.0.2/24")
            _run("ip", "link", "add", self.dev[0], "netns", self.ns[0], "type", "veth",
                 "peer", "name", self.dev[1], "netns", self.ns[1])  # fmt: skip
            for ns, dev, ip in zip(self.ns, self.dev, ips):
                _run("ip", "-n", ns, "addr", "add", ip, "dev", dev)
                _run("ip", "-n", ns, "link", "set", dev, "up")
                _run("ip", "-n", ns, "link", "set", "lo", "up")
            self.addresses = [
                f"10.78.0.{1 + i // (N // 2)}:{7100 + i}" for i in range(N)
            ]  # nodes 0-3 on side A, 4-7 on side B
        else:
            self.addresses = [f"127.0.0.1:{p}" for p in free_ports(N)]

    @property
    def partitions_available(self) -> bool:
        return self.reason is None

    def side(self, i: int) -> int:
        return i // (N // 2)

    def prefix(self, i: int) -> list[str]:
        return ["ip", "netns", "exec", self.ns[self.side(i)]] if self.ns else []

    def partition(self) -> None:
        for ns, dev in zip(self.ns, self.dev):
            _run("tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "blackhole")
        self.cut = True

    def heal(self) -> None:
        for ns, dev in zip(self.ns, self.dev):
            subprocess.run(["tc", "-n", ns, "qdisc", "del", "dev", dev, "root"],
                           capture_output=True, timeout=10)  # fmt: skip
        self.cut = False

    def close(self) -> None:
        for ns in self.ns:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


@pytest.mark.timeout(int(SECONDS * 3 + 240))
def test_chaos_kill_restart_partition_heal() -> None:
    rng = random.Random(SEED)
    net = Net()
    procs: list[Proc] = []
    dead: list[Proc] = []  # killed incarnations (kept for the duplicate check)
    killed: set[int] = set()  # node indexes killed at least once
    sent: dict[str, int] = {}  # payload -> sender index
    figures = collections.Counter[str]()
    try:
        addrs = net.addresses
        procs.append(Proc(0, addrs[0], [], net.prefix(0)))
        # no head start for the seed: a joiner retries until it is up
        for i in range(1, N):
            procs.append(Proc(i, addrs[i], [addrs[0]], net.prefix(i)))

        def connected() -> bool:  # a probe from node 0 reached everyone
            return all(any(p.startswith("probe") for p in x.snapshot()) for x in procs[1:])

        k = 0
        while True:  # a probe every 0.3 s until one arrives everywhere
            k += 1
            assert k < 150, "the cluster did not connect"
            procs[0].send(f"probe {k}")
            if wait_for(connected, 0.3):
                break

        # Chaos: broadcasts from random live nodes; a kill -9 (restarted later) or a
        # partition (healed later) every couple of seconds. At most 2 nodes down at once,
        # and 4 nodes (chosen now) are never killed.
        victims = rng.sample(range(N), 4)
        down: dict[int, float] = {}  # index -> restart time
        t_start = time.monotonic()
        t_end = t_start + SECONDS
        # text -> (seconds into the chaos, a partition on, nodes down) when it was sent
        context: dict[str, tuple[float, bool, list[int]]] = {}
        next_event = time.monotonic() + 1.5
        heal_at = 0.0
        seq = 0
        while time.monotonic() < t_end:
            now = time.monotonic()
            for i, when in list(down.items()):
                if now >= when:
                    del down[i]
                    others = [a for j, a in enumerate(addrs) if j != i and j not in down]
                    procs[i] = Proc(i, addrs[i], others, net.prefix(i))
                    figures["restarts"] += 1
            if net.cut and now >= heal_at:
                net.heal()
                figures["heals"] += 1
            if now >= next_event:
                next_event = now + rng.uniform(1.5, 3.0)
                if net.partitions_available and not net.cut and rng.random() < 0.35:
                    net.partition()
                    heal_at = now + rng.uniform(2.0, 4.0)
                    figures["partitions"] += 1
                elif len(down) < 2:
                    i = rng.choice([v for v in victims if v not in down])
                    procs[i].kill9()
                    dead.append(procs[i])
                    killed.add(i)
                    down[i] = now + rng.uniform(1.0, 3.0)
                    figures["crashes"] += 1
            for _ in range(2):
                i = rng.choice([j for j in range(N) if j not in down])
                seq += 1
                text = f"m {i} {seq}"
                procs[i].send(text)
                sent[text] = i
                context[text] = (now - t_start, net.cut, sorted(down))
            time.sleep(0.05)  # the broadcasts' pace
        if net.cut:
            net.heal()
            figures["heals"] += 1
        for i in list(down):
            others = [a for j, a in enumerate(addrs) if j != i and j not in down]
            procs[i] = Proc(i, addrs[i], others, net.prefix(i))
            figures["restarts"] += 1
            del down[i]

        stayed = [p for p in procs if p.index not in killed]
        want = {
            p.index: {t for t, s in sent.items() if s in {q.index for q in stayed} and s != p.index}
            for p in stayed
        }

        def complete() -> bool:
            return all(all(p.has(t) for t in want[p.index]) for p in stayed)

        wait_for(complete, 60)
        losses = sum(1 for p in stayed for t in want[p.index] if not p.has(t))
        counts = [p.snapshot() for p in [*procs, *dead]]
        dups = sum(n - 1 for c in counts for t, n in c.items() if t.startswith("m ") and n > 1)
        deliveries = sum(sum(c.values()) for c in counts)
        where = "namespaces" if net.partitions_available else f"loopback: {net.reason}"
        print(
            f"\nchaos ({where}, {SECONDS:g} s, seed {SEED}): messages={len(sent)} "
            f"from-stayed-alive={sum(1 for s in sent.values() if s not in killed)} "
            f"deliveries={deliveries} checked={sum(len(w) for w in want.values())} "
            f"crashes={figures['crashes']} restarts={figures['restarts']} "
            f"partitions={figures['partitions']} heals={figures['heals']} "
            f"stayed-alive={len(stayed)} losses={losses} duplicates={dups}"
        )
        assert figures["crashes"] >= 1
        assert figures["partitions"] >= 1 or not net.partitions_available
        lost = sorted(
            (context[t], t, p.index) for p in stayed for t in want[p.index] if not p.has(t)
        )
        if KEEP:
            for p in [*procs, *dead]:
                if p._log is not None:
                    p._log.write(f"=== stats at end {json.dumps(p.stats)}\n")
                    p._log.flush()
        if lost:
            groups: dict[tuple[int, bool, str], set[int]] = collections.defaultdict(set)
            for (at, cut, d), t, i in lost:
                groups[(sent[t], cut, f"{at:.0f}s down={d}")].add(i)
            print("lost (sender, partition on, when) -> missing at:", dict(groups))
        assert losses == 0, [f"{t} at {at:.1f} s (cut={cut}, down={d}) missing at node {i}"
                             for (at, cut, d), t, i in lost[:12]]  # fmt: skip
        assert dups == 0
        errors = [e for p in [*procs, *dead] for e in p.errors]
        assert not errors, "\n".join(errors[:60])
    finally:
        for p in procs:
            p.stop()
        net.heal()
        net.close()
