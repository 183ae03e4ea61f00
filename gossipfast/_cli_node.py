"""``gossipfast run`` (one node on stdin/stdout) and ``gossipfast cluster`` (a local demo).

``run`` broadcasts every stdin line and prints every delivery as one JSON line
``{"id": hex, "origin": str, "payload": str, "hops": int}`` on stdout; logs go to stderr.

``cluster`` starts N ``run`` worker processes on loopback, streams broadcasts into them
at a fixed rate, and shows delivery rate, latency and views live, then a summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import ssl
import statistics
import sys
import threading
import time
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import click
import msgspec

from ._members import meta_size
from ._procs import (
    READY_PREFIX,
    STATS_PREFIX,
    NodeProc,
    ProcError,
    free_ports,
    start_nodes,
    stop_all,
)
from ._quantile import percentile
from ._run import run
from ._seeds import parse_seed
from ._tls import tls_args, tls_contexts, tls_options
from .config import Config
from .errors import ConfigError, GossipError, JoinError, SeedError
from .types import Message

if TYPE_CHECKING:
    from .node import Node

log = logging.getLogger("gossipfast")


def _config(cluster: str | None, overrides: tuple[str, ...]) -> Config:
    """Build a Config from ``--cluster`` and ``--set FIELD=VALUE`` options."""
    fields = {f.name: f for f in msgspec.structs.fields(Config)}
    kw: dict[str, Any] = {}
    for item in overrides:
        name, sep, raw = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in fields:
            raise click.BadParameter(f"unknown Config field in {item!r}", param_hint="--set")
        default = getattr(Config(), name)
        try:
            if isinstance(default, bool):
                value: Any = raw.strip().lower() in ("1", "true", "yes", "on")
            elif isinstance(default, int):
                value = int(raw)
            elif isinstance(default, float):
                value = float(raw)
            else:
                value = raw
        except ValueError as e:
            raise click.BadParameter(f"{item!r}: {e}", param_hint="--set") from e
        kw[name] = value
    if cluster is not None:
        kw["cluster"] = cluster
    try:
        return Config(**kw)
    except (ValueError, TypeError) as e:
        raise click.BadParameter(str(e), param_hint="--set") from e


def start_metrics(node: Any, port: int | None, host: str) -> None:
    """Serve ``node``'s Prometheus metrics on ``host:port`` (nothing when port is None)."""
    if port is None:
        return
    try:
        from .metrics import serve
    except ImportError as e:
        raise click.ClickException(str(e)) from None
    try:
        _, bound = serve(node, port, host)
    except OSError as e:
        raise click.ClickException(f"--metrics-port {port}: {e}") from e
    log.info("metrics on http://%s:%d/metrics", host, bound)


def metrics_options(f: Any) -> Any:
    """The ``--metrics-port`` / ``--metrics-host`` options shared by the commands."""
    f = click.option(
        "--metrics-host",
        default="127.0.0.1",
        show_default=True,
        help="Address of the metrics endpoint (0.0.0.0 for a remote Prometheus).",
    )(f)
    return click.option(
        "--metrics-port",
        type=click.IntRange(0, 65535),
        default=None,
        help='Serve Prometheus metrics on this port (needs "gossipfast[metrics]").',
    )(f)


def _run_on_loop(main: Coroutine[Any, Any, int], kind: str) -> int:
    """Run the CLI's coroutine with :func:`gossipfast.run` on the chosen loop."""
    try:
        return run(main, loop=kind)  # type: ignore[arg-type]
    except ConfigError as e:
        raise click.ClickException(f"--loop {kind}: {e}") from None


# ---------------------------------------------------------------------------- run


def _printing_node(stamp: bool) -> type[Node]:
    """The Node class of ``run``: each delivery becomes one JSON line on stdout."""
    from .node import Node

    out = sys.stdout

    class PrintingNode(Node):
        def handle_broadcast(self, message: Message) -> None:
            d: dict[str, Any] = {
                "id": message.id.hex(),
                "origin": message.origin,
                "payload": message.payload.decode("utf-8", "replace"),
                "hops": message.hops,
                "sender": message.sender,
            }
            if stamp:
                d["ts"] = time.time()
            out.write(json.dumps(d) + "\n")
            out.flush()

    return PrintingNode


