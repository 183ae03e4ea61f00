"""``gossipfast bench``: an N-process loopback cluster benchmark, side by side.

Each node is its own process (:mod:`gossipfast_bench.worker`), steered by JSON lines.
For every scenario (one publisher or all publishing, payload size, offered load) and
every implementation, the same run is repeated ``--runs`` times, the implementations
interleaved run by run so that a change of load on a shared host hits them alike; the
table shows medians and the ratios of gossipfast to each other implementation.

Implementations:

- ``gossipfast``: :class:`gossipfast.Node`, deliveries through ``handle_broadcast``.
- ``flood``: the reference naive eager flood (:mod:`gossipfast_bench.flood`) over the
  overlay gossipfast built (the same edges): the floor of sockets and framing.
- ``star``: the host's ceiling (:class:`gossipfast_bench.flood.Star`): every process
  connected to every other, publishers write each frame straight to all of them over
  the flood's framing, nobody relays.
- ``redis`` (Redis pub/sub, redis-py with hiredis, publishes pipelined) and ``nats``
  (NATS core pub/sub, nats-py): each against its own server, started here on a free
  loopback port and stopped by its process id; skipped with a message when the server
  binary or the Python client is missing. A subscriber the server disconnected (or
  messages the client dropped as a slow consumer) make the run incomplete, counted.
- ``aiogossip`` and ``libp2p`` (py-libp2p gossipsub): run with ``--others-python`` (an
  interpreter that has them: ``pip install -e './bench[others]'``, or a venv of their
  own, see ``bench/requirements.txt``); skipped with a message
  when that interpreter cannot import them.

Measures (DESIGN.md §7): delivered/s counts broadcasts that reached *every* other node,
over the window from the first broadcast call to the last delivery anywhere; latency is
broadcast call to delivery (CLOCK_MONOTONIC, shared by the processes of one host);
complete is the share of broadcasts that reached every other node; RMR is payload
messages sent / deliveries - 1; CPU is seconds per node during the run (median node);
RSS is the highest per-node peak during the run. Bytes/s is delivered/s times the
payload size; CPU per 100,000 deliveries is the CPU seconds of all nodes (and of the
broker's server) over the deliveries (one message delivered at one node) times 1e5.
"""

from __future__ import annotations

import base64
import json
import math
import os
import platform
import random
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import click

_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
# Run the worker by path (not -m): a competitor's venv need not have gossipfast or this
# distribution (``python -m gossipfast_bench.worker`` works where they are installed).
_RUNNER = (
    "import runpy, sys; p = sys.argv[1]; sys.argv = sys.argv[1:]; "
    "runpy.run_path(p, run_name='__main__')"
)
_LOG_SCALE = 100.0  # must match the worker's histogram buckets
_OTHERS = ("aiogossip", "libp2p")
_BROKERS = ("redis", "nats")
_KNOWN = ("gossipfast", "flood", "star", *_BROKERS, *_OTHERS)
_IMPORT_NAME = {
    "aiogossip": "aiogossip",
    "libp2p": "libp2p",
    "redis": "redis, hiredis",
    "nats": "nats",
}
#: How to get the brokers' clients, and the gossip libraries, from a checkout.
INSTALL_BROKERS = "pip install -e './bench[brokers]'"
INSTALL_OTHERS = "pip install -e './bench[others]', or see bench/requirements.txt"
#: The server each broker runs against (the Debian package has the same name).
_SERVER_BINARY = {"redis": "redis-server", "nats": "nats-server"}


class BenchError(RuntimeError):
    """A worker died or did not answer."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def server_binary(impl: str) -> str | None:
    """The path of ``impl``'s server binary, or None (Debian puts nats-server in sbin)."""
    name = _SERVER_BINARY[impl]
    return shutil.which(name) or shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")


