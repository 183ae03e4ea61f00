"""The seeds of ``Node.join``: checked, ``dns:`` names resolved (and resolved again while
the node is isolated), the node's own address left out, every seed given remembered."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from ._seeds import DnsRefresher, DnsSeed, parse_seed, resolve_all
from .errors import SeedError

log = logging.getLogger("gossipfast")


class JoinSeeds:
    """The seeds one node was given and the task that re-resolves its ``dns:`` names."""

    def __init__(
        self,
        config: Any,
        *,
        is_self: Callable[[str], bool],
        isolated: Callable[[], bool],
        join: Callable[[list[str]], None],
    ) -> None:
        """``is_self(address)``: the node's own address; ``isolated()``: no neighbour;
        ``join(addresses)``: contact fresh DNS records (while the node runs)."""
        self.config = config
        self.is_self = is_self
        self.isolated = isolated
        self.join = join
        self.given: list[str] = []  # every seed given to join(), as given (Node.seeds)
        self.dns: DnsRefresher | None = None
        self.task: asyncio.Task[None] | None = None

    async def addresses(self, seeds: Iterable[str] | str) -> list[str]:
        """The addresses to contact for ``seeds``; starts re-resolving their names.

        Raises :class:`ConfigError` for a malformed seed and :class:`SeedError` when no
        address is left (no name resolved, or every seed is this node).
        """
        if isinstance(seeds, str):
            seeds = [seeds]  # one seed given as a plain string
        parsed = [parse_seed(s) for s in seeds]
        names = [s for s in parsed if isinstance(s, DnsSeed)]
        given = [str(s) for s in parsed]
        found = [s for s in parsed if isinstance(s, str) and not self.is_self(s)]
        problems: list[str] = []
        if names:
            resolved, problems = await resolve_all(names, self.config.join_timeout)
            found += [a for a in resolved if a not in found and not self.is_self(a)]
            if self.dns is None:
                self.dns = DnsRefresher(
                    isolated=self.isolated,
                    join=self.join,
                    is_self=self.is_self,
                    interval=self.config.repair_interval,
                )
            self.dns.add(names)
        for s in given:
            if s not in self.given:
                self.given.append(s)
        if not found:
            if problems:
                raise SeedError("no seed to join: " + "; ".join(problems))
            raise SeedError("no seed to join: every seed is this node: " + ", ".join(given))
        if problems:
            log.warning("joining without some seeds: %s", "; ".join(problems))
        if self.dns is not None and self.task is None:
            self.task = asyncio.ensure_future(self.dns.run())
        return found

    def stop(self) -> None:
        """Stop re-resolving the names."""
        if self.task is not None:
            self.task.cancel()
            self.task = None