def _stop_on_signals(loop: asyncio.AbstractEventLoop) -> asyncio.Event:
    """An event that SIGTERM and SIGINT set (where the loop supports signal handlers)."""
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


def _read_stdin(lines: asyncio.Queue[bytes | None], loop: asyncio.AbstractEventLoop) -> None:
    """Put every stdin line on ``lines``, then None at the end (runs in a thread)."""
    # A thread on the raw fd: portable for pipes, files and terminals alike, and it
    # holds no lock of sys.stdin that would abort the interpreter at exit.
    fd = sys.stdin.fileno()
    tail = b""
    try:
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            *complete, tail = (tail + chunk).split(b"\n")
            for line in complete:
                asyncio.run_coroutine_threadsafe(lines.put(line), loop).result()
        if tail:
            asyncio.run_coroutine_threadsafe(lines.put(tail), loop).result()
        asyncio.run_coroutine_threadsafe(lines.put(None), loop).result()
    except (OSError, RuntimeError):
        pass  # stdin closed or the loop is gone: nothing more to read


def _write_ready(node: Node) -> None:
    """The READY line on stderr, whatever the log level: what process managers and the
    tests wait for (the node listens, and serves its metrics when asked to)."""
    ready = {"address": node.address, "origin": node.origin, "id": node.id}
    sys.stderr.write(READY_PREFIX + json.dumps(ready) + "\n")
    sys.stderr.flush()


async def _join_seeds(
    node: Node,
    joins: tuple[str, ...],
    config: Config,
    stop: asyncio.Event,
    joined: asyncio.Event,
    failed: list[str],
) -> None:
    """Join through ``joins`` until it works, then set ``joined``; on seeds that cannot
    work, record why in ``failed`` and set ``stop``."""
    while joins and not stop.is_set():
        try:
            await node.join(list(joins))
            log.info("joined via %s: active view %s", ",".join(joins), node.active_view)
            break
        except (ConfigError, SeedError) as e:
            # nothing to dial: retrying changes nothing, the command line is wrong
            failed.append(str(e))
            stop.set()
            return
        except JoinError as e:
            log.warning("%s; retrying", e)
            await asyncio.sleep(min(1.0, config.join_timeout))
    joined.set()


async def _broadcast_lines(
    node: Node,
    lines: asyncio.Queue[bytes | None],
    joined: asyncio.Event,
    stop: asyncio.Event,
    exit_on_eof: bool,
) -> None:
    """Broadcast each non-blank stdin line once joined; at EOF, stop if asked to."""
    # Lines wait (bounded queue, the reader thread blocks) until we are in.
    await joined.wait()
    while True:
        line = await lines.get()
        if line is None:
            if exit_on_eof:
                stop.set()
            return
        payload = line.rstrip(b"\r\n")
        if not payload:
            continue  # blank lines are not broadcast
        try:
            await node.broadcast(payload)
        except GossipError as e:
            log.warning("broadcast refused: %s", e)


async def _report_stats(node: Node, interval: float) -> None:
    """Write the node's stats as a STATS line on stderr every ``interval`` seconds."""
    while True:
        await asyncio.sleep(interval)
        s: dict[str, Any] = dict(node.stats())
        s["address"] = node.address
        s["active_view"] = list(node.active_view)
        sys.stderr.write(STATS_PREFIX + json.dumps(s) + "\n")
        sys.stderr.flush()


