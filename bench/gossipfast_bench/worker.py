"""One node of a ``gossipfast bench`` cluster, in its own process.

:mod:`gossipfast_bench.bench` starts N of these and steers them with one JSON object per line
on stdin; each answers with one JSON line on the file descriptor given by
``--ctl-fd`` (stdout by default; competitor libraries print to stdout, so the worker
points ``sys.stdout`` at stderr before loading them).

It runs under any interpreter that has the library it measures: the coordinator
starts it with ``runpy.run_path`` (so it works for a venv that lacks gossipfast and this
distribution), which is why it imports only the standard library at the top and the
measured library lazily. Where they are installed, ``python -m gossipfast_bench.worker
IMPL INDEX`` runs it too.

Payload layout (shared host clock): ``>qII`` = CLOCK_MONOTONIC ns at the broadcast
call, publisher index, sequence number; padded with zeros to the payload size.
"""

from __future__ import annotations

import argparse
import array
import base64
import gc
import json
import math
import os
import resource
import struct
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

_HDR = struct.Struct(">qII")
_FLOOD_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "flood.py")
_now_ns = time.monotonic_ns
#: Latency histogram resolution: bucket = floor(ln(ns) * _LOG_SCALE), about 1 % wide.
_LOG_SCALE = 100.0
# gossipfast stats that are gauges (current sizes), not counters: a run reports their
# value at its end, not a difference.
_GAUGES = frozenset(
    {
        "missing",
        "queued",
        "members",
        "members_dead",
        "active",
        "passive",
        "eager",
        "lazy",
        "graveyard",
        "store_messages",
        "store_bytes",
        "origins",
        "connections",
        "graft_delay_ms",
        "tree_hops",
    }
)


class Recorder:
    """What one node saw during one run: per-publisher bitmaps and latencies.

    One per worker, cleared in place before each run, so that :attr:`on_payload` (what
    the measured library calls per delivery) stays the same function and holds its
    containers in closure cells: a delivery costs one Python call, and the harness's
    own cost per message stays small next to what it measures.
    """

    __slots__ = ("bitmaps", "last", "lat", "me", "on_payload")

    def __init__(self, me: int) -> None:
        self.me = me
        self.bitmaps: list[bytearray] = []
        self.lat = array.array("q")
        self.last = 0
        self.on_payload: Callable[[bytes], None] = self._recorder()

    def _recorder(self) -> Callable[[bytes], None]:
        unpack = _HDR.unpack_from
        now_ns = _now_ns
        me = self.me
        bitmaps = self.bitmaps
        lat_append = self.lat.append
        rec = self

        def on_payload(payload: bytes) -> None:
            ts, pub, seq = unpack(payload)
            if pub == me:
                return  # py-libp2p delivers a node's own messages to its subscription
            try:
                bm = bitmaps[pub]
            except IndexError:  # no run prepared yet, or a bad header
                return
            now = now_ns()
            lat_append(now - ts)
            if seq >= len(bm):
                bm.extend(bytes(seq - len(bm) + 65536))
            bm[seq] = 1
            rec.last = now

        return on_payload

    def reset(self, publishers: int) -> None:
        """Forget the last run (in place: :attr:`on_payload` keeps its containers)."""
        del self.lat[:]
        self.bitmaps[:] = [bytearray() for _ in range(publishers)]
        self.last = 0

    @property
    def count(self) -> int:
        """Deliveries of others' messages noted since the last reset."""
        return len(self.lat)

    def histogram(self) -> dict[str, int]:
        """Latencies as log buckets (mergeable across nodes)."""
        scale = _LOG_SCALE
        log = math.log
        c = Counter(int(log(v if v > 1 else 1) * scale) for v in self.lat)
        return {str(k): v for k, v in c.items()}


