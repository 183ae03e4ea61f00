"""Network namespaces for multi-process tests: whether the machine allows them, `ip`,
hosts on a bridge, and ``gossipfast run`` children in them.

The tests that split a cluster with real network stacks (root and iproute2) share these;
elsewhere they skip with the reason :func:`netns_unavailable` gives.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from support.runproc import FAST, RunProc


def ip(*args: str) -> None:
    """Run ``ip ARGS`` (raises on failure)."""
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def tc(*args: str) -> None:
    """Run ``tc ARGS`` (raises on failure)."""
    subprocess.run(["tc", *args], check=True, capture_output=True, timeout=10)


def netns_unavailable(*tools: str) -> str | None:
    """Why namespaces cannot be used here (``ip`` and ``tools`` missing, not permitted),
    or None when a probe namespace could be made and removed."""
    for tool in ("ip", *tools):
        if shutil.which(tool) is None:
            return f"the {tool} command is missing"
    probe = f"gfprobe{os.getpid()}"
    try:
        ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError) as e:
        return f"`ip netns add` is not permitted here: {getattr(e, 'stderr', e)!r}"
    ip("netns", "del", probe)
    return None


class Hosts:
    """``n`` namespaces ("hosts") with addresses 10.79.0.1.. on one bridge, which lives
    in a further namespace (the "switch", reachable itself at 10.79.0.254)."""

    SWITCH_IP = "10.79.0.254"

    def __init__(self, n: int) -> None:
        tag = os.getpid() % 10000
        self.switch = f"gfsw{tag}"
        self.ns = [f"gfh{tag}n{i}" for i in range(n)]
        self.ips = [f"10.79.0.{i + 1}" for i in range(n)]
        ip("netns", "add", self.switch)
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "addr", "add", f"{self.SWITCH_IP}/24", "dev", "br0")
        ip("-n", self.switch, "link", "set", "br0", "up")
        for i, ns in enumerate(self.ns):
            ip("netns", "add", ns)
            ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"p{i}",
                "netns", self.switch)  # fmt: skip
            ip("-n", self.switch, "link", "set", f"p{i}", "master", "br0", "up")
            ip("-n", ns, "addr", "add", f"{self.ips[i]}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def prefix(self, i: int) -> list[str]:
        return ["ip", "netns", "exec", self.ns[i]]

    def cut(self, a: list[int], b: list[int], on: bool) -> None:
        """Blackhole routes between the groups ``a`` and ``b`` (``on``), or none."""
        for x, others in [(i, b) for i in a] + [(j, a) for j in b]:
            for y in others:
                op = "add" if on else "del"
                ip("-n", self.ns[x], "route", op, "blackhole", f"{self.ips[y]}/32")

    def link(self, i: int, up: bool) -> None:
        """Unplug host ``i`` from the switch (``up`` False) or plug it back in."""
        ip("-n", self.switch, "link", "set", f"p{i}", "up" if up else "down")

    def use_resolver(self, address: str) -> None:
        """Point every host's resolver at ``address`` (``ip netns exec`` bind-mounts
        ``/etc/netns/NS/resolv.conf`` over ``/etc/resolv.conf``)."""
        for ns in self.ns:
            d = f"/etc/netns/{ns}"
            os.makedirs(d, exist_ok=True)
            with open(f"{d}/resolv.conf", "w") as f:
                f.write(f"nameserver {address}\noptions timeout:1 attempts:1\n")

    def close(self) -> None:
        for ns in [*self.ns, self.switch]:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
            shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)


class HostNode(RunProc):
    """A ``gossipfast run`` child that keeps its deliveries and its last stats line."""

    def __init__(
        self,
        index: int,
        address: str,
        seeds: list[str],
        prefix: list[str],
        settings: Sequence[str] = FAST,
    ) -> None:
        self.index = index
        self.delivered: collections.Counter[str] = collections.Counter()
        self.stats: dict[str, Any] = {}
        super().__init__(
            address,
            seeds,
            options=["--log-level", "WARNING", "--stats-interval", "0.3"],
            settings=settings,
            prefix=prefix,
        )

    def on_delivery(self, d: dict[str, Any]) -> None:
        self.delivered[d["payload"]] += 1

    def on_stderr(self, line: str) -> None:
        if line.startswith("GOSSIPFAST_STATS "):
            self.stats = json.loads(line.split(" ", 1)[1])
        else:
            super().on_stderr(line)

    def got(self) -> collections.Counter[str]:
        with self.lock:
            return collections.Counter(self.delivered)


def components(nodes: Sequence[HostNode]) -> int:
    """Components of the active-view graph as the nodes last reported it."""
    index = {n.address: n.index for n in nodes}
    adj = {n.index: set() for n in nodes}
    for n in nodes:
        for p in n.stats.get("active_view", []):
            if p in index:
                adj[n.index].add(index[p])
                adj[index[p]].add(n.index)
    seen: set[int] = set()
    count = 0
    for start in adj:
        if start in seen:
            continue
        count += 1
        todo = [start]
        while todo:
            x = todo.pop()
            if x not in seen:
                seen.add(x)
                todo += adj[x] - seen
    return count
