"""Config push: a versioned settings document every node applies, newest wins.

Any node may push a new config. Each push carries a version ``(counter, origin)``; a
node applies a document only when its version is higher than the one it has, so every
node converges on the same config whatever the delivery order. A node that joins later
asks for the current config once; whoever has one re-broadcasts it (older versions are
ignored everywhere, so answers from several nodes are harmless).

Runs a 4-node cluster in one process on loopback::

    python examples/config_push.py
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import gossipfast

Version = tuple[int, str]


class ConfigNode(gossipfast.Node):
    """A node that keeps the newest config document it has seen."""

    def __init__(self, listen: str) -> None:
        super().__init__(listen)
        self.version: Version = (0, "")
        # not `self.config`: that is the node's gossipfast.Config
        self.settings: dict[str, Any] = {}
        self._answers: set[asyncio.Task[None]] = set()
        self._updated = asyncio.Event()

    def handle_broadcast(self, message: gossipfast.Message) -> None:
        d = json.loads(message.payload)
        if d["type"] == "config":
            version = (d["version"][0], d["version"][1])
            if version > self.version:  # newest wins; ties cannot happen (origin differs)
                self.version, self.settings = version, d["config"]
                self._updated.set()
        elif d["type"] == "want" and self.version[0] > 0:
            # a newcomer asks: answer with what we have (asyncio: not from inside the hook)
            task = asyncio.ensure_future(self._send_config())
            self._answers.add(task)  # keep a reference until it is done
            task.add_done_callback(self._answers.discard)

    async def push(self, config: dict[str, Any]) -> None:
        """Publish a new config (version one above the newest seen)."""
        self.version = (self.version[0] + 1, self.origin)
        self.settings = config
        await self._send_config()

    async def wait_version(self, counter: int, timeout: float = 10.0) -> None:
        """Return once a config of version ``counter`` or newer is applied here."""

        async def wait() -> None:
            while self.version[0] < counter:
                self._updated.clear()
                await self._updated.wait()

        await asyncio.wait_for(wait(), timeout)

    async def request(self) -> None:
        """Ask the cluster for the current config (after joining late)."""
        await self.broadcast(json.dumps({"type": "want"}).encode())

    async def _send_config(self) -> None:
        doc = {"type": "config", "version": list(self.version), "config": self.settings}
        await self.broadcast(json.dumps(doc).encode())


async def main() -> int:
    nodes = [ConfigNode("127.0.0.1:0") for _ in range(3)]
    for n in nodes:
        await n.start()
    try:
        for n in nodes[1:]:
            await n.join([nodes[0].address])

        await nodes[0].push({"log_level": "INFO", "feature_x": False})
        await asyncio.gather(*(n.wait_version(1) for n in nodes))
        await nodes[2].push({"log_level": "DEBUG", "feature_x": True})
        await asyncio.gather(*(n.wait_version(2) for n in nodes))
        print(f"3 nodes on version 2: {nodes[0].settings}")

        late = ConfigNode("127.0.0.1:0")
        await late.start()
        nodes.append(late)
        await late.join([nodes[1].address])
        await late.request()
        await late.wait_version(2)
        print(f"late joiner got version {late.version[0]}: {late.settings}")
        same = all(n.settings == nodes[0].settings for n in nodes)
        print("all 4 nodes agree" if same else "nodes disagree!")
        return 0 if same else 1
    finally:
        for n in nodes:
            await n.leave()


if __name__ == "__main__":
    sys.exit(gossipfast.run(main()))
