"""Prometheus metrics of a node (optional: ``pip install "gossipfast[metrics]"``).

::

    from gossipfast.metrics import NodeMetrics, start_http_server

    async with gossipfast.Node("0.0.0.0:7000") as node:
        NodeMetrics(node)               # registers on prometheus_client's default registry
        start_http_server(9100)         # GET http://host:9100/metrics

The figures are read from :meth:`gossipfast.Node.stats` when Prometheus scrapes, so
they cost nothing between scrapes; the only per-delivery work is counting hops for the
``gossipfast_delivery_hops`` histogram. Every series has a ``node`` label (the node's
address), so several nodes of one process can share a registry.

Cluster-wide relative message redundancy (RMR, see the design notes) from the
counters of every node::

    sum(rate(gossipfast_payloads_received_total[1m]))
      / sum(rate(gossipfast_deliveries_total[1m])) - 1

``gossipfast_rmr`` is the same ratio over one node's lifetime.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client import start_http_server as _start_http_server
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.registry import Collector
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'gossipfast.metrics needs prometheus-client: pip install "gossipfast[metrics]"'
    ) from e

from .stats import Stats

if TYPE_CHECKING:
    from .node import Node

#: Upper bounds of the hop histogram's buckets (a delivery's hop count).
HOP_BUCKETS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30)

# Counters with a metric of their own: stats key -> (metric name, help).
_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("broadcasts", "broadcasts", "Broadcasts this node originated."),
    ("delivered", "deliveries", "Broadcasts of other nodes delivered here (each once)."),
    ("dups", "duplicates", "Payload copies received after their first delivery."),
    ("recovered", "recovered", "Missing messages pulled back (GRAFT or catch-up)."),
    ("received_gossip", "payloads_received", "Payload messages received (for RMR)."),
    ("grafts_sent", "grafts_sent", "GRAFT requests sent for missing messages."),
    ("catch_up_requested", "catch_up_requested", "Messages requested by digest catch-up."),
    ("lost", "lost_messages", "Messages lost for good (stored by no neighbour any more)."),
    ("gaps", "gaps", "Gap events: catch-up learnt that messages were lost for good."),
    ("optimizations", "tree_optimizations", "Lazy links promoted for a shorter path."),
    ("neighbor_up", "neighbor_up", "Peers that joined the active view."),
    ("shuffles", "shuffles", "SHUFFLE exchanges."),
    ("rejoins", "rejoins", "Re-joins through the seeds after isolation."),
    ("bytes_sent", "sent_bytes", "Bytes written to peers."),
    ("bytes_received", "received_bytes", "Bytes read from peers."),
    ("frames_sent", "frames_sent", "Frames written to peers."),
    ("dials", "dials", "Outgoing connection attempts."),
    ("dial_failures", "dial_failures", "Outgoing connection attempts that failed."),
    ("heartbeat_timeouts", "heartbeat_timeouts", "Links closed after heartbeat silence."),
    ("engine_errors", "engine_errors", "Exceptions caught around the engine (a bug)."),
    ("dials_limited", "dials_limited", "Dials to never-reached addresses over dial_rate."),
    ("tls_failures", "tls_failures", "TLS handshakes that failed (inbound and outbound)."),
)

# Everything a node throws away, by reason: reason label -> stats key.
_DROPS: tuple[tuple[str, str], ...] = (
    ("lagged", "lagged"),  # messages() consumer too slow
    ("slow_peer", "slow_drops"),  # a peer's send queue overflowed: peer dropped
    ("send", "send_drops"),  # frame for a link that was gone
    ("bad_frame", "bad_frames"),  # oversize or undecodable frame: link closed
    ("bad_message", "bad_messages"),  # decoded but invalid protocol message
    ("handshake_failure", "handshake_failures"),
    ("handshake_timeout", "handshake_timeouts"),
    ("version_mismatch", "version_mismatches"),
    ("cluster_mismatch", "cluster_mismatches"),
    ("connection_refused", "connections_refused"),
    ("fifo_skipped", "fifo_skipped"),
    ("hook_error", "hook_errors"),
    ("stale", "stale_drops"),  # payload older than its origin's dedup window
    ("ihave_over_share", "ihave_dropped"),  # announcer over peer_missing_max
    ("graft_withheld", "grafts_withheld"),  # announcer's peer_graft_rate spent
    ("answer_refused", "answers_refused"),  # requester over peer_answer_rate
)

# Gauges: stats key -> (metric name, help).
_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("missing", "missing", "Messages announced (IHAVE) but not received yet."),
    ("queued", "queued", "Deliveries waiting in the messages() queue."),
    ("connections", "connections", "Open TCP connections."),
    ("store_messages", "store_messages", "Payloads kept for GRAFT and catch-up."),
    ("store_bytes", "store_bytes", "Bytes of payloads kept for GRAFT and catch-up."),
    ("origins", "origins", "Origins tracked by dedup."),
    ("graveyard", "graveyard", "Failed peers being probed for partition healing."),
)


class _Nodes(Collector):
    """The one collector of a registry: every attached node's series, merged by name.

    Prometheus wants each metric family once per scrape, with one sample per ``node``
    label; registering one collector per node would repeat the families.
    """

    def __init__(self) -> None:
        self.nodes: list[NodeMetrics] = []

    def describe(self) -> Iterable[Metric]:
        """Nothing up front: the families are known at scrape time."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Every node's families, samples of one name merged into one family."""
        merged: dict[str, Metric] = {}
        for nm in list(self.nodes):
            for fam in nm.collect():
                if fam.name in merged:
                    merged[fam.name].samples.extend(fam.samples)
                else:
                    merged[fam.name] = fam
        yield from merged.values()


