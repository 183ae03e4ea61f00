"""A chat room without a server: every line you type reaches everyone in the room.

Start the first member, then others that join through any member::

    python examples/chat.py --name alice --listen 127.0.0.1:7001
    python examples/chat.py --name bob --listen 127.0.0.1:7002 --join 127.0.0.1:7001
    python examples/chat.py --name carol --listen 127.0.0.1:7003 --join 127.0.0.1:7002

Messages are JSON ``{"name": ..., "text": ...}``; members joining and leaving are shown
from the node's membership events (its direct neighbours only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import gossipfast


async def chat(name: str, listen: str, join: list[str]) -> None:
    loop = asyncio.get_running_loop()
    async with gossipfast.Node(listen, node_id=f"{name}@{listen}") as node:
        print(f"* {name} listening on {node.address}", flush=True)
        if join:
            await node.join(join)
            print(f"* joined via {', '.join(join)}", flush=True)

        async def show_messages() -> None:
            async for msg in node.messages():
                if isinstance(msg, gossipfast.Lagged):
                    print(f"* missed {msg.dropped} messages (too slow)", flush=True)
                    continue
                try:
                    d = json.loads(msg.payload)
                    print(f"{d['name']}> {d['text']}", flush=True)
                except (ValueError, KeyError, TypeError):
                    print(f"?> {msg.payload!r}", flush=True)

        async def show_events() -> None:
            async for ev in node.events():
                if isinstance(ev, gossipfast.NeighborUp):
                    print(f"* neighbour {ev.peer} up", flush=True)
                else:
                    print(f"* neighbour {ev.peer} down ({ev.reason})", flush=True)

        tasks = [asyncio.ensure_future(show_messages()), asyncio.ensure_future(show_events())]
        try:
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line or line.strip() == "/quit":
                    break  # end of input: leave the room
                if line.strip():
                    text = line.rstrip("\n")
                    await node.broadcast(json.dumps({"name": name, "text": text}).encode())
        finally:
            for t in tasks:
                t.cancel()


def main() -> int:
    ap = argparse.ArgumentParser(description="gossipfast chat room")
    ap.add_argument("--name", required=True)
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--join", action="append", default=[], metavar="HOST:PORT")
    args = ap.parse_args()
    gossipfast.run(chat(args.name, args.listen, args.join))
    return 0


if __name__ == "__main__":
    sys.exit(main())
