"""A local cluster of ``gossipfast run`` child processes.

One helper for every place that starts nodes as processes: the CLI's ``cluster``, the
soak run (``bench/soak.py``) and the multi-process tests. :class:`NodeProc` starts one
child, reads its stdout and stderr on threads and keeps its ready line (the address it
listens on) and its latest stats line; :func:`start_nodes` starts a seed, waits for its
ready line, starts the others joining it and waits for theirs, all against one deadline,
and stops every child it started when anything fails; :func:`stop_all` stops them by
process id (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from .errors import GossipError

#: Prefix of the line ``gossipfast run`` writes to stderr once it listens:
#: ``GOSSIPFAST_READY {"address": ..., "origin": ..., "id": ...}``.
READY_PREFIX = "GOSSIPFAST_READY "
#: Prefix of the periodic stats lines ``run --stats-interval`` writes to stderr.
STATS_PREFIX = "GOSSIPFAST_STATS "

P = TypeVar("P", bound="NodeProc")


class ProcError(GossipError):
    """A child process exited, or did not write its ready line in time."""


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct free TCP ports on ``host`` (bound together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_for(pred: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``pred`` until it is true or ``timeout`` seconds passed; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())


def run_args(
    listen: str,
    seeds: Sequence[str] = (),
    *,
    options: Sequence[str] = (),
    settings: Sequence[str] = (),
    extra: Sequence[str] = (),
    prefix: Sequence[str] = (),
) -> list[str]:
    """The command line of one ``python -m gossipfast run`` child.

    ``settings`` are ``--set FIELD=VALUE`` items; ``extra`` comes last (a ``--set`` there
    overrides ``settings``); ``prefix`` runs it under another command (``ip netns exec``).
    """
    cmd = [*prefix, sys.executable, "-m", "gossipfast", "run", "--listen", listen]
    cmd += list(options)
    for s in seeds:
        cmd += ["--join", s]
    for s in settings:
        cmd += ["--set", s]
    return cmd + list(extra)


class NodeProc:
    """One ``gossipfast run`` child: lines to its stdin, its output read on threads.

    Subclasses override :meth:`on_stdout` (one delivery per line) and :meth:`on_stderr`
    (every stderr line but the ready and stats lines, which this class keeps), both
    called on the reader threads.
    """

    def __init__(
        self,
        listen: str,
        seeds: Sequence[str] = (),
        *,
        options: Sequence[str] = (),
        settings: Sequence[str] = (),
        extra: Sequence[str] = (),
        prefix: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        #: The address it listens on: ``listen`` until the ready line gives the real one.
        self.address = listen
        self.origin: str | None = None
        #: Its node id (``Node.id``), from the ready line.
        self.node_id: str | None = None
        #: The latest ``--stats-interval`` line (empty before the first).
        self.stats: dict[str, Any] = {}
        self.stats_lines = 0
        self.errors: list[str] = []
        self._tail: collections.deque[str] = collections.deque(maxlen=20)
        self._ready = threading.Event()
        self._settled = threading.Event()  # ready line seen, or stderr closed
        cmd = run_args(
            listen, seeds, options=options, settings=settings, extra=extra, prefix=prefix
        )
        self.p = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            bufsize=1,
            env=None if env is None else dict(env),
        )
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.p.pid

    def _read_out(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.on_stdout(line)

    def _read_err(self) -> None:
        assert self.p.stderr is not None
        try:
            for line in self.p.stderr:
                if line.startswith(READY_PREFIX):
                    info = json.loads(line[len(READY_PREFIX) :])
                    self.address = str(info["address"])
                    self.origin = info.get("origin")
                    self.node_id = info.get("id")
                    self._ready.set()
                    self._settled.set()
                elif line.startswith(STATS_PREFIX):
                    try:
                        self.stats = json.loads(line[len(STATS_PREFIX) :])
                    except ValueError:
                        continue
                    self.stats_lines += 1
                else:
                    self._tail.append(line.rstrip())
                    self.on_stderr(line)
        finally:
            self._settled.set()

    def on_stdout(self, line: str) -> None:
        """One stdout line (a delivery as JSON); nothing by default."""

    def on_stderr(self, line: str) -> None:
        """One stderr line (a log line); keeps errors in :attr:`errors`."""
        if "Traceback" in line or "ERROR" in line:
            self.errors.append(line)

    def wait_ready(self, timeout: float) -> str:
        """Wait for the ready line; the address. :class:`ProcError` if it exits first or
        ``timeout`` seconds pass."""
        self._settled.wait(max(0.0, timeout))
        if self._ready.is_set():
            return self.address
        tail = " | ".join(self._tail) or "no output"
        if not self._settled.is_set():
            raise ProcError(f"node {self.address} not ready within {timeout:g} s: {tail}")
        try:
            code = self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        raise ProcError(f"node {self.address} exited (code {code}) before it was ready: {tail}")

    def wait_stats(self, timeout: float, after: int | None = None) -> bool:
        """Wait for a stats line newer than the ``after``-th (default: the latest now)."""
        seen = self.stats_lines if after is None else after
        return wait_for(lambda: self.stats_lines > seen, timeout)

    def send(self, text: str) -> None:
        """Broadcast ``text`` (one stdin line; several when it holds newlines)."""
        assert self.p.stdin is not None
        self.p.stdin.write(text if text.endswith("\n") else text + "\n")
        self.p.stdin.flush()

    def alive(self) -> bool:
        """True while the process runs."""
        return self.p.poll() is None

    def kill9(self) -> None:
        """Crash it: SIGKILL, no goodbyes."""
        if self.alive():
            os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait(timeout=10)

    def terminate(self) -> None:
        """Ask it to leave (SIGTERM) without waiting."""
        if self.alive():
            try:
                self.p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 10.0) -> None:
        """Leave gracefully (SIGTERM); SIGKILL if it does not exit within ``timeout``."""
        stop_all([self], timeout)


def stop_all(procs: Iterable[NodeProc], timeout: float = 10.0) -> None:
    """SIGTERM every one, then wait for each; SIGKILL those still running at the deadline."""
    procs = list(procs)
    for p in procs:
        p.terminate()
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.p.kill()
            p.p.wait()
        if p.p.stdin is not None:
            try:
                p.p.stdin.close()
            except OSError:
                pass  # a broken pipe: it is gone already


def start_nodes(
    n: int,
    spawn: Callable[[int, str, list[str]], P],
    *,
    host: str = "127.0.0.1",
    listen: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> list[P]:
    """Start ``n`` nodes: node 0, then, once it is ready, the others joining it.

    ``spawn(index, listen, seeds)`` starts one :class:`NodeProc`. Each listens on
    ``listen[index]`` when given, else on ``host:0`` (its ready line tells the port).
    Returns once every node wrote its ready line, all within ``timeout`` seconds;
    raises :class:`ProcError` otherwise, after stopping every node it started.
    """
    addrs = list(listen) if listen is not None else [f"{host}:0"] * n
    deadline = time.monotonic() + timeout
    procs: list[P] = []
    try:
        procs.append(spawn(0, addrs[0], []))
        seed = procs[0].wait_ready(deadline - time.monotonic())
        procs += [spawn(i, addrs[i], [seed]) for i in range(1, n)]
        for p in procs[1:]:
            p.wait_ready(deadline - time.monotonic())
    except BaseException:
        stop_all(procs)
        raise
    return procs


__all__ = [
    "READY_PREFIX",
    "STATS_PREFIX",
    "NodeProc",
    "ProcError",
    "free_ports",
    "run_args",
    "start_nodes",
    "stop_all",
    "wait_for",
]