_collectors: dict[int, tuple[CollectorRegistry, _Nodes]] = {}
_collectors_lock = threading.Lock()


def _attach(registry: CollectorRegistry, nm: NodeMetrics) -> None:
    with _collectors_lock:
        entry = _collectors.get(id(registry))
        if entry is None or entry[0] is not registry:
            entry = _collectors[id(registry)] = (registry, _Nodes())
            registry.register(entry[1])
        entry[1].nodes.append(nm)


def _detach(registry: CollectorRegistry, nm: NodeMetrics) -> None:
    with _collectors_lock:
        entry = _collectors.get(id(registry))
        if entry is None or nm not in entry[1].nodes:
            return
        entry[1].nodes.remove(nm)
        if not entry[1].nodes:
            registry.unregister(entry[1])
            del _collectors[id(registry)]


class NodeMetrics(Collector):
    """The Prometheus figures of one node.

    Attaches to ``registry`` (the default one unless given; ``None`` skips that, for a
    caller that registers or calls :meth:`collect` itself) and adds a delivery observer
    to the node for the hop histogram. Several nodes may share a registry: their series
    differ by the ``node`` label. Create it inside the node's event loop (after
    ``start``). :meth:`close` undoes both.
    """

    def __init__(
        self,
        node: Node,
        registry: CollectorRegistry | None = REGISTRY,
        *,
        buckets: Sequence[int] = HOP_BUCKETS,
    ) -> None:
        self.node = node
        self._registry = registry
        self._bounds = tuple(sorted(int(b) for b in buckets))
        self._counts = [0] * (max(self._bounds) + 2)
        self._hops_sum = 0
        self._own = -1
        self._loop = asyncio.get_running_loop()
        self._last: tuple[Stats, list[int], int] | None = None
        node.add_delivery_observer(self._observe)
        if registry is not None:
            _attach(registry, self)

    def close(self) -> None:
        """Detach from the registry and stop observing the node."""
        self.node.remove_delivery_observer(self._observe)
        if self._registry is not None:
            _detach(self._registry, self)
            self._registry = None

    # -- delivery path: count hops (own broadcasts excluded, as in messages())
    def _observe(self, batch: list[tuple[int, int, int, bytes]]) -> None:
        own = self._own
        if own < 0:
            own = self._own = int(self.node.origin, 16)
        counts = self._counts
        top = len(counts) - 1
        total = 0
        for origin, _seq, hops, _payload in batch:
            if origin == own:
                continue
            counts[hops if hops < top else top] += 1
            total += hops
        self._hops_sum += total

    # -- scrape path (runs in the HTTP server's thread)
    def _snapshot(self) -> tuple[Stats, list[int], int]:
        return self.node.stats(), list(self._counts), self._hops_sum

    def snapshot(self, timeout: float = 2.0) -> tuple[Stats, list[int], int]:
        """``(stats, hop counts, hop sum)`` read inside the node's event loop.

        From another thread this hops into the loop (the engine is not thread-safe);
        when the loop is gone or busy past ``timeout``, the last snapshot is used.
        """
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._loop.is_closed():
            if self._last is None:  # never scraped while the node ran
                self._last = self._snapshot()
            return self._last
        if running is self._loop:
            self._last = self._snapshot()
            return self._last
        fut: concurrent.futures.Future[tuple[Stats, list[int], int]] = concurrent.futures.Future()

        def take() -> None:
            try:
                fut.set_result(self._snapshot())
            except Exception as e:  # pragma: no cover - defensive
                fut.set_exception(e)

        try:
            self._loop.call_soon_threadsafe(take)
            self._last = fut.result(timeout)
        except (RuntimeError, concurrent.futures.TimeoutError):
            if self._last is None:
                self._last = self._snapshot()
        return self._last

    def describe(self) -> Iterable[Metric]:
        """No up-front description: the metrics depend on the scrape (see collect)."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The node's metrics, read at scrape time."""
        stats, counts, hops_sum = self.snapshot()
        node = [self.node.address]
        yield from _scalar_families(stats, node)
        yield from _shape_families(stats, node)
        yield from _loss_families(stats, node)
        yield from _message_families(stats, node)
        yield _rmr_family(stats, node)
        yield _hops_family(self._bounds, counts, hops_sum, node)


