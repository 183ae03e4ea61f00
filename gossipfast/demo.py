"""The interactive terminal demo behind ``gossipfast demo`` (needs ``gossipfast[demo]``).

One :class:`DemoApp` is one node in a terminal: a status panel (address, active and
passive views, received / missing / recovered counts), a live log of deliveries and
membership events, and an input line. Text typed there is broadcast as ``"NAME: text"``
(readable by ``gossipfast run`` nodes too); ``/status``, ``/nodes``, ``/help`` and
``/quit`` are commands.

Start one bootstrap node and join others to it, each in its own terminal::

    gossipfast demo bootstrap            # 127.0.0.1:7001, id node1@127.0.0.1:7001
    gossipfast demo join 7002 node2      # joins 127.0.0.1:7001
    gossipfast demo join 7003 node3
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Footer, Header, Input, RichLog, Static

from .config import Config
from .errors import GossipError, JoinError
from .node import Node
from .types import Gap, Lagged, Member, MemberDown, MemberUp, NeighborDown, NeighborUp

HELP = """\
Commands:
  /status  show this node's figures (also on the left, refreshed live)
  /nodes   list the active view (open links) and the passive view (backups)
  /members list every node of the cluster with its metadata (the member list)
  /help    show this help
  /quit    leave the cluster and exit (also Ctrl+Q)
Anything else is broadcast to every other node."""


class _LogToApp(logging.Handler):
    """Library warnings go to the app's log instead of scribbling over the screen."""

    def __init__(self, app: DemoApp) -> None:
        super().__init__(logging.WARNING)
        self.app = app

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.app.say(f"{record.levelname.lower()}: {record.getMessage()}", "red")
        except Exception:  # never let logging break the node
            self.handleError(record)


