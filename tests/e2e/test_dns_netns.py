"""A fleet on real network stacks that finds itself through DNS.

Six ``gossipfast run`` processes, each in a network namespace of its own with its own
address on a bridge, listen and advertise on that address and join through one DNS name
(``--join dns:gossip.test:7000``) served by a real resolver (dnsmasq) that the test
starts in the bridge's namespace, with one A record per host. Every node broadcasts; two
are killed (SIGKILL) and restarted; three are unplugged from the bridge and plugged back
in (link down/up: while alone they cannot even reach the resolver, and find the others
through it again after). Every live node gets every message sent while it lived,
exactly once. Also: a name the resolver does not know, and a name whose only record is
the node itself, each end ``gossipfast run`` with one line and exit status 2.

Needs root, ``ip netns`` and dnsmasq (skipped with the reason elsewhere; ``.ci/run``
installs dnsmasq); talks only to the addresses of the namespaces it creates.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from support.netns import HostNode, Hosts, components, netns_unavailable
from support.runproc import FAST, wait_for

from gossipfast._procs import READY_PREFIX

pytestmark = [pytest.mark.network, pytest.mark.slow]


class DnsNode(HostNode):
    """A node that also keeps its warnings (the resolver's failures are logged once)."""

    def __init__(self, index: int, address: str, prefix: list[str]) -> None:
        self.warnings: list[str] = []
        super().__init__(index, address, [SEED], prefix, FAST)

    def on_stderr(self, line: str) -> None:
        if " WARNING " in line:
            self.warnings.append(line)
        super().on_stderr(line)

    def unresolved(self) -> int:
        """How many times it said that its seeds do not resolve while isolated."""
        return sum("seeds do not resolve" in w for w in self.warnings)


N = 6
NAME = "gossip.test"
SEED = f"dns:{NAME}:7000"
DOWN_SECONDS = 6.0  # unplugged: longer than heartbeat_timeout and repair_interval


def _dnsmasq() -> str | None:
    return shutil.which("dnsmasq") or next(
        (p for p in ("/usr/sbin/dnsmasq", "/sbin/dnsmasq") if os.access(p, os.X_OK)), None
    )


@pytest.fixture
def fleet() -> Iterator[Hosts]:
    """The hosts, their resolver pointed at a dnsmasq on the bridge, which serves one A
    record of ``NAME`` per host (and nothing else: it forwards no query)."""
    dnsmasq = _dnsmasq()
    reason = netns_unavailable() or (None if dnsmasq else "dnsmasq is not installed")
    if reason:
        pytest.skip(reason)
    assert dnsmasq is not None
    hosts = Hosts(N)
    resolver = None
    try:
        hosts.use_resolver(Hosts.SWITCH_IP)
        records = [f"--host-record={NAME},{a}" for a in hosts.ips]
        records.append(f"--host-record=self0.test,{hosts.ips[0]}")
        resolver = subprocess.Popen(
            ["ip", "netns", "exec", hosts.switch, dnsmasq, "--keep-in-foreground",
             "--no-resolv", "--no-hosts", "--local=/test/", "--bind-interfaces", "--log-facility=-",
             f"--listen-address={Hosts.SWITCH_IP}", "--port=53", "--pid-file=", *records],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert wait_for(lambda: _resolves(hosts, 0) or resolver.poll() is not None, 10), (
            "dnsmasq does not answer"
        )
        assert resolver.poll() is None, resolver.stderr.read() if resolver.stderr else ""
        yield hosts
    finally:
        if resolver is not None:
            os.kill(resolver.pid, signal.SIGTERM)
            resolver.wait(timeout=10)
        hosts.close()


def _resolves(hosts: Hosts, i: int) -> bool:
    """True once host ``i`` resolves ``NAME`` to every host's address."""
    done = subprocess.run(
        [*hosts.prefix(i), "getent", "ahostsv4", NAME], capture_output=True, text=True, timeout=10
    )
    return all(a in done.stdout for a in hosts.ips)


def _run_once(hosts: Hosts, i: int, seed: str) -> tuple[int, list[str]]:
    """Exit status and stderr lines (but the machine-readable ready line) of a run."""
    cmd = [*hosts.prefix(i), sys.executable, "-m", "gossipfast", "run"]
    cmd += ["--listen", f"{hosts.ips[i]}:7000", "--join", seed, "--log-level", "WARNING"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.PIPE)
    lines = done.stderr.strip().splitlines()
    return done.returncode, [x for x in lines if not x.startswith(READY_PREFIX)]


@pytest.mark.timeout(300)
def test_a_fleet_joins_through_dns_survives_restarts_and_unplugging(fleet: Hosts) -> None:
    hosts = fleet
    started: dict[int, float] = {}
    nodes: list[DnsNode] = []

    def start(i: int) -> DnsNode:
        started[i] = time.monotonic()
        return DnsNode(i, f"{hosts.ips[i]}:7000", hosts.prefix(i))

    sent: dict[str, tuple[int, float]] = {}  # payload -> (sender, when)

    def emit(phase: str, senders: list[int], k: int) -> None:
        for j in range(k):
            i = senders[j % len(senders)]
            text = f"{phase} {j} from {i}"
            sent[text] = (i, time.monotonic())
            nodes[i].send(text)

    def owed(n: DnsNode) -> set[str]:
        """What ``n`` must deliver: every message of another node sent in its lifetime."""
        return {t for t, (s, at) in sent.items() if s != n.index and at >= started[n.index]}

    def complete() -> bool:
        return all(owed(n) <= set(n.got()) for n in nodes)

    try:
        nodes = [start(i) for i in range(N)]  # all at once: each finds the others in DNS
        assert wait_for(lambda: all(len(n.stats.get("active_view", [])) >= 2 for n in nodes), 60)
        for n in nodes:
            for p in n.stats["active_view"]:
                assert p in {f"{a}:7000" for a in hosts.ips}  # namespace addresses only
        emit("all", list(range(N)), 60)
        assert wait_for(complete, 30)

        for i in (4, 5):  # crash two, restart them at the same address
            nodes[i].kill9()
        emit("gap", [0, 1, 2, 3], 20)
        for i in (4, 5):
            nodes[i] = start(i)
        assert wait_for(lambda: all(n.stats.get("active_view") for n in nodes[4:]), 30)
        emit("new", list(range(N)), 60)
        assert wait_for(complete, 30), {n.index: len(owed(n) - set(n.got())) for n in nodes}

        for i in (0, 1, 2):  # unplug three hosts; each is alone, without its resolver
            hosts.link(i, False)
        emit("cut", list(range(N)), 60)
        assert wait_for(lambda: all(not nodes[i].stats.get("active_view") for i in (0, 1, 2)), 30)
        time.sleep(DOWN_SECONDS)  # the outage itself: it lasts while nothing can be done
        for i in (0, 1, 2):
            hosts.link(i, True)
        assert wait_for(lambda: components(nodes) == 1, 60), [
            n.stats.get("active_view") for n in nodes
        ]
        emit("end", list(range(N)), 60)
        assert wait_for(complete, 60), {n.index: sorted(owed(n) - set(n.got()))[:5] for n in nodes}
        for n in nodes:
            got = n.got()
            assert max(got.values()) == 1, (n.index, [t for t, c in got.items() if c > 1][:5])
            assert set(got) <= {t for t, (s, _) in sent.items() if s != n.index}
            assert not n.errors, n.errors[:5]
            # resolved again while alone, the resolver out of reach: said once, not per try
            assert n.unresolved() == (1 if n.index in (0, 1, 2) else 0), (n.index, n.warnings)
    finally:
        for n in nodes:
            n.stop()


@pytest.mark.timeout(120)
def test_unknown_name_and_only_itself_end_the_cli_with_one_line(fleet: Hosts) -> None:
    assert _run_once(fleet, 0, "dns:nobody.test:7000") == (
        2,
        [
            "Error: no seed to join: dns:nobody.test:7000 does not resolve "
            "(Name or service not known)"
        ],
    )
    assert _run_once(fleet, 0, "dns:self0.test:7000") == (
        2,
        ["Error: no seed to join: every seed is this node: dns:self0.test:7000"],
    )
