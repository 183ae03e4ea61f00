"""A ``python -m gossipfast run`` child process for multi-process tests.

Shared by the CLI and chaos tests: it builds the command line, reads stdout (one JSON
line per delivery) and stderr on threads, and hands each line to :meth:`on_delivery`
and :meth:`on_stderr`, which subclasses override to keep what they check.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

#: Short timers so that joins, failures and repairs happen within a test's patience.
FAST = [
    "heartbeat_interval=0.2",
    "heartbeat_timeout=1.0",
    "connect_timeout=1.0",
    "join_timeout=2.0",
    "neighbor_timeout=0.5",
    "repair_interval=0.3",
    "shuffle_interval=1.0",
]


def wait_for(pred: Callable[[], object], timeout: float) -> bool:
    """Poll ``pred`` until it is true or ``timeout`` seconds passed; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return bool(pred())


class RunProc:
    """One ``gossipfast run`` child: lines to its stdin, its output read on threads."""

    def __init__(
        self,
        address: str,
        seeds: Sequence[str] = (),
        *,
        options: Sequence[str] = (),
        settings: Sequence[str] = FAST,
        extra: Sequence[str] = (),
        prefix: Sequence[str] = (),
    ) -> None:
        self.address = address
        cmd = [*prefix, sys.executable, "-m", "gossipfast", "run", "--listen", address]
        cmd += list(options)
        for s in seeds:
            cmd += ["--join", s]
        for s in settings:
            cmd += ["--set", s]
        cmd += list(extra)  # last: a --set here overrides ``settings``
        self.p = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.errors: list[str] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read_out(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            d = json.loads(line)
            with self.lock:
                self.on_delivery(d)

    def _read_err(self) -> None:
        assert self.p.stderr is not None
        for line in self.p.stderr:
            self.on_stderr(line)

    def on_delivery(self, d: dict[str, Any]) -> None:
        """One delivery (``{"id", "origin", "payload", "hops"}``), under ``self.lock``."""

    def on_stderr(self, line: str) -> None:
        """One line of the child's stderr (logs and stats)."""
        if "Traceback" in line or "ERROR" in line:
            self.errors.append(line)

    def send(self, text: str) -> None:
        """Broadcast ``text`` (one stdin line)."""
        assert self.p.stdin is not None
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()

    def alive(self) -> bool:
        """True while the process runs."""
        return self.p.poll() is None

    def kill9(self) -> None:
        """Crash it: SIGKILL, no goodbyes."""
        os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait(timeout=10)

    def stop(self) -> None:
        """Leave gracefully (SIGTERM); kill it if it does not exit within 10 s."""
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