async def _run_node(
    listen: str,
    joins: tuple[str, ...],
    config: Config,
    advertise: str | None,
    node_id: str | None,
    stamp: bool,
    exit_on_eof: bool,
    stats_interval: float,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None,
    meta: dict[str, str] | None = None,
) -> int:
    """Run one node until a signal (or stdin's end with ``exit_on_eof``); the exit code."""
    node_class = _printing_node(stamp)
    loop = asyncio.get_running_loop()
    stop = _stop_on_signals(loop)
    lines: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=10_000)
    failed: list[str] = []  # why joining cannot work (the process then exits with 2)
    server_ssl, client_ssl = tls if tls is not None else (None, None)
    async with node_class(
        listen,
        config=config,
        node_id=node_id,
        advertise=advertise,
        ssl=server_ssl,
        client_ssl=client_ssl,
        meta=meta,
    ) as node:
        log.info("node %s listening on %s (origin %s)", node.id, node.address, node.origin)
        start_metrics(node, metrics_port, metrics_host)
        _write_ready(node)
        joined = asyncio.Event()
        tasks: list[asyncio.Task[Any]] = [
            asyncio.ensure_future(_join_seeds(node, joins, config, stop, joined, failed)),
            asyncio.ensure_future(_broadcast_lines(node, lines, joined, stop, exit_on_eof)),
        ]
        if stats_interval > 0:
            tasks.append(asyncio.ensure_future(_report_stats(node, stats_interval)))
        threading.Thread(target=_read_stdin, args=(lines, loop), name="stdin", daemon=True).start()
        await stop.wait()
        log.info("leaving")
        for t in tasks:
            t.cancel()
        # Give queued stdin lines a last chance? No: a signal means stop now.
    if failed:
        sys.stderr.write(f"Error: {failed[0]}\n")
        return 2
    return 0


