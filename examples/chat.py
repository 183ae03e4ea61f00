"""A chat room without a server: every line you type reaches everyone in the room.

Start the first member, then others that join through any member::

    python examples/chat.py --name alice --listen 127.0.0.1:7001
    python examples/chat.py --name bob --listen 127.0.0.1:7002 --join 127.0.0.1:7001
    python examples/chat.py --name carol --listen 127.0.0.1:7003 --join 127.0.0.1:7002

A message is the text itself: who sent it is ``message.sender`` (the node id) and the
name in that member's metadata. Members joining and leaving the room are shown from the
member list's events; ``/who`` lists the room, ``/quit`` (or end of input) leaves.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import gossipfast


async def chat(name: str, listen: str, join: list[str]) -> None:
    loop = asyncio.get_running_loop()
    async with gossipfast.Node(listen, node_id=f"{name}@{listen}", meta={"name": name}) as node:
        print(f"* {name} listening on {node.address}", flush=True)
        if join:
            await node.join(join)
            print(f"* joined via {', '.join(join)}", flush=True)

        def name_of(node_id: str | None) -> str:
            member = node.members().get(node_id or "")
            if member is not None:
                return member.meta.get("name", member.id)
            return node_id or "?"  # a message that overtook its sender's member record

        async def show_messages() -> None:
            async for msg in node.messages():
                if isinstance(msg, gossipfast.Lagged):
                    print(f"* missed {msg.dropped} messages (too slow)", flush=True)
                    continue
                text = msg.payload.decode("utf-8", "replace")
                print(f"{name_of(msg.sender)}> {text}", flush=True)

        async def show_events() -> None:
            async for ev in node.events():
                if isinstance(ev, gossipfast.MemberUp):
                    print(f"* {ev.member.meta.get('name', ev.member.id)} is here", flush=True)
                elif isinstance(ev, gossipfast.MemberDown):
                    who = ev.member.meta.get("name", ev.member.id)
                    print(f"* {who} {'left' if ev.reason == 'left' else 'is gone'}", flush=True)

        tasks = [asyncio.ensure_future(show_messages()), asyncio.ensure_future(show_events())]
        try:
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                text = line.strip()
                if not line or text == "/quit":
                    break  # end of input: leave the room
                if text == "/who":
                    room = sorted(m.meta.get("name", m.id) for m in node.members().values())
                    print(f"* in the room: {', '.join(room)}", flush=True)
                elif text:
                    await node.broadcast(line.rstrip("\n").encode())
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
