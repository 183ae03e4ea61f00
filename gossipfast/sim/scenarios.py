"""Scenarios on the simulator: build an overlay, broadcast, crash, partition, churn.

Each returns a plain dict of figures; :func:`run_default` is the ``gossipfast sim`` run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from .. import _hot
from .._members import member_key as _member_key
from ..config import Config
from .core import BroadcastRecord, Simulator
from .graph import graph_metrics

__all__ = [
    "broadcast_rounds",
    "build_overlay",
    "churn_scenario",
    "crash_scenario",
    "members_scenario",
    "partition_scenario",
    "run_default",
    "summarize",
]


def build_overlay(
    sim: Simulator, n: int, *, join_rate: float = 500.0, settle: float = 20.0
) -> dict[str, Any]:
    """Add ``n`` nodes; each joins through a random earlier node, ``join_rate`` per second.

    Then run ``settle`` more seconds. Returns the graph figures of the overlay.
    """
    start = len(sim.engines)
    t0 = sim.now
    first = sim.add_node()
    if start > 0:
        sim.join(first, [sim.rng.choice(sim.live())])
    spacing = 1.0 / join_rate
    for k in range(1, n):
        sim.run_until(t0 + k * spacing)
        i = sim.add_node()
        while True:
            s = sim.rng.randrange(i)
            if sim.alive[s]:
                break
        sim.join(i, [s])
    sim.run_for(settle)
    out = graph_metrics(sim.active_graph())
    out["build_time"] = sim.now - t0
    return out


def broadcast_rounds(
    sim: Simulator,
    rounds: int,
    *,
    mode: str = "random",
    interval: float = 1.0,
    burst: int | None = None,
    drain: float = 5.0,
    tag: str | None = None,
) -> list[dict[str, Any]]:
    """``rounds`` rounds of broadcasts, ``interval`` apart, then ``drain`` seconds.

    ``mode``: "single" (one fixed sender, chosen at random), "random" (a random live
    sender each round) or "burst" (``burst`` random live senders at the same instant,
    every live node by default). Returns one figures dict per broadcast, in send order.
    """
    if mode not in ("single", "random", "burst"):
        raise ValueError(f"unknown mode {mode!r}")
    tag = tag or mode
    live = sim.live()
    fixed = sim.rng.choice(live)
    recs: list[BroadcastRecord] = []
    for r in range(rounds):
        live = [i for i in live if sim.alive[i]]
        if mode == "single":
            senders = [fixed] if sim.alive[fixed] else [sim.rng.choice(live)]
        elif mode == "random":
            senders = [sim.rng.choice(live)]
        else:
            k = len(live) if burst is None else min(burst, len(live))
            senders = sorted(sim.rng.sample(live, k))
        for s in senders:
            key = sim.broadcast(s, b"r%d" % r, tag=f"{tag}:{r}")
            recs.append(sim.bcasts[key])
        sim.run_for(interval)
    sim.run_for(drain)
    return [sim.broadcast_figures(rec) for rec in recs]


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def summarize(figs: Sequence[dict[str, Any]], skip_first: int = 0) -> dict[str, Any]:
    """Mean reliability / RMR / LDH and totals over per-broadcast figures."""
    use = list(figs[skip_first:]) or list(figs)
    return {
        "broadcasts": len(figs),
        "reliability": _mean([f["reliability"] for f in use]),
        "reliability_min": min((f["reliability"] for f in use), default=1.0),
        "reliability_window": _mean([f["reliability_window"] for f in use]),
        "rmr": _mean([f["rmr"] for f in use]),
        "rmr_max": max((f["rmr"] for f in use), default=0.0),
        "ldh": _mean([f["ldh"] for f in use]),
        "ldh_max": max((f["ldh"] for f in use), default=0),
        "lat_p50": _mean([f["lat_p50"] for f in use]),
        "lat_p99": _mean([f["lat_p99"] for f in use]),
        "lat_max": max((f["lat_max"] for f in use), default=0.0),
        "missed": sum(f["missed"] for f in figs),
        "ihave": _mean([f["ihave"] for f in use]),
        "graft": _mean([f["graft"] for f in use]),
        "dup_deliveries": sum(f["dup_deliveries"] for f in figs),
    }


def crash_scenario(
    sim: Simulator,
    fraction: float,
    *,
    heal_time: float = 60.0,
    probe_interval: float = 1.0,
    final_broadcasts: int = 10,
    drain: float = 5.0,
    window: float = 2.0,
) -> dict[str, Any]:
    """Crash ``fraction`` of the live nodes at once, then broadcast from random survivors.

    A probe broadcast goes out right after the crash and then every ``probe_interval``
    seconds for ``heal_time`` seconds; then ``final_broadcasts`` more (the "healed"
    figures). ``first_reliability`` is the first probe's share of survivors reached
    within ``window`` seconds (``first_reliability_eventual``: by the end of the run);
    ``healing_time`` is the send time (after the crash) of the first probe from which
    on every probe reached every survivor within ``window`` (None: never).
    """
    t_crash = sim.now
    victims = sim.crash_fraction(fraction)
    probes: list[BroadcastRecord] = []
    t = t_crash
    while t < t_crash + heal_time:
        live = sim.live()
        key = sim.broadcast(sim.rng.choice(live), b"probe", tag="probe")
        probes.append(sim.bcasts[key])
        t += probe_interval
        sim.run_until(t)
    final = broadcast_rounds(sim, final_broadcasts, mode="random", interval=0.5, drain=drain)
    pf = [sim.broadcast_figures(r, window) for r in probes]
    heal_at = None
    for k in range(len(pf) - 1, -1, -1):
        if pf[k]["reliability_window"] < 1.0:
            break
        heal_at = pf[k]["t"] - t_crash
    g = graph_metrics(sim.active_graph())
    fin = summarize(final)
    return {
        "fraction": fraction,
        "crashed": len(victims),
        "survivors": len(sim.live()),
        "first_reliability": pf[0]["reliability_window"] if pf else None,
        "first_reliability_eventual": pf[0]["reliability"] if pf else None,
        "probe_reliability_min": min(f["reliability_window"] for f in pf) if pf else None,
        "healing_time": heal_at,
        "healed_reliability": fin["reliability"],
        "healed_reliability_window": fin["reliability_window"],
        "healed_reliability_min": fin["reliability_min"],
        "healed_rmr": fin["rmr"],
        "healed_ldh": fin["ldh"],
        "connected": g["connected"],
        "components": g["components"],
        "largest_component": g["largest_component"],
        "degree_mean": g["degree_mean"],
        "probes": pf,
        "final": final,
    }


def partition_scenario(
    sim: Simulator,
    duration: float,
    *,
    shares: Sequence[float] = (0.5, 0.5),
    per_side: int = 5,
    merge_time: float = 60.0,
    drain: float = 30.0,
) -> dict[str, Any]:
    """Split the live nodes into random groups for ``duration`` s, then heal.

    ``shares`` gives each group's share of the live nodes: ``(0.5, 0.5)`` halves,
    ``(0.1, 0.9)`` an asymmetric split, three shares a three-way split. During the split
    each group sends ``per_side`` broadcasts (spread over the split). After healing,
    the overlay is checked every 0.1 simulated s for ``merge_time`` seconds to be one
    connected component (``merge_time`` in the result: seconds from the heal; None:
    not within the window); then ``drain`` more seconds, and every live node must have
    delivered every message of every group (``all_delivered``; messages older than
    ``store_max_age`` at the heal cannot be fetched any more). ``probes_per_node_s`` and
    ``control_per_node_s`` are the failed-peer probes and all membership messages
    (everything but Gossip, IHave, Graft, Prune, Digest and Want) sent per live node per
    second of the split.
    """
    groups = _random_groups(sim, shares)
    t_split = sim.now
    probes0 = _probes(sim)
    control0 = _control_messages(sim.msg_counts)
    sim.partition(groups)
    recs: list[BroadcastRecord] = []
    step = duration / (per_side + 1)
    for k in range(per_side):
        sim.run_until(t_split + (k + 1) * step)
        for side in groups:
            cand = [i for i in side if sim.alive[i]]
            if cand:
                key = sim.broadcast(sim.rng.choice(cand), b"split", tag="split")
                recs.append(sim.bcasts[key])
    sim.run_until(t_split + duration)
    g_split = graph_metrics(sim.active_graph())
    per_node_s = 1.0 / (max(1, len(sim.live())) * duration) if duration > 0 else 0.0
    probes = (_probes(sim) - probes0) * per_node_s
    control = (_control_messages(sim.msg_counts) - control0) * per_node_s
    sim.heal()
    t_heal = sim.now
    merged_at = _time_to_merge(sim, merge_time)
    sim.run_until(t_heal + merge_time)
    g = graph_metrics(sim.active_graph())
    sim.run_for(drain)
    figs = [sim.broadcast_figures(r) for r in recs]
    after = broadcast_rounds(sim, 5, mode="random", interval=0.5, drain=5.0)
    return {
        "duration": duration,
        "groups": [len(x) for x in groups],
        "components_during": g_split["components"],
        "merged": merged_at is not None and g["connected"],
        "merge_time": merged_at,
        "components": g["components"],
        "probes_per_node_s": probes,
        "control_per_node_s": control,
        "split_messages": len(figs),
        "all_delivered": all(f["missed"] == 0 for f in figs),
        "split_missed": sum(f["missed"] for f in figs),
        "split_reliability_min": min((f["reliability"] for f in figs), default=1.0),
        "after_reliability": summarize(after)["reliability"],
        "split": figs,
        "after": after,
    }


def _random_groups(sim: Simulator, shares: Sequence[float]) -> list[list[int]]:
    """The live nodes shuffled and cut into groups of the given shares (empty ones dropped)."""
    order = sim.live()
    sim.rng.shuffle(order)
    total = sum(shares)
    groups: list[list[int]] = []
    start = 0
    for k, share in enumerate(shares):
        end = len(order) if k == len(shares) - 1 else start + round(share / total * len(order))
        groups.append(sorted(order[start:end]))
        start = end
    return [g for g in groups if g]


def _time_to_merge(sim: Simulator, limit: float) -> float | None:
    """Seconds from now until the overlay is one component (looked at every 0.1 s);
    None if not within ``limit``."""
    t0 = sim.now
    k = 0
    while k < limit * 10:
        k += 1
        sim.run_until(t0 + k / 10)
        if graph_metrics(sim.active_graph())["connected"]:
            return k / 10
    return None


#: Message kinds of the broadcast layer (the rest is membership control traffic).
_BROADCAST_KINDS = frozenset(("Gossip", "IHave", "Graft", "Prune", "Digest", "Want"))


def _probes(sim: Simulator) -> int:
    # failed-peer probes of every engine (an engine without membership state has none)
    return sum(getattr(getattr(e, "hv", None), "probes", 0) for e in sim.engines)


def _control_messages(counts: dict[str, int]) -> int:
    return sum(n for k, n in counts.items() if k not in _BROADCAST_KINDS)


def churn_scenario(
    sim: Simulator,
    duration: float,
    *,
    rate: float = 5.0,
    broadcast_interval: float = 1.0,
    drain: float = 10.0,
) -> dict[str, Any]:
    """Joins and graceful leaves for ``duration`` s: ``rate`` of each per second.

    A random live node broadcasts every ``broadcast_interval`` seconds. Returns the
    broadcast summary (reliability over the nodes live at the end) and graph figures.
    """
    t0 = sim.now
    recs: list[BroadcastRecord] = []
    next_b = t0
    step = 1.0 / rate
    t = t0
    while t < t0 + duration:
        t += step
        sim.run_until(t)
        live = sim.live()
        if len(live) > 2:
            sim.leave(sim.rng.choice(live))
        live = sim.live()
        i = sim.add_node()
        sim.join(i, [sim.rng.choice(live)])
        if t >= next_b:
            live = sim.live()
            key = sim.broadcast(sim.rng.choice(live), b"churn", tag="churn")
            recs.append(sim.bcasts[key])
            next_b += broadcast_interval
    sim.run_for(drain)
    figs = [sim.broadcast_figures(r) for r in recs]
    out = summarize(figs)
    out.update(graph_metrics(sim.active_graph()))
    return out


def _members_agree(sim: Simulator) -> bool:
    """True when every live node lists exactly the live nodes, at their latest records
    (each member list keeps a hash of what it lists: one comparison per node)."""
    want = 0
    for i in sim.live():
        want ^= _member_key(sim.engines[i].members.own)
    return all(sim.engines[i].members.hash == want for i in sim.live())


def _time_to_agree(sim: Simulator, limit: float, step: float = 0.1) -> float | None:
    t0 = sim.now
    while not _members_agree(sim):
        if sim.now - t0 >= limit:
            return None
        sim.run_for(step)
    return sim.now - t0


def _member_messages(sim: Simulator) -> int:
    counts = sim.msg_counts
    return counts.get("Members", 0) + counts.get("MemberSync", 0)


def members_scenario(
    sim: Simulator, *, stable: float = 60.0, limit: float = 120.0, crash: float = 0.5
) -> dict[str, Any]:
    """The member lists' convergence on a built overlay: seconds until every live node
    lists exactly the live nodes after the build, a join, a graceful leave and a crash of
    ``crash`` of the nodes at once (None: not within ``limit``); MemberDown events and
    member messages per node per second over ``stable`` quiet seconds in between."""
    out: dict[str, Any] = {"nodes": len(sim.live())}
    out["after_build"] = _time_to_agree(sim, limit)
    downs0, msgs0, t0 = sim.member_downs, _member_messages(sim), sim.now
    sim.run_for(stable)
    n = len(sim.live())
    out["stable_member_downs"] = sim.member_downs - downs0
    out["stable_msgs_per_node_s"] = (_member_messages(sim) - msgs0) / n / (sim.now - t0)
    i = sim.add_node()
    sim.join(i, [sim.rng.choice([j for j in sim.live() if j != i])])
    out["join"] = _time_to_agree(sim, limit)
    sim.leave(sim.rng.choice(sim.live()))
    out["leave"] = _time_to_agree(sim, limit)
    downs0 = sim.member_downs
    crashed = sim.crash_fraction(crash)
    out["crashed"] = len(crashed)
    out["crash"] = _time_to_agree(sim, limit)
    survivors = len(sim.live())
    # every survivor reports each crashed node once (a false down would add more)
    out["crash_member_downs_per_survivor"] = (sim.member_downs - downs0) / survivors
    return out


def run_default(
    nodes: int = 1000,
    *,
    seed: int = 1,
    broadcasts: int = 10,
    latency: tuple[float, float] = (0.010, 0.050),
    loss: float = 0.0,
    fail: float = 0.0,
    partition: float = 0.0,
    split: Sequence[float] = (0.5, 0.5),
    config: Config | None = None,
    join_rate: float = 500.0,
    settle: float = 20.0,
) -> dict[str, Any]:
    """The ``gossipfast sim`` run: build, broadcast, then optional crash / partition.

    Returns the summary dict that ``--json`` prints (plus per-phase detail).
    """
    w0 = time.perf_counter()
    sim = Simulator(config, seed=seed, latency=latency, loss=loss)
    overlay = build_overlay(sim, nodes, join_rate=join_rate, settle=settle)
    figs = broadcast_rounds(sim, broadcasts, mode="random", interval=0.5, drain=5.0)
    result: dict[str, Any] = {
        "nodes": nodes,
        "seed": seed,
        "compiled": _hot.all_compiled(),
        "overlay": overlay,
    }
    all_figs = list(figs)
    if fail > 0:
        crash = crash_scenario(sim, fail, heal_time=30.0)
        all_figs += crash["final"]
        result["crash"] = {k: v for k, v in crash.items() if k not in ("probes", "final")}
    if partition > 0:
        part = partition_scenario(sim, partition, shares=split)
        all_figs += part["split"] + part["after"]
        result["partition"] = {k: v for k, v in part.items() if k not in ("split", "after")}
    summ = summarize(all_figs)
    steady = summarize(figs)
    for k in ("lat_p50", "lat_p99", "lat_max"):
        summ[k] = steady[k]  # latency of the steady-state rounds, not of partitioned ones
    g = graph_metrics(sim.active_graph())
    result.update(summ)
    result.update(
        {
            "connected": g["connected"],
            "components": g["components"],
            "degree_min": g["degree_min"],
            "degree_mean": g["degree_mean"],
            "degree_max": g["degree_max"],
            "clustering": g["clustering"],
            "asymmetric": g["asymmetric"],
            "live": g["live"],
            "view_mismatch": sim.view_consistency(),
            "unknown_deliveries": sim.unknown_deliveries,
            "messages": sim.msg_counts,
            "sim_time": sim.now,
            "events": sim.event_count,
            "events_per_s": sim.event_count / sim.wall if sim.wall > 0 else 0.0,
            "seconds": time.perf_counter() - w0,
        }
    )
    result["_figs"] = all_figs
    return result