class BrokerServer:
    """A broker's server, started on a free loopback port, stopped by its process id."""

    def __init__(self, impl: str, binary: str, logdir: str, timeout: float = 15.0) -> None:
        self.impl = impl
        self.port = _free_port()
        self.log_path = os.path.join(logdir, f"{impl}-server.log")
        if impl == "redis":
            args = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
            args += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        else:
            args = [binary, "-a", "127.0.0.1", "-p", str(self.port)]
        with open(self.log_path, "a") as log:
            # Its own session: a Ctrl-C reaches the bench, which stops it (not a signal
            # racing the bench's own shutdown).
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"{binary} exited at start (log: {self.log_path})")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise BenchError(
                        f"{binary} did not listen within {timeout:g} s (log: {self.log_path})"
                    ) from None
                time.sleep(0.05)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cpu(self) -> float:
        """User + system CPU seconds of the server so far (0 when it cannot be read)."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            return 0.0
        # After the command name: state is field 3, utime 14 and stime 15 (proc(5)).
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Cluster:
    """N worker processes of one implementation."""

    def __init__(
        self,
        impl: str,
        n: int,
        python: str,
        logdir: str,
        server: BrokerServer | None = None,
    ) -> None:
        self.impl = impl
        self.n = n
        #: The broker's server (its CPU counts in the run's CPU per delivery).
        self.server = server
        self.procs: list[subprocess.Popen[str]] = []
        self.log_path = os.path.join(logdir, f"{impl}.log")
        self._log = open(self.log_path, "a")  # noqa: SIM115 - closed in close()
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if server is not None:
            env["GOSSIPFAST_BENCH_BROKER"] = server.address
        for i in range(n):
            p = subprocess.Popen(
                [python, "-c", _RUNNER, _WORKER, impl, str(i)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
                text=True,
                env=env,
            )
            self.procs.append(p)
        self._bufs = [bytearray() for _ in range(n)]
        self.addrs = [str(r["addr"]) for r in self.gather(timeout=60)]

    def _read(self, i: int, timeout: float) -> dict[str, Any]:
        """One JSON line from worker ``i`` (own line buffer: select() needs raw fds)."""
        p = self.procs[i]
        assert p.stdout is not None
        fd = p.stdout.fileno()
        buf = self._bufs[i]
        deadline = time.monotonic() + timeout
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"{self.impl} node {i} did not answer (log: {self.log_path})")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise BenchError(f"{self.impl} node {i} exited (log: {self.log_path})")
                buf += chunk
        line, _, rest = bytes(buf).partition(b"\n")
        self._bufs[i] = bytearray(rest)
        out: dict[str, Any] = json.loads(line)
        return out

    def send(self, i: int, cmd: dict[str, Any]) -> None:
        p = self.procs[i]
        assert p.stdin is not None
        p.stdin.write(json.dumps(cmd) + "\n")
        p.stdin.flush()

    def ask(self, i: int, cmd: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        self.send(i, cmd)
        return self._read(i, timeout)

    def gather(
        self, cmd: dict[str, Any] | None = None, timeout: float = 30
    ) -> list[dict[str, Any]]:
        """Send ``cmd`` to all (if given), then read one answer from each."""
        if cmd is not None:
            for i in range(self.n):
                self.send(i, cmd)
        return [self._read(i, timeout) for i in range(self.n)]

    def close(self) -> None:
        for p in self.procs:
            try:
                assert p.stdin is not None
                p.stdin.close()
            except OSError:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self._log.close()


# ---------------------------------------------------------------------------- overlays
def _edges_from_views(addrs: list[str], views: list[list[str]]) -> list[tuple[int, int]]:
    index = {a: i for i, a in enumerate(addrs)}
    edges: set[tuple[int, int]] = set()
    for i, view in enumerate(views):
        for a in view:
            j = index.get(a)
            if j is not None and j != i:
                edges.add((min(i, j), max(i, j)))
    return sorted(edges)


def _random_overlay(n: int, degree: int, rng: random.Random) -> list[tuple[int, int]]:
    edges = {(min(i, (i + 1) % n), max(i, (i + 1) % n)) for i in range(n)} if n > 1 else set()
    tries = 0
    while n > 2 and len(edges) < n * degree // 2 and tries < 10_000:
        tries += 1
        a, b = rng.sample(range(n), 2)
        edges.add((min(a, b), max(a, b)))
    return sorted(edges)


def _connected(n: int, edges: list[tuple[int, int]]) -> bool:
    adj: dict[int, set[int]] = {i: set() for i in range(n)}
    for a, b in edges:
        adj[a].add(b)
        adj[b].add(a)
    seen = {0}
    todo = [0]
    while todo:
        for j in adj[todo.pop()]:
            if j not in seen:
                seen.add(j)
                todo.append(j)
    return len(seen) == n


def build_overlay(cl: Cluster, edges: list[tuple[int, int]] | None) -> list[tuple[int, int]]:
    """Connect the cluster; return the edges of its overlay."""
    n = cl.n
    if cl.impl == "gossipfast":
        rng = random.Random(1)
        for i in range(1, n):
            # Join through a random earlier member, as a rolling deployment would.
            cl.ask(i, {"cmd": "join", "seeds": [cl.addrs[rng.randrange(i)]]}, timeout=30)
        time.sleep(1.0)  # let HyParView fill the active views
        views = [r["view"] for r in cl.gather({"cmd": "view"})]
        return _edges_from_views(cl.addrs, views)
    if cl.impl in _BROKERS:
        return []  # every node talks to the server only
    if cl.impl == "star":
        edges = [(a, b) for a in range(n) for b in range(a + 1, n)]
    assert edges is not None
    if cl.impl == "aiogossip":
        cl.gather({"cmd": "join", "all": cl.addrs})
        return edges
    dial: list[list[str]] = [[] for _ in range(n)]
    for a, b in edges:
        dial[a].append(cl.addrs[b])
    for i in range(n):
        cl.ask(i, {"cmd": "join", "dial": dial[i]}, timeout=60)
    if cl.impl == "libp2p":
        time.sleep(3.0)  # gossipsub forms its mesh on heartbeats (1 s here)
    return edges


# ---------------------------------------------------------------------------- one run
@dataclass
class Scenario:
    """One line of the table (before the implementation is chosen)."""

    mode: str  # "one" or "all"
    size: int
    rate: float  # offered broadcasts/s in total; 0 = as fast as possible

    @property
    def key(self) -> tuple[str, int, float]:
        return (self.mode, self.size, self.rate)

    @property
    def label(self) -> str:
        return f"{self.mode}/{self.size}B/{'max' if self.rate <= 0 else f'{self.rate:g}/s'}"


@dataclass
class RunResult:
    """Figures of one run of one implementation."""

    published: int
    delivered_all: int
    window: float
    throughput: float
    offered: float
    p50_ms: float
    p99_ms: float
    complete: float
    rmr: float
    cpu_s: float
    cpu_max_s: float
    rss_mib: float
    hist: dict[int, int] = field(repr=False, default_factory=dict)
    #: Counters summed over the nodes that moved during the run (gossipfast's stats).
    counters: dict[str, int] = field(default_factory=dict)
    #: ``complete`` again after waiting up to ``late`` more seconds (incomplete runs of
    #: gossipfast and the flood only): missing copies that came late, not lost.
    complete_late: float = math.nan
    #: Payload bytes delivered to every node per second: throughput x payload size.
    bytes_per_s: float = math.nan
    #: Deliveries: one message delivered at one node (others' messages only).
    deliveries: int = 0
    #: CPU seconds of all nodes and of the broker's server during the run.
    cpu_total_s: float = math.nan
    #: ``cpu_total_s`` per 100,000 deliveries.
    cpu_per_100k: float = math.nan
    #: CPU seconds of the broker's server during the run (0: no server).
    server_cpu_s: float = 0.0
    #: Subscriber connections a broker closed, and messages a broker client dropped as
    #: a slow consumer: a run with any is incomplete.
    disconnects: int = 0
    slow_consumer_drops: int = 0

    @property
    def incomplete(self) -> bool:
        """Not every broadcast reached every node, or a subscriber was cut off."""
        return not self.complete >= 1.0 or bool(self.disconnects or self.slow_consumer_drops)


def _percentile(hist: dict[int, int], q: float) -> float:
    total = sum(hist.values())
    if not total:
        return math.nan
    target = q * total
    acc = 0
    for b in sorted(hist):
        acc += hist[b]
        if acc >= target:
            return math.exp((b + 0.5) / _LOG_SCALE) / 1e6  # bucket middle, in ms
    return math.nan


def run_once(
    cl: Cluster,
    sc: Scenario,
    duration: float,
    quiet: float,
    max_messages: int = 0,
    late: float = 0.0,
) -> RunResult:
    """One measured run: publish, wait for deliveries to stop, collect the reports.

    An incomplete run is then given up to ``late`` more seconds (its figures stay as
    they were at the end of the run) and its completeness taken again, so that copies
    that came late are told apart from copies that were lost (``complete_late``).
    """
    n = cl.n
    pubs = [0] if sc.mode == "one" else list(range(n))
    rate = sc.rate / len(pubs) if sc.rate > 0 else 0.0
    start_ns = time.monotonic_ns() + 300_000_000
    cmd = {
        "cmd": "run",
        "nodes": n,
        "publishers": pubs,
        "rate": rate,
        "size": sc.size,
        "duration": duration,
        "start_ns": start_ns,
        "max_messages": max_messages,
    }
    server = getattr(cl, "server", None)
    server_cpu0 = server.cpu() if server is not None else 0.0
    cl.gather(cmd)
    time.sleep(0.3 + duration)
    _wait_deliveries(cl, pubs, quiet, max(30.0, 10 * duration))
    reps = cl.gather({"cmd": "report"}, timeout=120)
    server_cpu = server.cpu() - server_cpu0 if server is not None else 0.0
    res = _summarise(reps, pubs, n, sc.size, server_cpu)
    res.complete_late = res.complete
    if late > 0 and res.published and res.complete < 1.0:
        _wait_deliveries(cl, pubs, late, late)
        later = cl.gather({"cmd": "report"}, timeout=120)
        res.complete_late = _delivered_all(later, pubs, n) / res.published
    return res


def _wait_deliveries(cl: Cluster, pubs: list[int], quiet: float, limit: float) -> None:
    """Until every publisher finished and all its broadcasts arrived everywhere, or no
    delivery came for ``quiet`` seconds, or ``limit`` seconds passed."""
    last_total = -1
    last_change = time.monotonic()
    hard = last_change + limit
    while True:
        prog = cl.gather({"cmd": "progress"})
        total = sum(p["count"] for p in prog)
        done_pub = all(prog[i]["published"] is not None for i in pubs)
        expected = sum(prog[i]["published"] or 0 for i in pubs) * (cl.n - 1)
        now = time.monotonic()
        if total != last_total:
            last_total, last_change = total, now
        if done_pub and (total >= expected or now - last_change >= quiet):
            return
        if now > hard:
            return
        time.sleep(0.1)


def _delivered_all(reps: list[dict[str, Any]], pubs: list[int], n: int) -> int:
    """Broadcasts of ``pubs`` that every other node has delivered (from the bitmaps)."""
    published = {i: int((reps[i]["pub"] or {}).get("published", 0)) for i in pubs}
    bitmaps = [[zlib.decompress(base64.b64decode(b)) for b in r["bitmaps"]] for r in reps]
    delivered_all = 0
    for p in pubs:
        m = published[p]
        if m == 0:
            continue
        acc = _flags(b"\x01" * m)
        for node in range(n):
            if node == p:
                continue
            acc &= _flags(bitmaps[node][p][:m])
        delivered_all += acc.bit_count()
    return delivered_all


def _summarise(
    reps: list[dict[str, Any]],
    pubs: list[int],
    n: int,
    size: int = 0,
    server_cpu: float = 0.0,
) -> RunResult:
    """One run's figures from the nodes' reports (``size``: payload bytes;
    ``server_cpu``: the broker's server CPU seconds during the run)."""
    published = {i: int((reps[i]["pub"] or {}).get("published", 0)) for i in pubs}
    t0 = min(int(reps[i]["pub"]["t0"]) for i in pubs if reps[i]["pub"])
    t_pub_end = max(int(reps[i]["pub"]["t_end"]) for i in pubs if reps[i]["pub"])
    delivered_all = _delivered_all(reps, pubs, n)
    total_pub = sum(published.values())
    last = max(int(r["last"]) for r in reps)
    window = max(last - t0, 1) / 1e9
    hist: dict[int, int] = {}
    for r in reps:
        for k, v in r["hist"].items():
            hist[int(k)] = hist.get(int(k), 0) + int(v)
    deliveries = sum(int(r["count"]) for r in reps)
    sent_each = [int(r["payload_sent"]) for r in reps]
    sent = -1 if min(sent_each) < 0 else sum(sent_each)
    cpus = sorted(float(r["cpu"]) for r in reps)
    counters: dict[str, int] = {}
    for r in reps:
        for k, v in (r.get("stats") or {}).items():
            counters[k] = counters.get(k, 0) + int(v)
    cpu_total = sum(cpus) + server_cpu
    return RunResult(
        published=total_pub,
        delivered_all=delivered_all,
        window=window,
        throughput=delivered_all / window,
        bytes_per_s=delivered_all * size / window,
        deliveries=deliveries,
        cpu_total_s=cpu_total,
        cpu_per_100k=cpu_total / deliveries * 100_000 if deliveries else math.nan,
        server_cpu_s=server_cpu,
        disconnects=counters.get("disconnects", 0),
        slow_consumer_drops=counters.get("slow_consumer_drops", 0),
        offered=total_pub / max((t_pub_end - t0) / 1e9, 1e-9),
        p50_ms=_percentile(hist, 0.50),
        p99_ms=_percentile(hist, 0.99),
        complete=delivered_all / total_pub if total_pub else math.nan,
        rmr=sent / deliveries - 1 if deliveries and sent >= 0 else math.nan,
        cpu_s=statistics.median(cpus),
        cpu_max_s=cpus[-1],
        rss_mib=max(int(r["rss_kib"]) for r in reps) / 1024,
        hist=hist,
        counters=counters,
    )


def _flags(bm: bytes) -> int:
    """A 0/1-per-byte bitmap as an int with one bit per message (bit i = seq i)."""
    # Each byte is 0 or 1, so the little-endian int has bit 8*i set for seq i; the
    # AND across nodes and the bit count work the same on that sparse form.
    return int.from_bytes(bm, "little")


# ---------------------------------------------------------------------------- table
_FIELDS = (
    "throughput",
    "offered",
    "p50_ms",
    "p99_ms",
    "complete",
    "complete_late",
    "rmr",
    "cpu_s",
    "cpu_max_s",
    "rss_mib",
    "published",
    "delivered_all",
    "window",
    "bytes_per_s",
    "deliveries",
    "cpu_total_s",
    "cpu_per_100k",
    "server_cpu_s",
)


def _median(runs: list[RunResult], name: str) -> float:
    vals = [getattr(r, name) for r in runs if not math.isnan(getattr(r, name))]
    return statistics.median(vals) if vals else math.nan


def _fmt(v: float, digits: int = 0) -> str:
    if math.isnan(v):
        return "-"
    return f"{v:,.{digits}f}"


def _machine() -> dict[str, Any]:
    try:
        load = os.getloadavg()
    except OSError:
        load = (math.nan, math.nan, math.nan)
    from gossipfast import COMPILED, __version__

    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gossipfast": __version__,
        "compiled": bool(COMPILED),
        "loadavg": [round(x, 2) for x in load],
        "command": "gossipfast " + " ".join(sys.argv[1:]),
        "config": json.loads(os.environ.get("GOSSIPFAST_BENCH_CONFIG") or "{}"),
        "gc_freeze": bool(os.environ.get("GOSSIPFAST_BENCH_GC_FREEZE")),
    }


