"""A ``python -m gossipfast run`` child process for multi-process tests.

Shared by the CLI, chaos and re-merge tests: :class:`RunProc` is the library's
:class:`gossipfast._procs.NodeProc` (ready line, stats line, stop by pid) that hands
each delivery, parsed from its JSON line, to :meth:`on_delivery` under :attr:`lock`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from gossipfast._procs import NodeProc, start_nodes, stop_all, wait_for

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


class RunProc(NodeProc):
    """One ``gossipfast run`` child: lines to its stdin, its deliveries parsed."""

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
        self.lock = threading.Lock()
        super().__init__(
            address, seeds, options=options, settings=settings, extra=extra, prefix=prefix
        )

    def on_stdout(self, line: str) -> None:
        d = json.loads(line)
        with self.lock:
            self.on_delivery(d)

    def on_delivery(self, d: dict[str, Any]) -> None:
        """One delivery (``{"id", "origin", "payload", "hops"}``), under ``self.lock``."""


__all__ = ["FAST", "RunProc", "start_nodes", "stop_all", "wait_for"]