@click.command("run")
@click.option("--listen", required=True, metavar="HOST:PORT", help="Address to listen on.")
@click.option(
    "--join",
    "joins",
    multiple=True,
    metavar="HOST:PORT",
    help="Seed to join (repeatable): HOST:PORT, or dns:NAME:PORT for every address NAME "
    "resolves to (resolved again while isolated).",
)
@click.option("--cluster", default=None, help="Cluster name (peers of others are refused).")
@click.option("--advertise", default=None, metavar="HOST:PORT", help="Address peers dial.")
@click.option("--node-id", default=None, help="Node id (default: name@address/random).")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Override a Config field, e.g. --set heartbeat_timeout=2 (repeatable).",
)
@click.option(
    "--meta",
    "meta_items",
    multiple=True,
    metavar="KEY=VALUE",
    help="Metadata of this node in every member list, e.g. --meta zone=eu-1 (repeatable).",
)
@click.option("--stamp", is_flag=True, help='Add "ts" (delivery time, epoch s) to each line.')
@click.option("--exit-on-eof", is_flag=True, help="Leave when stdin ends.")
@click.option(
    "--stats-interval",
    type=float,
    default=0.0,
    help=f"Write a '{STATS_PREFIX.strip()} {{json}}' line to stderr every S seconds.",
)
@click.option("--log-level", default="INFO", show_default=True, help="Log level on stderr.")
@click.option(
    "--loop",
    "loop_kind",
    type=click.Choice(["auto", "asyncio", "uvloop"]),
    default="auto",
    show_default=True,
    help="Event loop (auto: uvloop when installed).",
)
@metrics_options
@tls_options
def run_command(
    listen: str,
    joins: tuple[str, ...],
    cluster: str | None,
    advertise: str | None,
    node_id: str | None,
    overrides: tuple[str, ...],
    meta_items: tuple[str, ...],
    stamp: bool,
    exit_on_eof: bool,
    stats_interval: float,
    log_level: str,
    loop_kind: str,
    metrics_port: int | None,
    metrics_host: str,
    tls_cert: str | None,
    tls_key: str | None,
    tls_ca: str | None,
    tls_no_client_auth: bool,
) -> None:
    """Run one node: broadcast each stdin line, print each delivery as a JSON line."""
    logging.basicConfig(
        stream=sys.stderr,
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = _config(cluster, overrides)
    meta: dict[str, str] = {}
    for item in meta_items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--meta")
        meta[key] = value
    if meta_size(meta) > config.member_meta_max:
        raise click.BadParameter(
            f"{meta_size(meta)} bytes, over member_meta_max={config.member_meta_max}",
            param_hint="--meta",
        )
    for seed in joins:
        try:
            parse_seed(seed)
        except ConfigError as e:
            raise click.ClickException(f"--join: {e}") from None
    try:
        tls = tls_contexts(tls_cert, tls_key, tls_ca, client_auth=not tls_no_client_auth)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    try:
        code = _run_on_loop(
            _run_node(
                listen,
                joins,
                config,
                advertise,
                node_id,
                stamp,
                exit_on_eof,
                stats_interval,
                metrics_port,
                metrics_host,
                tls,
                meta,
            ),
            loop_kind,
        )
    except OSError as e:
        raise click.ClickException(f"cannot listen on {listen}: {e}") from e
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    sys.exit(code)


# ---------------------------------------------------------------------------- cluster


def _ms(v: float) -> str:
    return "-" if v != v else f"{v:.2f}ms"


class _Worker(NodeProc):
    """One ``gossipfast run`` child process of the cluster and what it reported."""

    def __init__(
        self, run: _ClusterRun, index: int, listen: str, seeds: list[str], options: list[str]
    ) -> None:
        self.run = run
        self.index = index
        self.delivered = 0
        self.dups = 0
        self.seen: set[int] = set()
        self.latencies: list[float] = []
        super().__init__(listen, seeds, options=options, settings=run.overrides)

    def on_stdout(self, line: str) -> None:
        # On a reader thread: the figures are kept on the event loop's thread.
        with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
            self.run.loop.call_soon_threadsafe(self.run.on_delivery, self, line)

    def on_stderr(self, line: str) -> None:
        if " ERROR " in line or "Traceback" in line:
            sys.stderr.write(f"[node {self.index}] {line}")


class _ClusterRun:
    def __init__(
        self,
        nodes: int,
        rate: float,
        duration: float,
        payload: int,
        config: list[str],
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        tls: Sequence[str] = (),
    ) -> None:
        self.tls = list(tls)  # --tls-* options for every node
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.n = nodes
        self.rate = rate
        self.duration = duration
        self.payload = payload
        self.overrides = config
        self.workers: list[_Worker] = []
        self.sent: dict[int, tuple[int, float]] = {}  # seq -> (sender index, send time)
        self.got: dict[int, int] = {}  # seq -> deliveries so far
        self.latencies: list[float] = []
        self.window: list[tuple[float, float]] = []  # (delivery time, latency) recent
        self.t0 = 0.0
        self.probes_seen: dict[int, set[int]] = {}
        self.loop = asyncio.get_running_loop()  # made inside the cluster's coroutine

    async def start(self, timeout: float = 60.0) -> None:
        """Start the nodes (node 0 first, the others joining it); wait for each one's
        ready line. :class:`~gossipfast._procs.ProcError` past ``timeout`` seconds."""
        base = ["--stamp", "--stats-interval", "0.5", "--log-level", "WARNING", *self.tls]

        def spawn(i: int, listen: str, seeds: list[str]) -> _Worker:
            opts = list(base)
            if self.metrics_port is not None:
                # one endpoint per node: consecutive ports from --metrics-port
                opts += ["--metrics-port", str(self.metrics_port + i)]
                opts += ["--metrics-host", self.metrics_host]
            return _Worker(self, i, listen, seeds, opts)

        self.workers = await asyncio.to_thread(start_nodes, self.n, spawn, timeout=timeout)

    def on_delivery(self, w: _Worker, raw: str) -> None:
        """One stdout line of worker ``w`` (on the loop's thread)."""
        try:
            d = json.loads(raw)
            kind, seq_s, sent_s = d["payload"].split(" ", 3)[:3]
        except (ValueError, KeyError, AttributeError):
            return
        if kind == "probe":
            self.probes_seen.setdefault(int(seq_s), set()).add(w.index)
            return
        seq = int(seq_s)
        if seq in w.seen:
            w.dups += 1
            return
        w.seen.add(seq)
        w.delivered += 1
        self.got[seq] = self.got.get(seq, 0) + 1
        lat = float(d.get("ts", time.time())) - float(sent_s)
        w.latencies.append(lat)
        self.latencies.append(lat)
        self.window.append((time.monotonic(), lat))

    async def send(self, index: int, text: str) -> None:
        self.workers[index].send(text)

    async def warm_up(self, timeout: float = 30.0) -> bool:
        """Probe from node 0 until every other node delivers a probe."""
        deadline = time.monotonic() + timeout
        k = 0
        while time.monotonic() < deadline:
            k += 1
            await self.send(0, f"probe {k} 0")
            await asyncio.sleep(0.3)
            for seen in self.probes_seen.values():
                if len(seen) >= self.n - 1:
                    return True
        return False

    async def stream(self, on_tick: Any) -> None:
        self.t0 = time.monotonic()
        interval = 1.0 / self.rate
        seq = 0
        next_at = self.t0
        last_tick = 0.0
        while True:
            now = time.monotonic()
            if now - self.t0 >= self.duration:
                break
            while next_at <= now:
                seq += 1
                who = random.randrange(self.n)
                head = f"msg {seq} {time.time():.6f} "
                pad = "x" * max(0, self.payload - len(head))
                self.sent[seq] = (who, time.time())
                await self.send(who, head + pad)
                next_at += interval
            if now - last_tick >= 0.25:
                last_tick = now
                on_tick()
            await asyncio.sleep(min(0.01, max(0.0, next_at - time.monotonic())))

    def expected(self) -> int:
        return len(self.sent) * (self.n - 1)

    def complete(self) -> int:
        return sum(1 for v in self.got.values() if v >= self.n - 1)

    async def drain(self, timeout: float, on_tick: Any) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and sum(self.got.values()) < self.expected():
            on_tick()
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        await asyncio.to_thread(stop_all, self.workers)

    # -- figures -------------------------------------------------------------------------
    def recent(self, seconds: float = 2.0) -> tuple[float, float, float]:
        """(deliveries/s, p50 ms, p99 ms) over the last ``seconds``."""
        cut = time.monotonic() - seconds
        self.window = [x for x in self.window if x[0] >= cut]
        lats = sorted(x[1] for x in self.window)
        return (
            len(lats) / seconds,
            percentile(lats, 0.5) * 1e3,
            percentile(lats, 0.99) * 1e3,
        )

    def table(self, title: str) -> Any:
        from rich.table import Table

        rate, p50, p99 = self.recent()
        t = Table(title=title, caption=self.headline(rate, p50, p99))
        for col in ("node", "address", "active", "passive", "delivered", "missing", "dups"):
            t.add_column(col, justify="right")
        t.add_column("p50", justify="right")
        t.add_column("p99", justify="right")
        for w in self.workers:
            own = sum(1 for s in self.sent.values() if s[0] == w.index)
            missing = len(self.sent) - own - w.delivered
            lats = sorted(w.latencies[-5000:])
            t.add_row(
                str(w.index),
                w.address,
                str(w.stats.get("active", "?")),
                str(w.stats.get("passive", "?")),
                str(w.delivered),
                str(missing),
                str(w.dups),
                _ms(percentile(lats, 0.5) * 1e3),
                _ms(percentile(lats, 0.99) * 1e3),
            )
        return t

    def headline(self, rate: float, p50: float, p99: float) -> str:
        elapsed = max(1e-9, time.monotonic() - self.t0) if self.t0 else 0.0
        return (
            f"t={elapsed:5.1f}s  sent={len(self.sent)}  "
            f"deliveries={sum(self.got.values())}/{self.expected()}  "
            f"rate={rate:,.0f}/s  p50={_ms(p50)}  p99={_ms(p99)}"
        )

    def summary(self) -> dict[str, Any]:
        lats = sorted(self.latencies)
        exp = self.expected()
        got = sum(self.got.values())
        return {
            "nodes": self.n,
            "broadcasts": len(self.sent),
            "deliveries": got,
            "expected": exp,
            "reliability": (got / exp) if exp else 1.0,
            "complete_broadcasts": self.complete(),
            "duplicates": sum(w.dups for w in self.workers),
            "throughput_per_s": self.complete() / self.duration if self.duration else 0.0,
            "p50_ms": percentile(lats, 0.5) * 1e3,
            "p99_ms": percentile(lats, 0.99) * 1e3,
            "max_ms": (lats[-1] * 1e3) if lats else float("nan"),
            "mean_ms": (statistics.fmean(lats) * 1e3) if lats else float("nan"),
        }


async def _cluster_main(
    nodes: int,
    rate: float,
    duration: float,
    payload: int,
    overrides: list[str],
    as_json: bool,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    tls: Sequence[str] = (),
) -> int:
    from rich.console import Console
    from rich.live import Live

    console = Console(stderr=as_json)
    if not console.is_terminal:
        console = Console(stderr=as_json, width=120)  # logs and CI: room for every column
    run = _ClusterRun(nodes, rate, duration, payload, overrides, metrics_port, metrics_host, tls)
    console.print(f"starting {nodes} nodes on loopback ...")
    if metrics_port is not None:
        console.print(
            f"metrics: http://{metrics_host}:{metrics_port}..{metrics_port + nodes - 1}/metrics"
        )
    try:
        try:
            await run.start()
        except ProcError as e:
            console.print(f"[red]{e}[/red]", highlight=False)
            return 2
        if not await run.warm_up():
            console.print("[red]the cluster did not connect within 30 s[/red]")
            return 2
        console.print(
            f"cluster up; streaming {rate:g} broadcasts/s of {payload} bytes for {duration:g} s"
        )
        if console.is_terminal:
            with Live(run.table("gossipfast cluster"), console=console, refresh_per_second=4) as lv:

                def tick() -> None:
                    lv.update(run.table("gossipfast cluster"))

                await run.stream(tick)
                await run.drain(5.0, tick)
                tick()
        else:
            last = [0.0]

            def tick() -> None:
                now = time.monotonic()
                if now - last[0] >= 1.0:
                    last[0] = now
                    console.print(run.headline(*run.recent()), highlight=False)

            await run.stream(tick)
            await run.drain(5.0, tick)
            console.print(run.table("gossipfast cluster: per node"))
    finally:
        await run.stop()
    s = run.summary()
    if as_json:
        sys.stdout.write(json.dumps(s) + "\n")
    else:
        from rich.table import Table

        t = Table(title="summary")
        t.add_column("measure")
        t.add_column("value", justify="right")
        for k, v in s.items():
            t.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
        console.print(t)
    return 0 if s["deliveries"] == s["expected"] and s["duplicates"] == 0 else 1


@click.command("cluster")
@click.option(
    "--nodes",
    type=click.IntRange(2, 64),
    default=5,
    show_default=True,
    help="Nodes to start, one process each.",
)
@click.option(
    "--rate",
    type=click.FloatRange(0.1, 1e6),
    default=200.0,
    show_default=True,
    help="Broadcasts per second, each from a random node.",
)
@click.option(
    "--duration",
    type=click.FloatRange(0.5, 3600),
    default=10.0,
    show_default=True,
    help="Seconds of streaming (then up to 5 s to drain).",
)
@click.option(
    "--payload",
    type=click.IntRange(32, 1 << 20),
    default=100,
    show_default=True,
    help="Bytes per broadcast payload.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Config override for every node (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON line.")
@metrics_options
@tls_options
def cluster_command(
    nodes: int,
    rate: float,
    duration: float,
    payload: int,
    overrides: tuple[str, ...],
    as_json: bool,
    metrics_port: int | None,
    metrics_host: str,
    tls_cert: str | None,
    tls_key: str | None,
    tls_ca: str | None,
    tls_no_client_auth: bool,
) -> None:
    """Start N nodes on loopback (one process each), stream broadcasts, show the figures.

    With --metrics-port P, node i serves its metrics on port P+i. With the --tls-*
    options every node uses the same certificate (for 127.0.0.1) and CA.
    """
    _config(None, overrides)  # validate before spawning anything
    try:
        tls_contexts(tls_cert, tls_key, tls_ca, client_auth=not tls_no_client_auth)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    tls = tls_args(tls_cert, tls_key, tls_ca, not tls_no_client_auth)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    code = run(
        _cluster_main(
            nodes,
            rate,
            duration,
            payload,
            list(overrides),
            as_json,
            metrics_port,
            metrics_host,
            tls,
        )
    )
    sys.exit(code)


__all__ = [
    "STATS_PREFIX",
    "cluster_command",
    "free_ports",
    "metrics_options",
    "run_command",
    "start_metrics",
]