def _check_other(python: str, impl: str) -> str | None:
    """None if ``python`` can import ``impl``'s library, else why not."""
    try:
        r = subprocess.run(
            [python, "-c", f"import {_IMPORT_NAME[impl]}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if r.returncode:
        last = (r.stderr.strip().splitlines() or ["import failed"])[-1]
        return f"{python} cannot import {_IMPORT_NAME[impl]} ({last})"
    return None


@click.command("bench")
@click.option("--nodes", "-n", default=10, show_default=True, help="Processes in the cluster.")
@click.option("--runs", default=3, show_default=True, help="Runs per cell (medians shown).")
@click.option("--duration", default=1.5, show_default=True, help="Seconds of publishing per run.")
@click.option(
    "--modes",
    default="one,all",
    show_default=True,
    help="one: node 0 publishes; all: every node publishes (rate split evenly).",
)
@click.option("--payloads", default="100,1024", show_default=True, help="Payload sizes (B).")
@click.option(
    "--rates",
    default="max,10000",
    show_default=True,
    help="Offered broadcasts/s in total; max = as fast as the publishers go.",
)
@click.option(
    "--impls",
    default="gossipfast,flood,star,redis,nats,aiogossip,libp2p",
    show_default=True,
    help="Implementations to run side by side: gossipfast, flood, star (the host's "
    "ceiling), redis, nats (brokers, each against its own server), aiogossip, libp2p.",
)
@click.option(
    "--others-python",
    default=None,
    help="Interpreter with aiogossip / libp2p installed (default: this one).",
)
@click.option(
    "--others-scenarios",
    default="one/100/20,one/100/50,one/100/100,one/100/200,one/100/max",
    show_default=True,
    help="Cells (mode/size/rate) the slow competitors run (all: every one of --rates).",
)
@click.option(
    "--others-max-messages",
    default=3000,
    show_default=True,
    help="Cap on broadcasts per publisher in competitor runs (they drain slowly).",
)
@click.option("--quiet", default=1.0, show_default=True, help="Seconds without delivery = done.")
@click.option(
    "--others-duration",
    default=5.0,
    show_default=True,
    help="Seconds of publishing in competitor runs (their seconds of latency would "
    "otherwise dominate a short run's window).",
)
@click.option(
    "--others-quiet",
    default=5.0,
    show_default=True,
    help="The same for the competitors (their latency is seconds).",
)
@click.option(
    "--late",
    default=10.0,
    show_default=True,
    help="After a gossipfast or flood run that is not complete, wait up to this many "
    "seconds more and report how complete it became (copies late, not lost); the "
    "run's own figures are not changed. 0: do not wait.",
)
@click.option(
    "--config",
    "config_items",
    multiple=True,
    metavar="FIELD=JSON",
    help="gossipfast Config override for the gossipfast nodes (repeatable).",
)
@click.option(
    "--gc-freeze",
    is_flag=True,
    help="Every worker, of every implementation, calls gc.freeze() before its first "
    "run: startup's objects leave the cyclic GC's full collections, as README's "
    "performance notes suggest for high-rate services. Off: Python's defaults.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@click.option(
    "--save", type=click.Path(dir_okay=False), help="Also write the JSON object to this file."
)
@click.option(
    "--load",
    type=click.Path(dir_okay=False, exists=True),
    help="Run nothing: print (and --plot) the results saved by --save or --json.",
)
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a PNG (needs matplotlib).")
def bench_command(
    nodes: int,
    runs: int,
    duration: float,
    modes: str,
    payloads: str,
    rates: str,
    impls: str,
    others_python: str | None,
    others_scenarios: str,
    others_max_messages: int,
    quiet: float,
    others_duration: float,
    others_quiet: float,
    late: float,
    config_items: tuple[str, ...],
    gc_freeze: bool,
    as_json: bool,
    save: str | None,
    load: str | None,
    plot: str | None,
) -> None:
    """Loopback cluster benchmark: gossipfast, the naive flood floor and competitors."""
    if load:
        with open(load) as f:
            saved = json.load(f, parse_constant=float)
        _nan_rows(saved)
        if plot:
            write_plot(saved["rows"], plot)
        if as_json:
            click.echo(json.dumps(saved, indent=1))
        else:
            print_table(saved)
        return
    if nodes < 2:
        raise click.BadParameter("at least 2 nodes", param_hint="--nodes")
    from gossipfast.config import config_overrides

    try:
        overrides = config_overrides(config_items)  # fail here, not in ten workers
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--config") from e
    if overrides:
        os.environ["GOSSIPFAST_BENCH_CONFIG"] = json.dumps(overrides)
    if gc_freeze:
        os.environ["GOSSIPFAST_BENCH_GC_FREEZE"] = "1"
    scenarios = [
        Scenario(m, int(s), 0.0 if r.strip() == "max" else float(r))
        for m in _split(modes)
        for s in _split(payloads)
        for r in _split(rates)
    ]
    wanted = list(dict.fromkeys(_split(impls)))
    unknown = [w for w in wanted if w not in _KNOWN]
    if unknown:
        raise click.BadParameter(
            f"unknown {', '.join(unknown)} (known: {', '.join(_KNOWN)})", param_hint="--impls"
        )
    messages: list[str] = []
    pythons = {name: sys.executable for name in wanted}
    binaries: dict[str, str] = {}
    for name in list(wanted):
        if name in _BROKERS:
            binary = server_binary(name)
            why = _check_other(sys.executable, name)
            if binary is None:
                messages.append(
                    f"skipped {name}: no {_SERVER_BINARY[name]} on PATH "
                    f"(apt-get install {_SERVER_BINARY[name]})"
                )
                wanted.remove(name)
            elif why:
                messages.append(f"skipped {name}: {why} ({INSTALL_BROKERS})")
                wanted.remove(name)
            else:
                binaries[name] = binary
        elif name in _OTHERS:
            pythons[name] = others_python or sys.executable
            why = _check_other(pythons[name], name)
            if why:
                messages.append(f"skipped {name}: {why} ({INSTALL_OTHERS})")
                wanted = [w for w in wanted if w != name]
    if "gossipfast" in wanted:
        wanted = ["gossipfast"] + [w for w in wanted if w != "gossipfast"]
    # Competitor cells: "mode/size/rate" ("one/100/max", "one/100B/50/s" also do).
    all_cells = others_scenarios.strip() == "all"
    other_cells: set[tuple[str, int, float]] = set()
    if not all_cells:
        for item in _split(others_scenarios):
            parts = item.replace("B/", "/").split("/")
            if len(parts) < 3:
                raise click.BadParameter(
                    f"{item!r} is not mode/size/rate", param_hint="--others-scenarios"
                )
            rate = 0.0 if parts[2] == "max" else float(parts[2])
            other_cells.add((parts[0], int(parts[1]), rate))
    # Cells only the competitors run (gossipfast's own rows come from --rates).
    known = {sc.key for sc in scenarios}
    others_only = {c for c in other_cells if c not in known}
    scenarios += [Scenario(*c) for c in sorted(others_only)]

    def log(msg: str) -> None:
        click.echo(msg, err=True)

    for m in messages:
        log(m)
    results: dict[tuple[str, str], list[RunResult]] = {}
    logdir = tempfile.mkdtemp(prefix="gossipfast-bench-")
    clusters: dict[str, Cluster] = {}
    servers: list[BrokerServer] = []
    edges: list[tuple[int, int]] | None = None
    old_term = None
    if threading.current_thread() is threading.main_thread():
        # SIGTERM unwinds like Ctrl-C: the finally below stops workers and servers.
        old_term = signal.signal(signal.SIGTERM, _terminate)
    try:
        for name in wanted:
            server = None
            try:
                if name in binaries:
                    log(f"starting {binaries[name]} ...")
                    server = BrokerServer(name, binaries[name], logdir)
                    servers.append(server)
                log(f"starting {nodes} {name} nodes ...")
                cl = Cluster(name, nodes, pythons[name], logdir, server)
            except BenchError as e:
                messages.append(f"skipped {name}: {e}")
                log(messages[-1])
                continue
            clusters[name] = cl
            if edges is None and name != "gossipfast":
                edges = _random_overlay(nodes, 5, random.Random(1))
            try:
                got = build_overlay(cl, edges)
            except BenchError as e:
                messages.append(f"skipped {name}: {e}")
                log(messages[-1])
                cl.close()
                del clusters[name]
                continue
            if name == "gossipfast":
                edges = got
                if not _connected(nodes, edges):
                    log("warning: gossipfast's overlay is not connected yet")
            # Warm-up (not measured): trees prune, caches fill, code paths get hot.
            limit = others_max_messages if name in _OTHERS else 0
            q = others_quiet if name in _OTHERS else quiet
            run_once(cl, Scenario("one", 100, 0.0), 0.5 if not limit else 1.0, q, limit)
        for sc in scenarios:
            for run_no in range(runs):
                for name, cl in clusters.items():
                    if name in _OTHERS and not all_cells and sc.key not in other_cells:
                        continue
                    if name not in _OTHERS and sc.key in others_only:
                        continue
                    limit = others_max_messages if name in _OTHERS else 0
                    q = others_quiet if name in _OTHERS else quiet
                    secs = others_duration if name in _OTHERS else duration
                    wait = 0.0 if name in _OTHERS else late
                    res = run_once(cl, sc, secs, q, limit, wait)
                    results.setdefault((sc.label, name), []).append(res)
                    after = (
                        f" ({res.complete_late:.4f} after up to {wait:g} s more)"
                        if wait and res.complete < 1.0
                        else ""
                    )
                    log(
                        f"{sc.label:>18} {name:>10} run {run_no + 1}: {res.throughput:,.0f}/s "
                        f"p99 {res.p99_ms:.2f} ms complete {res.complete:.4f}{after} "
                        f"CPU/100k {res.cpu_per_100k:.2f} s (load {os.getloadavg()[0]:.2f})"
                    )
                    trouble = {
                        k: v
                        for k, v in res.counters.items()
                        if any(
                            w in k
                            for w in ("drop", "lagged", "recovered", "timeout", "down", "disconn")
                        )
                    }
                    if trouble:
                        log(f"{'':>30} {trouble}")
    finally:
        for cl in clusters.values():
            cl.close()
        for srv in servers:
            srv.stop()
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    machine = _machine()
    machine["overlay_edges"] = len(edges or [])
    rows: list[dict[str, Any]] = []
    for sc in scenarios:
        for name in clusters:
            rs = results.get((sc.label, name))
            if not rs:
                continue
            row: dict[str, Any] = {"scenario": sc.label, "impl": name, "runs": len(rs)}
            row.update(_row_figures(rs))
            row["per_run_throughput"] = [round(x.throughput, 1) for x in rs]
            row["counters_last_run"] = rs[-1].counters
            rows.append(row)
    ratios = ratio_rows(rows)
    best = _best_ratios(rows)
    out = {
        "machine": machine,
        "rows": rows,
        "ratios": ratios,
        "best": best,
        "messages": messages,
    }
    text = json.dumps(_nan_to_none(out), indent=1)
    if save:
        # Before the plot: a missing matplotlib must not cost a long run its results.
        with open(save, "w") as f:
            f.write(text + "\n")
    if plot:
        try:
            write_plot(rows, plot)
        except ImportError as e:
            log(f"no plot written ({e}); results kept: replot with --load and --plot")
    if as_json:
        click.echo(text)
        return
    print_table(out)


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _row_figures(runs: list[RunResult]) -> dict[str, Any]:
    """A table row's figures: medians of the runs, and how many were incomplete."""
    row: dict[str, Any] = {f: _median(runs, f) for f in _FIELDS}
    row["incomplete_runs"] = sum(r.incomplete for r in runs)
    row["disconnects"] = sum(r.disconnects for r in runs)
    row["slow_consumer_drops"] = sum(r.slow_consumer_drops for r in runs)
    return row


def ratio_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """gossipfast over every other implementation, cell by cell (same run).

    ``throughput_ratio``: delivered/s (and so delivered bytes/s: same payloads);
    against ``star``, the host's ceiling, it is gossipfast's share of it.
    ``cpu_ratio``: CPU seconds per 100,000 deliveries, gossipfast's over the other's
    (below 1: gossipfast does less work per delivery).
    """
    out: list[dict[str, Any]] = []
    for gf in rows:
        if gf["impl"] != "gossipfast":
            continue
        for r in rows:
            if r["scenario"] != gf["scenario"] or r["impl"] == "gossipfast":
                continue
            if not r["throughput"] > 0:
                continue
            cpu = r.get("cpu_per_100k", math.nan)
            out.append(
                {
                    "scenario": gf["scenario"],
                    "versus": r["impl"],
                    "throughput_ratio": gf["throughput"] / r["throughput"],
                    "cpu_ratio": (gf.get("cpu_per_100k", math.nan) / cpu if cpu > 0 else math.nan),
                }
            )
    return out


def _best_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each implementation's best one-publisher delivered/s, and gossipfast's over it.

    Competitors are slow at any offered load, so cell-by-cell ratios at one rate say
    little: this compares the best each reached (among cells at least 99 % complete
    when there is one) for each payload size.
    """
    out: list[dict[str, Any]] = []
    sizes = sorted({r["scenario"].split("/")[1] for r in rows if r["scenario"].startswith("one/")})
    for size in sizes:
        cells = [r for r in rows if r["scenario"].startswith(f"one/{size}/")]
        best: dict[str, dict[str, Any]] = {}
        for impl in dict.fromkeys(r["impl"] for r in cells):
            mine = [r for r in cells if r["impl"] == impl]
            good = [r for r in mine if r["complete"] >= 0.99] or mine
            best[impl] = max(good, key=lambda r: r["throughput"])
        gf = best.get("gossipfast")
        for impl, r in best.items():
            out.append(
                {
                    "payload": size,
                    "impl": impl,
                    "scenario": r["scenario"],
                    "throughput": r["throughput"],
                    "complete": r["complete"],
                    "gossipfast_ratio": (
                        gf["throughput"] / r["throughput"]
                        if gf is not None and impl != "gossipfast" and r["throughput"] > 0
                        else None
                    ),
                }
            )
    return out


def _nan_to_none(o: Any) -> Any:
    """NaN (a figure that does not exist) as JSON null."""
    if isinstance(o, float) and math.isnan(o):
        return None
    if isinstance(o, dict):
        return {k: _nan_to_none(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_nan_to_none(v) for v in o]
    return o


def _nan_rows(out: dict[str, Any]) -> None:
    """Back from JSON: null figures of the rows become NaN again (for the table)."""
    for row in out.get("rows", []):
        for k in _FIELDS:
            if row.get(k) is None:
                row[k] = math.nan
    for r in out.get("ratios", []):
        if r.get("cpu_ratio", 0) is None:
            r["cpu_ratio"] = math.nan
    for b in out.get("best", []):
        if b.get("complete") is None:
            b["complete"] = math.nan


def _split(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def print_table(out: dict[str, Any]) -> None:
    """Print the medians and ratios as rich tables."""
    from rich.console import Console
    from rich.table import Table

    m = out["machine"]
    t = Table(
        title=f"gossipfast bench — {m['nproc']} cores, Python {m['python']}, {m['date']}, "
        f"load {m['loadavg'][0]}" + (", gc.freeze()" if m.get("gc_freeze") else ""),
        caption="medians of runs; delivered/s = broadcasts delivered to every node",
    )
    for col, just in (
        ("scenario", "left"),
        ("impl", "left"),
        ("offered/s", "right"),
        ("delivered/s", "right"),
        ("p50 ms", "right"),
        ("p99 ms", "right"),
        ("complete", "right"),
        ("RMR", "right"),
        ("MB/s", "right"),
        ("CPU s/node", "right"),
        ("CPU s/100k", "right"),
        ("peak RSS MiB", "right"),
    ):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    notes: list[str] = []
    for r in out["rows"]:
        complete = f"{100 * r['complete']:.2f}%" if not math.isnan(r["complete"]) else "-"
        if r.get("disconnects") or r.get("slow_consumer_drops"):
            complete += "*"
            notes.append(
                f"* {r['scenario']} {r['impl']}: {r['incomplete_runs']} of {r['runs']} runs "
                f"incomplete; subscribers disconnected by the server {r['disconnects']} "
                f"times, {r['slow_consumer_drops']} messages dropped as a slow consumer"
            )
        t.add_row(
            r["scenario"],
            r["impl"],
            _fmt(r["offered"]),
            _fmt(r["throughput"]),
            _fmt(r["p50_ms"], 2),
            _fmt(r["p99_ms"], 2),
            complete,
            _fmt(r["rmr"], 2),
            _fmt(r.get("bytes_per_s", math.nan) / 1e6, 2),
            _fmt(r["cpu_s"], 2),
            _fmt(r.get("cpu_per_100k", math.nan), 2),
            _fmt(r["rss_mib"], 1),
        )
    # Wide enough for every column when piped (rich falls back to 80 columns).
    con = Console(width=max(Console().width, 150))
    con.print(t)
    for note in notes:
        con.print(f"[red]{note}[/red]")
    if out["ratios"]:
        rt = Table(
            title="gossipfast / other (same run): delivered/s (and bytes/s), "
            "CPU s per 100,000 deliveries",
            caption="versus star (every publisher writing to every node): "
            "gossipfast's share of this host's ceiling",
        )
        rt.add_column("scenario")
        rt.add_column("versus")
        rt.add_column("delivered/s", justify="right")
        rt.add_column("CPU per delivery", justify="right")
        for r in out["ratios"]:
            ratio = r["throughput_ratio"]
            shown = f"{ratio:,.2f}x"
            if r["versus"] == "star":
                shown += f" ({100 * ratio:.0f}% of star)"
            cpu = r.get("cpu_ratio", math.nan)
            rt.add_row(r["scenario"], r["versus"], shown, "-" if math.isnan(cpu) else f"{cpu:.2f}x")
        con.print(rt)
    if out["best"]:
        bt = Table(title="best one-publisher delivered/s of each (>= 99 % complete when any)")
        for col in ("payload", "impl", "at", "delivered/s", "complete", "gossipfast / it"):
            bt.add_column(col, justify="left" if col in ("payload", "impl", "at") else "right")
        for b in out["best"]:
            ratio = b["gossipfast_ratio"]
            bt.add_row(
                b["payload"],
                b["impl"],
                "/".join(b["scenario"].split("/")[2:]),
                _fmt(b["throughput"]),
                f"{100 * b['complete']:.2f}%",
                "-" if ratio is None else f"{ratio:,.2f}x",
            )
        con.print(bt)
    for msg in out["messages"]:
        con.print(f"[yellow]{msg}[/yellow]")


def write_plot(rows: list[dict[str, Any]], path: str) -> None:
    """Delivered/s against p50 and p99 latency for gossipfast and the flood (one publisher,
    100 B), one point per offered rate, joined in order of offered rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def offered(scenario: str) -> float:
        rate = scenario.split("/")[2]
        return math.inf if rate == "max" else float(rate)

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for impl in ("gossipfast", "flood"):
        pts = sorted(
            (offered(r["scenario"]), r["throughput"], r["p50_ms"], r["p99_ms"])
            for r in rows
            if r["impl"] == impl and r["scenario"].startswith("one/100B/")
        )
        if not pts:
            continue
        xs = [p[1] for p in pts]
        (line,) = ax.plot(xs, [p[3] for p in pts], marker="o", label=f"{impl} p99")
        ax.plot(
            xs,
            [p[2] for p in pts],
            marker=".",
            ls="--",
            color=line.get_color(),
            label=f"{impl} p50",
        )
        for o, x, _p50, p99 in pts:
            text = "max" if math.isinf(o) else f"{o / 1000:g}k"
            ax.annotate(text, (x, p99), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("broadcasts/s delivered to all nodes (labels: offered/s)")
    ax.set_ylabel("latency broadcast → delivery (ms)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title("loopback cluster, one publisher, 100 B payloads (medians)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
