"""Multi-process tests: every node is its own ``python -m gossipfast run`` process.

Nodes talk over loopback TCP; each test runs once with children on the asyncio loop and
once on uvloop (``--loop``, parametrized by the ``loop_kind`` fixture).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import pytest
from support.netns import ip, netns_unavailable, tc
from support.runproc import RunProc, start_nodes, wait_for

from gossipfast._procs import NodeProc, ProcError

pytestmark = [pytest.mark.network, pytest.mark.slow]

GF = [sys.executable, "-m", "gossipfast"]


class Proc(RunProc):
    """A ``gossipfast run`` child: lines to its stdin, deliveries read from its stdout."""

    def __init__(
        self,
        index: int,
        address: str,
        seed: str | None,
        extra: list[str],
        loop: str,
        prefix: tuple[str, ...] = (),
    ) -> None:
        self.index = index
        self.lines: list[dict[str, Any]] = []
        options = ["--log-level", "WARNING", "--stats-interval", "0.3", "--loop", loop]
        super().__init__(
            address,
            [seed] if seed else [],
            options=options,
            extra=extra,
            prefix=prefix,
        )

    def on_delivery(self, d: dict[str, Any]) -> None:
        self.lines.append(d)

    def payloads(self) -> list[str]:
        with self.lock:
            return [d["payload"] for d in self.lines]


def start_cluster(n: int, loop: str, extra: list[str] | None = None) -> list[Proc]:
    def spawn(i: int, listen: str, seeds: list[str]) -> Proc:
        return Proc(i, listen, seeds[0] if seeds else None, extra or [], loop)

    procs = start_nodes(n, spawn, timeout=40)  # each one's ready line
    # probe from the seed until every other node delivers one
    deadline = time.monotonic() + 40
    k = 0
    while time.monotonic() < deadline:
        k += 1
        procs[0].send(f"probe {k}")
        time.sleep(0.3)
        if all(any(p.startswith("probe") for p in x.payloads()) for x in procs[1:]):
            return procs
    for p in procs:
        p.stop()
    raise AssertionError("cluster did not connect")


def data_counts(proc: Proc) -> Counter[str]:
    return Counter(p for p in proc.payloads() if p.startswith("m "))


@pytest.mark.timeout(240)
def test_eight_processes_thousand_broadcasts_exactly_once(loop_kind: str) -> None:
    rng = random.Random(1)
    procs = start_cluster(8, loop_kind, ["--meta", "role=test"])
    try:
        # a settled cluster: every member list holds the eight (a message that overtakes
        # its sender's member record, moments after the join, has no sender yet)
        settled = wait_for(lambda: all(p.stats.get("members") == 8 for p in procs), 30)
        assert settled, [p.stats.get("members") for p in procs]
        sent: dict[str, int] = {}
        for k in range(1000):
            i = rng.randrange(8)
            text = f"m {k} from {i}"
            sent[text] = i
            procs[i].send(text)
            if k % 100 == 99:
                time.sleep(0.05)

        def done() -> bool:
            return all(
                sum(data_counts(p).values()) >= sum(1 for s in sent.values() if s != p.index)
                for p in procs
            )

        wait_for(done, 60)
        time.sleep(0.5)  # a quiet window, not a wait: late duplicates would show in it
        for p in procs:
            counts = data_counts(p)
            want = {t for t, s in sent.items() if s != p.index}
            assert set(counts) == want, f"node {p.index}: {len(want - set(counts))} missing"
            assert max(counts.values()) == 1, f"node {p.index} delivered a duplicate"
            assert not p.errors, p.errors[:3]
            with p.lock:
                senders = {d["payload"]: d["sender"] for d in p.lines}
            # every line names the node that broadcast it
            wrong = [(t, senders[t]) for t in sorted(want) if senders[t] != procs[sent[t]].node_id]
            assert not wrong, f"node {p.index}: {len(wrong)} wrong senders, e.g. {wrong[:3]}"
        # every member list holds the eight
        for p in procs:
            assert p.wait_stats(5)
            assert p.stats["members"] == 8 and p.stats["members_dead"] == 0
    finally:
        for p in procs:
            p.stop()


@pytest.mark.timeout(300)
def test_kill_nine_three_of_eight_during_a_stream(loop_kind: str) -> None:
    rng = random.Random(7)
    procs = start_cluster(8, loop_kind)
    victims = set(rng.sample(range(1, 8), 3))
    survivors = [p for p in procs if p.index not in victims]
    try:
        sent: dict[str, tuple[int, str]] = {}  # text -> (sender, phase)
        k = 0

        def emit(pool: list[Proc], phase: str, count: int, pause: float) -> None:
            nonlocal k
            for _ in range(count):
                p = rng.choice(pool)
                text = f"m {k} from {p.index} {phase}"
                k += 1
                sent[text] = (p.index, phase)
                p.send(text)
                time.sleep(pause)

        emit(procs, "before", 200, 0.003)
        for v in victims:
            os.kill(procs[v].p.pid, signal.SIGKILL)
        # keep streaming from the survivors while the crash is being detected
        emit(survivors, "during", 200, 0.003)
        dead = {procs[v].address for v in victims}

        def views_clean() -> bool:
            views = [set(p.stats.get("active_view", ())) for p in survivors]
            return all(v and not (v & dead) for v in views)

        # failure detected, overlay repaired: the survivors' stats lines say so
        assert wait_for(views_clean, 20), [p.stats.get("active_view") for p in survivors]
        assert all(not procs[v].alive() for v in victims)
        emit(survivors, "after", 300, 0.002)

        def expected(p: Proc) -> set[str]:
            return {t for t, (s, _) in sent.items() if s != p.index and s not in victims}

        wait_for(lambda: all(expected(p) <= set(data_counts(p)) for p in survivors), 40)
        time.sleep(0.5)  # a quiet window, not a wait: late duplicates would show in it
        for p in survivors:
            counts = data_counts(p)
            got = set(counts)
            for phase in ("before", "during", "after"):
                want = {t for t in expected(p) if sent[t][1] == phase}
                missing = want - got
                assert not missing, f"node {p.index} missed {len(missing)} of {phase}"
            assert max(counts.values()) == 1, f"node {p.index} delivered a duplicate"
        # what a killed node got out before dying reached all survivors or none
        from_victims = {t for t, (s, _) in sent.items() if s in victims}
        for t in from_victims:
            seen = [t in data_counts(p) for p in survivors]
            assert all(seen) or not any(seen), f"{t!r} reached only some survivors"
        # the survivors' active views still hold none of the dead, and are not empty
        assert wait_for(views_clean, 5), [p.stats.get("active_view") for p in survivors]
    finally:
        for p in procs:
            p.stop()


@pytest.mark.timeout(120)
def test_process_restarted_at_same_address_rejoins(loop_kind: str) -> None:
    procs = start_cluster(4, loop_kind)
    try:
        old = procs[3]
        old.send("m before")
        assert wait_for(lambda: "m before" in procs[0].payloads(), 20)
        old_origin = next(d for d in procs[0].lines if d["payload"] == "m before")["origin"]
        os.kill(old.p.pid, signal.SIGKILL)
        old.p.wait(timeout=10)
        new = Proc(3, old.address, procs[0].address, [], loop_kind)  # same port, new start
        procs[3] = new
        assert new.wait_ready(20) == old.address
        k = 0
        while not any(p.startswith("m probe") for p in new.payloads()):
            k += 1
            assert k < 100, "the restarted node never received a broadcast"
            procs[1].send(f"m probe {k}")
            time.sleep(0.2)
        new.send("m hello again")
        for p in procs[:3]:
            assert wait_for(lambda p=p: "m hello again" in p.payloads(), 20), p.index
        line = next(d for d in procs[0].lines if d["payload"] == "m hello again")
        assert line["origin"] != old_origin  # a new member, not the old incarnation
        for p in procs:
            assert max(data_counts(p).values()) == 1
    finally:
        for p in procs:
            p.stop()


@pytest.mark.timeout(120)
def test_sigterm_leaves_gracefully(loop_kind: str) -> None:
    procs = start_cluster(3, loop_kind)
    try:
        t0 = time.monotonic()
        procs[2].p.send_signal(signal.SIGTERM)
        assert procs[2].p.wait(timeout=10) == 0
        assert time.monotonic() - t0 < 5
        procs[1].send("m after")
        assert wait_for(lambda: "m after" in procs[0].payloads(), 10)
    finally:
        for p in procs:
            p.stop()


@pytest.mark.timeout(120)
def test_cluster_command_runs_non_interactively() -> None:
    out = subprocess.run(
        [*GF, "cluster", "--nodes", "3", "--rate", "100", "--duration", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    s = json.loads(out.stdout.strip().splitlines()[-1])
    assert s["nodes"] == 3 and s["broadcasts"] >= 150
    assert s["deliveries"] == s["expected"] == 2 * s["broadcasts"]
    assert s["duplicates"] == 0 and s["p50_ms"] > 0
    assert "sent=" in out.stderr  # the progress lines went to the (non-TTY) console


@pytest.mark.timeout(60)
def test_start_nodes_stops_every_node_when_one_cannot_start() -> None:
    """A node that exits before its ready line: the error says why, none is left running."""
    started: list[NodeProc] = []

    def spawn(i: int, listen: str, seeds: list[str]) -> NodeProc:
        bad = ["heartbeat_timeout=-1"] if i == 2 else []
        started.append(NodeProc(listen, seeds, options=["--log-level", "WARNING"], settings=bad))
        return started[-1]

    with pytest.raises(ProcError, match=r"exited .* before it was ready: .*heartbeat_timeout"):
        start_nodes(3, spawn, timeout=30)
    assert len(started) == 3
    assert started[0].address != "127.0.0.1:0"  # the seed's ready line gave its port
    assert not any(p.alive() for p in started)


def test_run_rejects_bad_options() -> None:
    bad = subprocess.run(
        [*GF, "run", "--listen", "127.0.0.1:0", "--set", "heartbeat_timeout=-1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode != 0 and "heartbeat_timeout" in bad.stderr


@pytest.mark.parametrize(
    ("meta", "says"), [("zone", "is not KEY=VALUE"), ("k=" + "v" * 600, "member_meta_max")]
)
def test_run_rejects_bad_meta(meta: str, says: str) -> None:
    bad = subprocess.run(
        [*GF, "run", "--listen", "127.0.0.1:0", "--meta", meta],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and says in bad.stderr and "Traceback" not in bad.stderr


# ---------------------------------------------------------------- partition (netns)


@pytest.fixture
def two_netns() -> Any:
    """Two fresh network namespaces joined by one veth pair (10.77.0.1 <-> 10.77.0.2)."""
    reason = netns_unavailable("tc")
    if reason:
        pytest.skip(reason)
    tag = os.getpid() % 100000
    a, b = f"gfa{tag}", f"gfb{tag}"
    va, vb = f"gfva{tag}", f"gfvb{tag}"
    ip("netns", "add", a)
    ip("netns", "add", b)
    try:
        ip("link", "add", va, "netns", a, "type", "veth", "peer", "name", vb, "netns", b)
        for ns, dev, cidr in ((a, va, "10.77.0.1/24"), (b, vb, "10.77.0.2/24")):
            ip("-n", ns, "addr", "add", cidr, "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        yield {"a": a, "b": b, "va": va, "vb": vb}
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


@pytest.mark.timeout(180)
def test_partition_heals_and_catches_up(two_netns: dict[str, str], loop_kind: str) -> None:
    ns_a, ns_b = two_netns["a"], two_netns["b"]
    rng = random.Random(3)
    side = {}
    procs: list[Proc] = []
    try:
        for i in range(6):
            ns, host = (ns_a, "10.77.0.1") if i < 3 else (ns_b, "10.77.0.2")
            seed = None if i == 0 else "10.77.0.1:7000"
            procs.append(
                Proc(i, f"{host}:{7000 + i}", seed, [], loop_kind, ("ip", "netns", "exec", ns))
            )
            side[i] = ns
            if i == 0:
                procs[0].wait_ready(20)  # the seed listens before the others dial it
        k = 0
        while not all(any(p.startswith("probe") for p in x.payloads()) for x in procs[1:]):
            k += 1
            assert k < 100, "the cluster did not connect"
            procs[0].send(f"probe {k}")
            time.sleep(0.3)
        sent: dict[str, tuple[int, str]] = {}

        def emit(phase: str, n: int) -> None:
            for j in range(n):
                p = rng.choice(procs)
                text = f"m {phase} {j} from {p.index}"
                sent[text] = (p.index, phase)
                p.send(text)
                time.sleep(0.005)

        def everything(p: Proc) -> set[str]:
            return {t for t, (s, _) in sent.items() if s != p.index}

        emit("pre", 60)
        assert wait_for(lambda: all(everything(p) <= set(data_counts(p)) for p in procs), 20)
        # the partition: every packet on the veth pair is dropped, both ways (the link
        # stays up, so each side keeps talking to itself over its local addresses)
        for ns, dev in ((ns_a, two_netns["va"]), (ns_b, two_netns["vb"])):
            tc("-n", ns, "qdisc", "add", "dev", dev, "root", "blackhole")
        cut = {p.index: p.stats_lines for p in procs}
        far = {p.index: {q.address for q in procs if side[q.index] != side[p.index]} for p in procs}

        def split_seen() -> bool:
            # a stats line since the cut, with no link to the other side in the view
            return all(
                p.stats_lines > cut[p.index] and not far[p.index] & set(p.stats["active_view"])
                for p in procs
            )

        assert wait_for(split_seen, 20), {p.index: p.stats.get("active_view") for p in procs}
        emit("split", 60)
        # each side keeps working on its own
        for p in procs:
            same = {
                t
                for t, (s, ph) in sent.items()
                if ph == "split" and s != p.index and side[s] == side[p.index]
            }
            assert wait_for(lambda p=p, same=same: same <= set(data_counts(p)), 20), p.index
        for ns, dev in ((ns_a, two_netns["va"]), (ns_b, two_netns["vb"])):
            tc("-n", ns, "qdisc", "del", "dev", dev, "root")  # heal
        emit("healed", 30)
        wait_for(lambda: all(everything(p) <= set(data_counts(p)) for p in procs), 30)
        views = {p.index: p.stats.get("active_view") for p in procs}
        for p in procs:
            got = data_counts(p)
            for phase in ("pre", "split", "healed"):
                want = {t for t in everything(p) if sent[t][1] == phase}
                missing = want - set(got)
                assert not missing, (
                    f"node {p.index} missed {len(missing)} {phase} messages; views {views}"
                )
            assert max(got.values()) == 1, f"node {p.index} delivered a duplicate"
    finally:
        for p in procs:
            p.stop()


@pytest.mark.timeout(60)
def test_run_exit_on_eof_broadcasts_piped_lines() -> None:
    a = Proc(0, "127.0.0.1:0", None, [], "auto")
    try:
        seed = a.wait_ready(20)
        # a short-lived node: lines piped in are broadcast once it joined, then it leaves
        cmd = [*GF, "run", "--listen", "127.0.0.1:0", "--join", seed]
        out = subprocess.run(
            [*cmd, "--exit-on-eof", "--log-level", "WARNING"],
            input="\n".join(f"m piped {i}" for i in range(20)) + "\n",
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr[-1000:]
        assert wait_for(lambda: len(data_counts(a)) == 20, 10), data_counts(a)
        assert set(data_counts(a)) == {f"m piped {i}" for i in range(20)}
    finally:
        a.stop()