class DemoApp(App[None]):
    """One gossipfast node with a terminal UI.

    ``listen`` is the address to bind, ``seeds`` the nodes to join (none for a
    bootstrap node), ``name`` the readable name shown to the others.
    ``return_code`` is the process exit code (1 when the address cannot be bound).
    """

    TITLE = "gossipfast demo"
    CSS = """
    #status { width: 44; border: round $accent; padding: 0 1; }
    #log { border: round $primary; }
    #prompt { dock: bottom; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("ctrl+l", "clear_log", "Clear log"),
    ]

    def __init__(
        self,
        listen: str,
        *,
        name: str,
        seeds: tuple[str, ...] = (),
        config: Config | None = None,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
    ) -> None:
        super().__init__()
        self.listen = listen
        self.node_name = name
        self.seeds = seeds
        self.config = config if config is not None else Config()
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.node: Node | None = None
        self.joined = asyncio.Event()
        self.lines: list[str] = []  # plain text of the log, newest last (for /status, tests)
        self.sent = 0
        self._quitting = False
        self._log_handler = _LogToApp(self)
        self._drawn = 0.0  # monotonic time of the last status redraw

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        """Header, status panel | message log, input line, footer."""
        yield Header()
        with Horizontal():
            yield Static(id="status")
            yield RichLog(id="log", wrap=True, markup=False, highlight=False, max_lines=5000)
        yield Input(placeholder="type a message and press Enter, or /help", id="prompt")
        yield Footer()

    async def on_mount(self) -> None:
        """Start the node, then join (in the background) and show the figures live."""
        logging.getLogger("gossipfast").addHandler(self._log_handler)
        node_id = f"{self.node_name}@{self.listen}"
        self.node = Node(
            self.listen, config=self.config, node_id=node_id, meta={"name": self.node_name}
        )
        try:
            await self.node.start()
        except (OSError, ValueError) as e:
            self.exit(return_code=1, message=f"cannot listen on {self.listen}: {e}")
            return
        self.sub_title = f"{self.node_name} @ {self.node.address}"
        if self.metrics_port is not None:
            from .metrics import serve

            try:
                _, port = serve(self.node, self.metrics_port, self.metrics_host)
            except (ImportError, OSError) as e:  # the node still runs without metrics
                self.say(f"metrics not served: {e}", "red")
            else:
                self.say(f"metrics on http://{self.metrics_host}:{port}/metrics", "dim")
        self.say(f"node {self.node.id} listening on {self.node.address}", "green")
        self.say(HELP, "dim")
        self.refresh_status()
        self.set_interval(0.5, self.refresh_status)
        self.consume_messages()
        self.consume_events()
        if self.seeds:
            self.join()
        else:
            self.joined.set()
            self.say("bootstrap node: waiting for others to join", "yellow")
        self.query_one(Input).focus()

    # ------------------------------------------------------------------ workers
    @work(exclusive=False, group="node")
    async def join(self) -> None:
        """Join through the seeds, retrying while none answers (it may start later)."""
        assert self.node is not None
        seeds = ", ".join(self.seeds)
        self.say(f"joining via {seeds} ...", "yellow")
        while self.node.running:
            try:
                await self.node.join(list(self.seeds))
            except JoinError:
                self.say(f"no answer from {seeds}; is the bootstrap node running? retrying", "red")
                await asyncio.sleep(1.0)
                continue
            self.joined.set()
            self.say(f"joined: active view {', '.join(self.node.active_view)}", "green")
            return

    @work(exclusive=False, group="node")
    async def consume_messages(self) -> None:
        """Show every delivery in the log."""
        assert self.node is not None
        async for msg in self.node.messages():
            if isinstance(msg, Lagged):
                self.say(f"(the log fell behind: {msg.dropped} messages not shown)", "red")
                continue
            text = msg.payload.decode("utf-8", "replace")
            hops = f"{msg.hops} hop" + ("" if msg.hops == 1 else "s")
            who = self.name_of(msg.sender)
            self.say(f"{time.strftime('%H:%M:%S')} {who}: {text}  [{hops}]", "bold")
            self.refresh_status(soon=True)

    @work(exclusive=False, group="node")
    async def consume_events(self) -> None:
        """Show neighbours coming and going, and messages lost for good."""
        assert self.node is not None
        async for ev in self.node.events():
            if isinstance(ev, MemberUp):
                self.say(f"member up: {self._member_text(ev.member)}", "green")
            elif isinstance(ev, MemberDown):
                self.say(f"member down ({ev.reason}): {self._member_text(ev.member)}", "red")
            elif isinstance(ev, NeighborUp):
                self.say(f"neighbour up: {ev.peer}", "cyan")
            elif isinstance(ev, NeighborDown):
                self.say(f"neighbour down: {ev.peer} ({ev.reason})", "magenta")
            elif isinstance(ev, Gap):
                who = ev.sender or ev.origin
                self.say(f"{ev.count} messages of {who} lost for good (stored nowhere)", "red")
            self.refresh_status(soon=True)

    # ------------------------------------------------------------------ input
    async def on_input_submitted(self, event: Input.Submitted) -> None:
        """A line typed in the prompt: a command or a message to broadcast."""
        line = event.value.strip()
        event.input.value = ""
        if line:
            await self.handle_line(line)

    async def handle_line(self, line: str) -> None:
        """Run a ``/command`` or broadcast ``line``."""
        node = self.node
        if line.startswith("/"):
            cmd = line.split()[0].lower()
            if cmd == "/help":
                self.say(HELP)
            elif cmd == "/status":
                self.say(self.status_text())
            elif cmd == "/nodes":
                self.say(self.nodes_text())
            elif cmd == "/members":
                self.say(self.members_text())
            elif cmd in ("/quit", "/exit"):
                # in a worker: this input handler returns first, then the app closes
                self.run_worker(self.action_quit(), group="quit")
            else:
                self.say(f"unknown command {cmd}; /help lists them", "red")
            return
        if node is None or not node.running:
            self.say("the node is not running", "red")
            return
        if not node.active_view:
            self.say("no neighbour yet: the message reaches nobody for now", "yellow")
        try:
            mid = await node.broadcast(line.encode())
        except GossipError as e:
            self.say(f"broadcast refused: {e}", "red")
            return
        self.sent += 1
        self.say(f"{time.strftime('%H:%M:%S')} you: {line}  [id {mid.hex()[-8:]}]", "blue")

    # ------------------------------------------------------------------ display
    def say(self, text: str, style: str = "") -> None:
        """Append ``text`` to the message log."""
        self.lines.append(text)
        del self.lines[:-5000]
        with contextlib.suppress(Exception):  # the log is gone while the app closes
            self.query_one("#log", RichLog).write(Text(text, style=style))

    def status_text(self) -> str:
        """The figures of ``/status`` as plain text."""
        node = self.node
        if node is None:
            return "status: node not started"
        s = node.stats()
        return (
            f"status of {node.id}\n"
            f"  address {node.address}  active {len(node.active_view)}"
            f"/{self.config.active_view_size}  passive {len(node.passive_view)}"
            f"/{self.config.passive_view_size}\n"
            f"  received {s.delivered}  missing {s.missing}  recovered {s.recovered}"
            f"  duplicates {s.dups}  sent {self.sent}"
        )

    def nodes_text(self) -> str:
        """The views of ``/nodes`` as plain text."""
        node = self.node
        active = node.active_view if node else ()
        passive = node.passive_view if node else ()
        out = ["active view (open links):"]
        out += [f"  {p}" for p in active] or ["  (none)"]
        out.append("passive view (backups):")
        out += [f"  {p}" for p in passive] or ["  (none)"]
        return "\n".join(out)

    def name_of(self, node_id: str | None) -> str:
        """The name a sender gave itself (its member metadata), else its node id."""
        node = self.node
        member = node.members().get(node_id or "") if node is not None else None
        if member is not None:
            return member.meta.get("name", member.id)
        return node_id or "?"  # a message that overtook its sender's member record

    @staticmethod
    def _member_text(m: Member) -> str:
        meta = " ".join(f"{k}={v}" for k, v in sorted(m.meta.items()))
        return f"{m.id} at {m.address}" + (f"  {meta}" if meta else "")

    def members_text(self) -> str:
        """The member list of ``/members`` as plain text."""
        node = self.node
        members = sorted(node.members().values(), key=lambda m: m.id) if node else []
        out = [f"members ({len(members)}):"]
        out += [f"  {self._member_text(m)}" for m in members] or ["  (none)"]
        return "\n".join(out)

    def refresh_status(self, soon: bool = False) -> None:
        """Redraw the status panel from the node's figures.

        ``soon``: a change just happened; redraw unless that was done in the last 0.1 s
        (a burst of deliveries redraws a few times, not once per message).
        """
        node = self.node
        if node is None:
            return
        now = time.monotonic()
        if soon and now - self._drawn < 0.1:
            return
        self._drawn = now
        s = node.stats()
        t = Table.grid(padding=(0, 1))
        t.add_column(style="bold")
        t.add_column()
        t.add_row("node", node.id)
        t.add_row("address", node.address)
        state = "running" if node.running else "closed"
        if node.running and not self.joined.is_set():
            state = "joining ..."
        t.add_row("state", state)
        t.add_row("received", str(s.delivered))
        t.add_row("missing", str(s.missing))
        t.add_row("recovered", str(s.recovered))
        t.add_row("duplicates", str(s.dups))
        t.add_row("sent", str(self.sent))
        t.add_row("members", str(len(node.members())))
        t.add_row(f"active {len(node.active_view)}/{self.config.active_view_size}", "")
        for p in node.active_view:
            t.add_row("", Text(p, style="green"))
        t.add_row(f"passive {len(node.passive_view)}/{self.config.passive_view_size}", "")
        for p in node.passive_view[:12]:
            t.add_row("", Text(p, style="dim"))
        if len(node.passive_view) > 12:
            t.add_row("", f"... {len(node.passive_view) - 12} more")
        with contextlib.suppress(Exception):
            self.query_one("#status", Static).update(t)

    def on_unmount(self) -> None:
        """Stop routing library logs here."""
        logging.getLogger("gossipfast").removeHandler(self._log_handler)

    # ------------------------------------------------------------------ actions
    def action_clear_log(self) -> None:
        """Clear the message log (Ctrl+L)."""
        self.query_one("#log", RichLog).clear()

    async def action_quit(self) -> None:
        """Leave the cluster (neighbours are told), then exit."""
        if self._quitting:
            return
        self._quitting = True
        self.say("leaving ...", "yellow")
        if self.node is not None:
            await self.node.leave()
        self.exit(return_code=0)


__all__ = ["HELP", "DemoApp"]
