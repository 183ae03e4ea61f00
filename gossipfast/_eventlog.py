"""How a node logs the engine's events: membership churn rate-limited per kind, and the
``NeighborDown`` reasons counted for ``stats()`` (``neighbor_down_<reason>``)."""

from __future__ import annotations

import logging
from typing import Any

from .types import Event, Gap, NeighborDown, NeighborUp

log = logging.getLogger("gossipfast")


class EventLog:
    """The log records and down counts of one node's events."""

    def __init__(self) -> None:
        """Nothing logged or counted yet."""
        self.down_reasons: dict[str, int] = {}
        # key -> (window start, records shown in it, records demoted to DEBUG since)
        self.window: dict[str, tuple[float, int, int]] = {}

    def note(self, node_id: str | None, ev: Event, now: float) -> None:
        """Count and log one event of node ``node_id`` (``now``: ``time.monotonic()``)."""
        if type(ev) is NeighborDown:
            self.down_reasons[ev.reason] = self.down_reasons.get(ev.reason, 0) + 1
            # failed/slow are worth a warning; the rest is ordinary churn
            level = logging.WARNING if ev.reason in ("failed", "slow") else logging.INFO
            self.limited(
                "down:" + ev.reason,
                level,
                now,
                "node %s: neighbour %s down (%s)",
                node_id,
                ev.peer,
                ev.reason,
            )
        elif type(ev) is NeighborUp:
            self.limited("up", logging.INFO, now, "node %s: neighbour %s up", node_id, ev.peer)
        elif type(ev) is Gap:
            self.limited(
                "gap",
                logging.WARNING,
                now,
                "node %s: %d messages of origin %s (sender %s) lost for good",
                node_id,
                ev.count,
                ev.origin,
                ev.sender or "unknown",
            )

    def limited(self, key: str, level: int, now: float, msg: str, *args: Any) -> None:
        """Log membership changes without letting churn flood the log.

        Per key: warnings once per minute, infos up to 10 a minute; the rest go to DEBUG
        and the next record that gets through says how many were demoted. (A peer that
        joins and leaves in a loop must not fill the operator's log.)
        """
        limit = 1 if level >= logging.WARNING else 10
        start, shown, demoted = self.window.get(key, (now, 0, 0))
        if now - start >= 60.0:
            start, shown = now, 0
        if shown < limit:
            if demoted:
                log.log(level, msg + " (%d similar at DEBUG before)", *args, demoted)
                demoted = 0
            else:
                log.log(level, msg, *args)
            shown += 1
        else:
            log.debug(msg, *args)
            demoted += 1
        self.window[key] = (start, shown, demoted)
