"""Cache invalidation across processes.

Every process keeps a local cache. When one process changes a value, it drops its own
entry and broadcasts ``invalidate <key>``; every other process drops the key too, so the
next read goes back to the source of truth.

Run the whole demo (three processes on loopback)::

    python examples/cache_invalidation.py

or one worker by hand (it reads ``set KEY VALUE`` / ``get KEY`` / ``quit`` on stdin)::

    python examples/cache_invalidation.py worker --listen 127.0.0.1:7001
    python examples/cache_invalidation.py worker --listen 127.0.0.1:7002 --join 127.0.0.1:7001
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

import gossipfast

# The "database": what a cache miss would load.
DATABASE = {"user:42": "Ada", "user:7": "Grace"}


class CachingNode(gossipfast.Node):
    """A node whose deliveries are invalidations of its local cache."""

    def __init__(self, listen: str) -> None:
        super().__init__(listen)
        self.cache: dict[str, str] = dict(DATABASE)  # warm cache

    def handle_broadcast(self, message: gossipfast.Message) -> None:
        verb, _, key = message.payload.decode().partition(" ")
        if verb == "invalidate":
            self.cache.pop(key, None)
            print(f"INVALIDATED {key}", flush=True)

    async def set(self, key: str, value: str) -> None:
        DATABASE[key] = value  # write the source of truth (here: this process only)
        self.cache.pop(key, None)
        await self.broadcast(f"invalidate {key}".encode())


async def worker(listen: str, join: str | None) -> None:
    loop = asyncio.get_running_loop()
    async with CachingNode(listen) as node:
        print(f"READY {node.address}", flush=True)
        if join:
            await node.join([join])
            print("JOINED", flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            cmd = line.split()
            if not cmd or cmd[0] == "quit":
                return
            if cmd[0] == "set" and len(cmd) == 3:
                await node.set(cmd[1], cmd[2])
                print(f"SET {cmd[1]}", flush=True)
            elif cmd[0] == "get" and len(cmd) == 2:
                print(f"VALUE {cmd[1]} {node.cache.get(cmd[1], 'MISS')}", flush=True)


def demo(n: int = 3) -> int:
    """Start ``n`` worker processes, change a key in one, watch the others drop it."""
    me = [sys.executable, __file__, "worker", "--listen", "127.0.0.1:0"]
    procs: list[subprocess.Popen[str]] = []

    def start(extra: list[str]) -> subprocess.Popen[str]:
        p = subprocess.Popen(
            me + extra, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        procs.append(p)
        return p

    def expect(p: subprocess.Popen[str], prefix: str) -> str:
        assert p.stdout is not None
        for line in p.stdout:
            if line.startswith(prefix):
                return line.strip()
        raise RuntimeError(f"worker ended before printing {prefix!r}")

    def send(p: subprocess.Popen[str], line: str) -> None:
        assert p.stdin is not None
        p.stdin.write(line + "\n")
        p.stdin.flush()

    try:
        first = start([])
        seed = expect(first, "READY").split()[1]
        for _ in range(n - 1):
            expect(start(["--join", seed]), "JOINED")
        for p in procs:
            send(p, "get user:42")
            print(f"before: {expect(p, 'VALUE')}")
        t0 = time.perf_counter()
        send(first, "set user:42 Lovelace")
        for p in procs[1:]:
            expect(p, "INVALIDATED user:42")
        ms = (time.perf_counter() - t0) * 1e3
        for p in procs:
            send(p, "get user:42")
            print(f"after:  {expect(p, 'VALUE')}")
        print(f"all {n - 1} other caches invalidated in {ms:.1f} ms")
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                send(p, "quit")
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd")
    w = sub.add_parser("worker", help="one caching process")
    w.add_argument("--listen", default="127.0.0.1:0")
    w.add_argument("--join", default=None)
    ap.add_argument("--nodes", type=int, default=3)
    args = ap.parse_args()
    if args.cmd == "worker":
        gossipfast.run(worker(args.listen, args.join))
        return 0
    return demo(args.nodes)


if __name__ == "__main__":
    sys.exit(main())
