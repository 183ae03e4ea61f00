"""``gossipfast demo``: the textual UI through its test pilot, and through a real terminal.

The pilot test drives one DemoApp (a bootstrap node) against a plain Node in the same
event loop; the tmux test starts a bootstrap and two joiners as real processes in tmux
windows, types into them and reads their screens. Loopback only.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from support import wait

import gossipfast
from gossipfast._procs import free_ports

pytest.importorskip("textual")

from textual.widgets import Input

from gossipfast.demo import DemoApp

pytestmark = pytest.mark.network

FAST = gossipfast.Config(
    heartbeat_interval=0.2, heartbeat_timeout=1.0, join_timeout=2.0, shuffle_interval=0.5
)


async def wait_for(cond: Callable[[], bool], pilot: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.05)  # the poll period (the app runs meanwhile)


def screen_log(app: DemoApp) -> str:
    """The text the RichLog widget holds (what the user sees, not our record)."""
    from textual.widgets import RichLog

    return "\n".join(strip.text for strip in app.query_one("#log", RichLog).lines)


@pytest.mark.timeout(90)
def test_demo_pilot(arun: Any) -> None:
    (port,) = free_ports(1)

    async def main() -> None:
        app = DemoApp(f"127.0.0.1:{port}", name="boot", config=FAST)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(lambda: app.node is not None and app.node.running, pilot)
            assert "bootstrap node" in "\n".join(app.lines)
            async with gossipfast.Node("127.0.0.1:0", config=FAST, meta={"name": "peer"}) as peer:
                await peer.join([f"127.0.0.1:{port}"])
                await wait_for(lambda: any("neighbour up" in x for x in app.lines), pilot)

                # The peer's broadcast shows in the log under the name in its member
                # metadata, and in the received count.
                await wait_for(lambda: peer.id in app.node.members(), pilot)  # type: ignore[union-attr]
                await peer.broadcast(b"hello from the test")
                await wait_for(lambda: "peer: hello from the test" in screen_log(app), pilot)
                assert app.node is not None and app.node.stats().delivered == 1

                # Typing a line broadcasts it; the others see its sender's name.
                await pilot.click("#prompt")
                await pilot.press(*"hi all", "enter")
                got = await anext_message(peer)
                assert got == b"hi all"
                assert "you: hi all" in screen_log(app)

                # The status panel shows the views and counts (once it names the peer).
                await wait_for(lambda: peer.address in app.export_screenshot(), pilot)
                shot = app.export_screenshot()  # SVG of the whole screen
                for word in ("received", "missing", "recovered", "active", "passive"):
                    assert word in shot, word
                assert peer.address in shot

                # Library warnings land in the log, not on the terminal.
                logging.getLogger("gossipfast").warning("a test warning")
                assert "warning: a test warning" in screen_log(app)

                for cmd, want in (
                    ("/status", "received 1  missing 0  recovered 0"),
                    ("/nodes", f"active view (open links):\n  {peer.address}"),
                    ("/members", f"  {peer.id} at {peer.address}  name=peer"),
                    ("/help", "/quit    leave the cluster"),
                    ("/bogus", "unknown command /bogus"),
                ):
                    await pilot.press(*cmd, "enter")
                    await wait_for(lambda want=want: any(want in x for x in app.lines), pilot)
                    assert want.split("\n")[0] in screen_log(app)

                # Enter through the Input's own action: pilot.press() would wait for a
                # screen that the app has just closed (the tmux test presses real keys).
                await pilot.press(*"/quit")
                await app.query_one("#prompt", Input).action_submit()
                await wait_for(lambda: not app.node or not app.node.running, pilot)
                # Leaving tells the neighbour at once (no failure timeout).
                await wait_for(lambda: peer.active_view == (), pilot)
        assert app.return_code == 0
        done.append(True)

    done: list[bool] = []
    arun(main(), timeout=80)
    assert done  # textual may swallow the timeout's cancellation: check we got here


async def anext_message(node: gossipfast.Node, timeout: float = 10.0) -> bytes:
    async def first() -> bytes:
        async for msg in node.messages():
            if isinstance(msg, gossipfast.Message):
                return msg.payload
        raise AssertionError("node closed")

    return await asyncio.wait_for(first(), timeout)


@pytest.mark.timeout(60)
def test_demo_join_retries_until_the_seed_answers(arun: Any) -> None:
    a_port, b_port = free_ports(2)

    async def main() -> None:
        app = DemoApp(
            f"127.0.0.1:{b_port}", name="late", seeds=(f"127.0.0.1:{a_port}",), config=FAST
        )
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(lambda: any("retrying" in x for x in app.lines), pilot, 15)
            async with gossipfast.Node(f"127.0.0.1:{a_port}", config=FAST) as seed:
                await wait_for(lambda: app.joined.is_set(), pilot, 15)
                assert app.node is not None and seed.address in app.node.active_view
                await app.action_quit()
        done.append(True)

    done: list[bool] = []
    arun(main(), timeout=50)
    assert done


@pytest.mark.timeout(60)
def test_demo_metrics_port(arun: Any) -> None:
    pytest.importorskip("prometheus_client")

    async def main() -> None:
        app = DemoApp("127.0.0.1:0", name="m", config=FAST, metrics_port=0)
        async with app.run_test() as pilot:
            await wait_for(lambda: any("metrics on http" in x for x in app.lines), pilot)
            url = next(x for x in app.lines if "metrics on http" in x).split()[-1]
            loop = asyncio.get_running_loop()

            def fetch() -> str:
                with urllib.request.urlopen(url, timeout=5) as r:
                    return str(r.read().decode())

            body = await loop.run_in_executor(None, fetch)
            assert app.node is not None
            assert f'gossipfast_view_size{{node="{app.node.address}",view="active"}}' in body
            await app.action_quit()
        done.append(True)

    done: list[bool] = []
    arun(main(), timeout=50)
    assert done


def test_demo_port_in_use_exits_with_a_message(arun: Any) -> None:
    async def main() -> None:
        async with gossipfast.Node("127.0.0.1:0") as taken:
            app = DemoApp(taken.address, name="x")
            async with app.run_test() as pilot:
                await wait_for(lambda: app.return_code is not None, pilot)  # it exited
            assert app.return_code == 1
            done.append(True)

    done: list[bool] = []
    arun(main(), timeout=30)
    assert done


# ---------------------------------------------------------------- real terminal (tmux)


class Tmux:
    """A private tmux server (own socket) with one window per demo node."""

    def __init__(self) -> None:
        self.sock = f"gf-test-{uuid.uuid4().hex[:8]}"
        self.windows: list[str] = []

    def cmd(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.sock, *args], capture_output=True, text=True, timeout=10
        )
        return out.stdout

    def start(self, name: str, argv: list[str]) -> None:
        shell = " ".join(argv)
        if not self.windows:
            self.cmd("new-session", "-d", "-s", "t", "-n", name, "-x", "130", "-y", "40", shell)
        else:
            self.cmd("new-window", "-t", "t", "-n", name, shell)
        self.windows.append(name)

    def screen(self, name: str) -> str:
        return self.cmd("capture-pane", "-p", "-t", f"t:{name}")

    def type(self, name: str, text: str) -> None:
        self.cmd("send-keys", "-t", f"t:{name}", "-l", text)
        self.cmd("send-keys", "-t", f"t:{name}", "Enter")

    def wait(self, name: str, text: str, timeout: float = 30.0) -> str:
        """The screen of window ``name`` once it shows ``text`` (AssertionError if not
        within ``timeout`` seconds)."""
        screen = [""]

        def shown() -> bool:
            screen[0] = self.screen(name)
            return text in screen[0]

        if not wait.wait_for(shown, timeout, poll=0.2):
            raise AssertionError(f"{text!r} not on {name}'s screen:\n{screen[0]}")
        return screen[0]

    def kill(self) -> None:
        self.cmd("kill-server")


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_three_node_demo_in_tmux() -> None:
    boot, p2, p3 = free_ports(3)
    gf = [sys.executable, "-m", "gossipfast", "demo"]
    fast = ["--set", "heartbeat_interval=0.2", "--set", "join_timeout=2"]
    seed = ["--seed", f"127.0.0.1:{boot}"]
    t = Tmux()
    try:
        t.start("n1", [*gf, "bootstrap", "--port", str(boot), *fast])
        t.wait("n1", "bootstrap node")
        t.start("n2", [*gf, "join", str(p2), "node2", *seed, *fast])
        t.start("n3", [*gf, "join", str(p3), "node3", *seed, *fast])
        t.wait("n2", "joined:")
        t.wait("n3", "joined:")
        t.type("n2", "hello from two")
        t.wait("n1", "node2: hello from two")
        t.wait("n3", "node2: hello from two")
        t.type("n1", "/status")
        screen = t.wait("n1", "status of node1@")
        assert "received 1" in screen
        t.type("n3", "/quit")
        assert wait.wait_for(
            lambda: "n3" not in t.cmd("list-windows", "-t", "t", "-F", "#W").split(), 20, 0.2
        ), "node3 did not exit on /quit"
    finally:
        t.kill()