def _peak_rss_reset() -> None:
    # Linux: writing 5 to clear_refs resets VmHWM, so the peak is per run.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_rss_kib() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Impl:
    """What every measured library provides to the worker (asyncio or trio flavour)."""

    name = "?"
    sleep: Callable[[float], Awaitable[Any]]

    def __init__(self, index: int) -> None:
        self.index = index
        self.recorder = Recorder(index)
        #: Note one delivered payload: what the library's delivery callback calls.
        self.on_payload = self.recorder.on_payload

    async def start(self) -> str:  # pragma: no cover - interface
        """Listen on loopback; return the address others use."""
        raise NotImplementedError

    async def join(self, cmd: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover
        """Connect to the cluster as ``cmd`` says."""
        raise NotImplementedError

    def view(self) -> list[str]:
        """Addresses of current neighbours (for the overlay the flood reuses)."""
        return []

    async def publish(self, payload: bytes) -> None:  # pragma: no cover
        """Broadcast one payload."""
        raise NotImplementedError

    def payload_sent(self) -> int:
        """Payload-carrying messages sent so far (for RMR); -1: not known."""
        return -1

    #: Called after each batch of publishes when set (brokers: send the pipeline).
    flush: Callable[[], Awaitable[None]] | None = None


# ---------------------------------------------------------------------------- gossipfast
class GossipfastImpl(Impl):
    name = "gossipfast"

    async def start(self) -> str:
        import asyncio

        import gossipfast

        record = self.on_payload

        class _Node(gossipfast.Node):
            # The documented per-delivery hook: no queue, no async iterator.
            def handle_broadcast(self, message: Any) -> None:
                record(message.payload)

        self.sleep = asyncio.sleep
        # GOSSIPFAST_BENCH_CONFIG: JSON of Config overrides (``gossipfast bench --config``).
        overrides = json.loads(os.environ.get("GOSSIPFAST_BENCH_CONFIG") or "{}")
        self.node = _Node("127.0.0.1:0", config=gossipfast.Config(**overrides))
        await self.node.start()
        return self.node.address

    async def join(self, cmd: dict[str, Any]) -> dict[str, Any]:
        seeds = cmd.get("seeds") or []
        if seeds:
            await self.node.join(seeds)
        return {}

    def view(self) -> list[str]:
        return list(self.node.active_view)

    async def publish(self, payload: bytes) -> None:
        await self.node.broadcast(payload)

    def payload_sent(self) -> int:
        return int(self.node.stats().get("sent_gossip", 0))

    def stats(self) -> dict[str, int]:
        return dict(self.node.stats())


# ---------------------------------------------------------------------------- flood
class FloodImpl(Impl):
    name = "flood"
    _class = "Flood"

    async def start(self) -> str:
        import asyncio
        import importlib.util

        # By file path: the reference must not depend on gossipfast being importable.
        path = _FLOOD_PATH
        spec = importlib.util.spec_from_file_location("_gossipfast_bench_flood", path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        self.sleep = asyncio.sleep
        self.flood = getattr(mod, self._class)(self.index + 1, self.on_payload)
        return str(await self.flood.listen())

    async def join(self, cmd: dict[str, Any]) -> dict[str, Any]:
        for addr in cmd.get("dial") or []:
            await self.flood.connect(addr)
        return {}

    def view(self) -> list[str]:
        return [str(lk.tr.get_extra_info("peername")) for lk in self.flood.links]

    async def publish(self, payload: bytes) -> None:
        await self.flood.publish(payload)

    def payload_sent(self) -> int:
        return int(self.flood.sent)


class StarImpl(FloodImpl):
    """The host's ceiling: every process connected to every other, publishers write
    each frame straight to all of them, receivers deliver and forward nothing."""

    name = "star"
    _class = "Star"


# ---------------------------------------------------------------------------- brokers
_CHANNEL = "gossipfast-bench"


def _broker_address() -> tuple[str, int]:
    """The broker the coordinator started (``GOSSIPFAST_BENCH_BROKER`` = host:port)."""
    host, _, port = os.environ["GOSSIPFAST_BENCH_BROKER"].rpartition(":")
    return host, int(port)


class _BrokerImpl(Impl):
    """A broker client: one subscriber connection per process, publishes batched."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        #: Subscriber connections the server closed (slow consumer) or lost.
        self.disconnects = 0
        #: Messages the client library dropped for a slow subscriber (NATS).
        self.slow_drops = 0

    def stats(self) -> dict[str, int]:
        return {"disconnects": self.disconnects, "slow_consumer_drops": self.slow_drops}

    async def join(self, cmd: dict[str, Any]) -> dict[str, Any]:
        return {}


class RedisImpl(_BrokerImpl):
    """Redis pub/sub through redis-py (hiredis parser): publishes pipelined."""

    name = "redis"

    async def start(self) -> str:
        import asyncio

        import hiredis  # noqa: F401 - measured with the C parser, never without
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.sleep = asyncio.sleep
        host, port = _broker_address()
        self.pub = aioredis.Redis(host=host, port=port)
        self.pipe = self.pub.pipeline(transaction=False)
        self.pending = 0
        # No silent reconnect: a connection the server closed is counted, then reopened.
        self.sub = aioredis.Redis(host=host, port=port, retry=Retry(NoBackoff(), 0))
        ready = asyncio.Event()
        self.reader = asyncio.ensure_future(self._read(ready))
        await asyncio.wait_for(ready.wait(), 30)
        self.flush = self._flush
        return f"redis/{self.index}"

    async def _read(self, ready: Any) -> None:
        import asyncio

        from redis.exceptions import ConnectionError as RedisConnectionError

        record = self.on_payload
        while True:
            ps = self.sub.pubsub()
            try:
                await ps.subscribe(_CHANNEL)
                async for msg in ps.listen():
                    if msg["type"] == "message":
                        record(msg["data"])
                    elif msg["type"] == "subscribe":
                        ready.set()
            except (RedisConnectionError, OSError) as e:
                self.disconnects += 1
                print(f"redis subscriber disconnected: {e!r}", file=sys.stderr)
            finally:
                try:
                    await ps.aclose()
                except (RedisConnectionError, OSError):
                    pass
            await asyncio.sleep(0.05)

    async def publish(self, payload: bytes) -> None:
        self.pipe.publish(_CHANNEL, payload)
        self.pending += 1
        if self.pending >= 64:
            await self._flush()

    async def _flush(self) -> None:
        if self.pending:
            self.pending = 0
            await self.pipe.execute()


class NatsImpl(_BrokerImpl):
    """NATS core pub/sub through nats-py."""

    name = "nats"

    async def start(self) -> str:
        import asyncio

        import nats
        from nats.errors import SlowConsumerError

        self.sleep = asyncio.sleep
        host, port = _broker_address()
        first = True

        async def on_error(e: Exception) -> None:
            if isinstance(e, SlowConsumerError):
                self.slow_drops += 1
            else:
                print(f"nats error: {e!r}", file=sys.stderr)

        async def on_disconnect() -> None:
            nonlocal first
            if not first:
                self.disconnects += 1
                print("nats disconnected", file=sys.stderr)

        # Two connections, as for Redis: the subscriber's reads never queue behind
        # the publisher's writes.
        self.pub = await nats.connect(f"nats://{host}:{port}", error_cb=on_error)
        self.sub = await nats.connect(
            f"nats://{host}:{port}", error_cb=on_error, disconnected_cb=on_disconnect
        )
        first = False
        record = self.on_payload

        async def on_msg(msg: Any) -> None:
            record(msg.data)

        await self.sub.subscribe(_CHANNEL, cb=on_msg)
        await self.sub.flush()  # the server has the subscription before any run
        return f"nats/{self.index}"

    async def publish(self, payload: bytes) -> None:
        await self.pub.publish(_CHANNEL, payload)


# ---------------------------------------------------------------------------- aiogossip
class AiogossipImpl(Impl):
    name = "aiogossip"

    async def start(self) -> str:
        import asyncio

        from aiogossip.peer import Peer

        self.sleep = asyncio.sleep
        self.peer = Peer(host="127.0.0.1", port=0, loop=asyncio.get_running_loop())
        self.sent0 = 0

        async def _on(message: dict[str, Any]) -> None:
            self.on_payload(base64.b64decode(message["data"]))

        self.peer.subscribe("bench")(_on)

        host, port = self.peer.node["node_addr"]
        return f"{self.peer.node_id}@{host}:{port}"

    async def join(self, cmd: dict[str, Any]) -> dict[str, Any]:
        nodes = []
        for dsn in cmd.get("all") or []:
            node_id, addr = dsn.split("@")
            host, port = addr.split(":")
            if node_id != self.peer.node_id:
                nodes.append({"node_id": node_id, "node_addr": (host, int(port))})
        # Everyone knows everyone: the library's own gossip then picks fanout targets.
        self.peer.gossip.topology.add(nodes)
        return {}

    def view(self) -> list[str]:
        return [str(n) for n in self.peer.nodes]

    async def publish(self, payload: bytes) -> None:
        msg = {"metadata": {}, "data": base64.b64encode(payload).decode()}
        await self.peer.publish("bench", msg)

    def payload_sent(self) -> int:
        return int(self.peer.transport.tx_packets)


ASYNCIO_IMPLS: dict[str, type[Impl]] = {
    "gossipfast": GossipfastImpl,
    "flood": FloodImpl,
    "aiogossip": AiogossipImpl,
    "star": StarImpl,
    "redis": RedisImpl,
    "nats": NatsImpl,
}


# ---------------------------------------------------------------------------- the run
async def publish_loop(impl: Impl, cmd: dict[str, Any], me: int) -> dict[str, Any]:
    """Publish for ``cmd["duration"]`` s at ``cmd["rate"]`` per s (0: as fast as it goes)."""
    size = max(int(cmd["size"]), _HDR.size)
    pad = bytes(size - _HDR.size)
    rate = float(cmd["rate"])
    duration = float(cmd["duration"])
    start_ns = int(cmd["start_ns"])
    limit = int(cmd.get("max_messages") or 0) or (1 << 62)
    pack = _HDR.pack
    publish = impl.publish
    sleep = impl.sleep
    while _now_ns() < start_ns:
        await sleep(min(0.01, (start_ns - _now_ns()) / 1e9))
    t0 = _now_ns()
    end = t0 + int(duration * 1e9)
    seq = 0
    # At most about 1 MiB per batch, so large payloads do not pile up between yields.
    cap = max(1, (1 << 20) // size)
    batch = min(64, cap)
    flush = impl.flush
    while seq < limit:
        now = _now_ns()
        if now >= end:
            break
        if rate > 0:
            due = min(int((now - t0) * rate / 1e9) + 1, limit)
            n = due - seq
            if n <= 0:
                await sleep(0.001)
                continue
        else:
            n = min(batch, limit - seq)
        if rate > 0:
            n = min(n, cap)
        for _ in range(n):
            await publish(pack(_now_ns(), me, seq) + pad)
            seq += 1
        if flush is not None:
            await flush()
        # Yield so the node reads its sockets (prunes, acks) between batches.
        await sleep(0)
    if flush is not None:
        await flush()
    return {"published": seq, "t0": t0, "t_end": _now_ns()}


class Worker:
    """Command handling shared by the asyncio and trio flavours."""

    def __init__(self, impl: Impl, ctl: Any) -> None:
        self.impl = impl
        self.ctl = ctl
        self.pub_result: dict[str, Any] | None = None
        self.cpu0 = 0.0
        self.sent0 = 0
        self.stats0: dict[str, int] = {}

    def reply(self, obj: dict[str, Any]) -> None:
        self.ctl.write(json.dumps(obj) + "\n")
        self.ctl.flush()

    def prepare(self, cmd: dict[str, Any]) -> None:
        if os.environ.get("GOSSIPFAST_BENCH_GC_FREEZE") and not gc.get_freeze_count():
            # ``gossipfast bench --gc-freeze``: the node is up and joined; what exists
            # now (modules, classes, the node) is left out of every later collection.
            gc.collect()
            gc.freeze()
        self.impl.recorder.reset(int(cmd["nodes"]))
        self.pub_result = None
        _peak_rss_reset()
        self.cpu0 = _cpu()
        self.sent0 = self.impl.payload_sent()
        st = getattr(self.impl, "stats", None)
        self.stats0 = st() if st else {}

    def stats_delta(self) -> dict[str, int]:
        """Counters that grew during the run (gossipfast only: drops, repairs, ...), and
        the gauges that changed, at their value at the end of the run."""
        st = getattr(self.impl, "stats", None)
        if st is None:
            return {}
        now = st()
        return {
            k: v if k in _GAUGES else v - self.stats0.get(k, 0)
            for k, v in now.items()
            if isinstance(v, int) and v != self.stats0.get(k, 0)
        }

    def progress(self) -> dict[str, Any]:
        return {
            "count": self.impl.recorder.count,
            "published": self.pub_result["published"] if self.pub_result else None,
        }

    def report(self) -> dict[str, Any]:
        rec = self.impl.recorder
        out = {
            "count": rec.count,
            "last": rec.last,
            "hist": rec.histogram(),
            "bitmaps": [base64.b64encode(zlib.compress(bytes(b), 1)).decode() for b in rec.bitmaps],
            "cpu": _cpu() - self.cpu0,
            "rss_kib": _peak_rss_kib(),
            "payload_sent": (-1 if self.sent0 < 0 else self.impl.payload_sent() - self.sent0),
            "pub": self.pub_result,
            "stats": self.stats_delta(),
        }
        return out


def _read_commands(submit: Callable[[dict[str, Any]], None]) -> None:
    for line in sys.stdin:
        line = line.strip()
        if line:
            submit(json.loads(line))
    submit({"cmd": "exit"})


def run_asyncio(name: str, index: int, ctl: Any, use_uvloop: bool) -> None:
    """Serve commands on an asyncio loop (uvloop when asked and installed)."""
    import asyncio

    impl = ASYNCIO_IMPLS[name](index)
    w = Worker(impl, ctl)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        w.reply({"addr": await impl.start()})
        threading.Thread(
            target=_read_commands,
            args=(lambda c: loop.call_soon_threadsafe(queue.put_nowait, c),),
            daemon=True,
        ).start()
        tasks: set[asyncio.Task[Any]] = set()
        while True:
            cmd = await queue.get()
            op = cmd["cmd"]
            if op == "exit":
                return
            if op == "join":
                w.reply(await impl.join(cmd))
            elif op == "view":
                w.reply({"view": impl.view()})
            elif op == "run":
                w.prepare(cmd)
                if index in cmd["publishers"]:

                    async def pub(cmd: dict[str, Any] = cmd) -> None:
                        w.pub_result = await publish_loop(impl, cmd, index)

                    t = asyncio.ensure_future(pub())
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
                w.reply({})
            elif op == "progress":
                w.reply(w.progress())
            elif op == "report":
                w.reply(w.report())
            elif op == "stats":
                st = getattr(impl, "stats", None)
                w.reply(st() if st else {})

    if use_uvloop:
        try:
            import uvloop

            uvloop.run(main())
            return
        except ImportError:
            pass
    asyncio.run(main())


# ---------------------------------------------------------------------------- libp2p
def run_libp2p(index: int, ctl: Any) -> None:
    """py-libp2p gossipsub runs on trio: the same commands on a trio loop."""
    import logging

    import multiaddr
    import trio
    from libp2p import new_host
    from libp2p.crypto.secp256k1 import create_new_key_pair
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.pubsub.gossipsub import GossipSub
    from libp2p.pubsub.pubsub import Pubsub
    from libp2p.tools.anyio_service import background_trio_service

    logging.disable(logging.WARNING)

    class Libp2pImpl(Impl):
        name = "libp2p"
        pubsub: Any = None

        async def publish(self, payload: bytes) -> None:
            await self.pubsub.publish("bench", payload)

        def view(self) -> list[str]:
            return [str(p) for p in self.pubsub.peers]

    impl = Libp2pImpl(index)
    impl.sleep = trio.sleep
    w = Worker(impl, ctl)

    async def main() -> None:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        host = new_host(key_pair=create_new_key_pair())
        gossipsub = GossipSub(
            protocols=[TProtocol("/meshsub/1.0.0")],
            degree=6,
            degree_low=4,
            degree_high=12,
            heartbeat_interval=1,
            # Their per-topic rate limit (10/s by default) would make the figure meaningless.
            spam_protection_enabled=False,
        )
        pubsub = Pubsub(host, gossipsub)
        impl.pubsub = pubsub
        listen = multiaddr.Multiaddr(f"/ip4/127.0.0.1/tcp/{port}")
        send, recv = trio.open_memory_channel[dict[str, Any]](100)
        token = trio.lowlevel.current_trio_token()

        def submit(c: dict[str, Any]) -> None:
            trio.from_thread.run(send.send, c, trio_token=token)

        async with (
            host.run(listen_addrs=[listen]),
            trio.open_nursery() as nursery,
            background_trio_service(pubsub),
            background_trio_service(gossipsub),
        ):
            await pubsub.wait_until_ready()
            sub = await pubsub.subscribe("bench")

            async def receive() -> None:
                while True:
                    m = await sub.get()
                    impl.on_payload(m.data)

            nursery.start_soon(receive)
            w.reply({"addr": f"/ip4/127.0.0.1/tcp/{port}/p2p/{host.get_id().to_string()}"})
            threading.Thread(target=_read_commands, args=(submit,), daemon=True).start()
            while True:
                cmd = await recv.receive()
                op = cmd["cmd"]
                if op == "exit":
                    nursery.cancel_scope.cancel()
                    return
                if op == "join":
                    for a in cmd.get("dial") or []:
                        await host.connect(info_from_p2p_addr(multiaddr.Multiaddr(a)))
                    w.reply({})
                elif op == "view":
                    w.reply({"view": impl.view()})
                elif op == "run":
                    w.prepare(cmd)
                    if index in cmd["publishers"]:

                        async def pub(cmd: dict[str, Any] = cmd) -> None:
                            w.pub_result = await publish_loop(impl, cmd, index)

                        nursery.start_soon(pub)
                    w.reply({})
                elif op == "progress":
                    w.reply(w.progress())
                elif op == "report":
                    w.reply(w.report())
                elif op == "stats":
                    w.reply({})

    trio.run(main)


def main(argv: list[str] | None = None) -> None:
    """``python -m gossipfast_bench.worker IMPL INDEX``: serve one node until stdin closes."""
    ap = argparse.ArgumentParser()
    ap.add_argument("impl")
    ap.add_argument("index", type=int)
    ap.add_argument("--no-uvloop", action="store_true")
    args = ap.parse_args(argv)
    if os.environ.get("GOSSIPFAST_BENCH_NO_GC"):
        # Experiment knob (profiling only): what the cyclic GC costs the measured node.
        gc.disable()
    ctl = os.fdopen(os.dup(1), "w")
    # Libraries that print (aiogossip prints each callback result) must not corrupt the
    # control channel, nor fill a pipe nobody reads.
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    if args.impl == "libp2p":
        run_libp2p(args.index, ctl)
    else:
        run_asyncio(args.impl, args.index, ctl, not args.no_uvloop)


if __name__ == "__main__":
    main()
