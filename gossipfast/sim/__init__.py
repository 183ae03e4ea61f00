"""Deterministic simulator: many engines, one virtual clock, an in-memory network.

- :mod:`gossipfast.sim.core` (compiled with the hot modules): :class:`Simulator`, the
  event loop, and its :class:`~gossipfast.sim.core.Network`, the network model (latency,
  loss, partitions, TCP-like links and failures);
- :mod:`gossipfast.sim.scenarios`: :func:`build_overlay`, :func:`broadcast_rounds`,
  :func:`crash_scenario`, :func:`partition_scenario`, :func:`churn_scenario` and
  :func:`run_default` (the ``gossipfast sim`` run), each returning a dict of figures;
- :mod:`gossipfast.sim.figures`: what a broadcast did (reliability, RMR, LDH, latency)
  and the overlay's active views, read off the simulator's state;
- :mod:`gossipfast.sim.graph`: connectivity, degrees, clustering and hop counts of an
  active-view graph.

The ``gossipfast sim`` console command lives in ``gossipfast._cli_sim``, so importing the
simulator loads neither click nor rich.
"""

from __future__ import annotations

from typing import Any

from .core import MAX_NODES, SIM_CONFIG, BroadcastRecord, Simulator, cyclic_gc_paused
from .graph import bfs_levels, flood_ldh, graph_metrics, lowest_latency_parents, undirected
from .scenarios import (
    broadcast_rounds,
    build_overlay,
    churn_scenario,
    crash_scenario,
    members_scenario,
    partition_scenario,
    run_default,
    summarize,
)


def __getattr__(name: str) -> Any:
    # the console command, for callers that imported it from here before it moved
    if name == "sim_command":
        from .._cli_sim import sim_command

        return sim_command
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MAX_NODES",
    "SIM_CONFIG",
    "BroadcastRecord",
    "Simulator",
    "bfs_levels",
    "broadcast_rounds",
    "build_overlay",
    "churn_scenario",
    "crash_scenario",
    "cyclic_gc_paused",
    "flood_ldh",
    "graph_metrics",
    "lowest_latency_parents",
    "members_scenario",
    "partition_scenario",
    "run_default",
    "summarize",
    "undirected",
]