def _scalar_families(stats: Stats, node: list[str]) -> Iterator[Metric]:
    """One counter per :data:`_COUNTERS` entry, one gauge per :data:`_GAUGES` entry."""
    for key, name, doc in _COUNTERS:
        c = CounterMetricFamily(f"gossipfast_{name}", doc, labels=["node"])
        c.add_metric(node, stats.get(key, 0))
        yield c
    for key, name, doc in _GAUGES:
        g = GaugeMetricFamily(f"gossipfast_{name}", doc, labels=["node"])
        g.add_metric(node, stats.get(key, 0))
        yield g


def _shape_families(stats: Stats, node: list[str]) -> Iterator[Metric]:
    """The overlay around the node: view sizes and Plumtree's eager / lazy links."""
    views = GaugeMetricFamily(
        "gossipfast_view_size", "Peers in the active / passive view.", labels=["node", "view"]
    )
    views.add_metric([*node, "active"], stats.active)
    views.add_metric([*node, "passive"], stats.passive)
    yield views
    links = GaugeMetricFamily(
        "gossipfast_tree_links", "Plumtree eager / lazy links.", labels=["node", "kind"]
    )
    links.add_metric([*node, "eager"], stats.eager)
    links.add_metric([*node, "lazy"], stats.lazy)
    yield links


def _loss_families(stats: Stats, node: list[str]) -> Iterator[Metric]:
    """What the node dropped, and the neighbours it lost, by reason."""
    drops = CounterMetricFamily(
        "gossipfast_drops",
        "Messages, frames or peers dropped, by reason.",
        labels=["node", "reason"],
    )
    for reason, key in _DROPS:
        drops.add_metric([*node, reason], stats.get(key, 0))
    yield drops

    downs = CounterMetricFamily(
        "gossipfast_neighbor_down", "Peers that left the active view, by reason.",
        labels=["node", "reason"],
    )  # fmt: skip
    for reason in ("failed", "disconnected", "replaced", "slow", "left"):
        downs.add_metric([*node, reason], stats.get("neighbor_down_" + reason, 0))
    yield downs


def _message_families(stats: Stats, node: list[str]) -> Iterator[Metric]:
    """Protocol messages sent and received, by kind (the ``sent_*`` / ``received_*``
    entries of ``stats.details``)."""
    sent = CounterMetricFamily(
        "gossipfast_messages_sent", "Protocol messages sent, by kind.", labels=["node", "kind"]
    )
    received = CounterMetricFamily(
        "gossipfast_messages_received",
        "Protocol messages received, by kind.",
        labels=["node", "kind"],
    )
    for key, value in stats.details.items():
        if key.startswith("sent_"):
            sent.add_metric([*node, key[5:]], value)
        elif key.startswith("received_"):
            received.add_metric([*node, key[9:]], value)
    yield sent
    yield received


def _rmr_family(stats: Stats, node: list[str]) -> Metric:
    """The node's relative message redundancy over its life."""
    rmr = GaugeMetricFamily(
        "gossipfast_rmr",
        "Payloads received per delivery minus 1 over this node's life (0: a perfect tree).",
        labels=["node"],
    )
    payloads = stats.get("received_gossip", 0)
    rmr.add_metric(node, payloads / stats.delivered - 1 if stats.delivered else 0.0)
    return rmr


def _hops_family(
    bounds: tuple[int, ...], counts: list[int], hops_sum: int, node: list[str]
) -> Metric:
    """The hop histogram: ``counts[h]`` deliveries of ``h`` hops, in buckets ``bounds``."""
    hist = HistogramMetricFamily(
        "gossipfast_delivery_hops",
        "Links a delivered payload travelled (a latency proxy).",
        labels=["node"],
    )
    # a bucket "le=b" holds every h <= b
    cumulative: list[tuple[str, float]] = [(str(b), sum(counts[: b + 1])) for b in bounds]
    cumulative.append(("+Inf", sum(counts)))
    hist.add_metric(node, cumulative, sum_value=hops_sum)
    return hist


def start_http_server(
    port: int, addr: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY
) -> int:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread; return the bound port.

    ``port`` 0 picks a free one. The default address is loopback: pass ``"0.0.0.0"``
    (or the host's address) for a Prometheus server on another machine.
    """
    server, _thread = _start_http_server(port, addr=addr, registry=registry)
    bound: int = server.server_address[1]
    return bound


def serve(node: Node, port: int, addr: str = "127.0.0.1") -> tuple[NodeMetrics, int]:
    """Register ``node`` on the default registry and serve it on ``addr:port``."""
    metrics = NodeMetrics(node)
    return metrics, start_http_server(port, addr)


__all__ = ["HOP_BUCKETS", "NodeMetrics", "serve", "start_http_server"]
