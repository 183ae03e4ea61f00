"""The typed figures of a node: :class:`Stats`, what :meth:`gossipfast.Node.stats` returns.

``Stats`` is a frozen dataclass *and* a read-only ``Mapping[str, int]``: code written
against the earlier dict (``stats["delivered"]``, ``dict(stats)``, ``json.dumps(dict(s))``)
keeps working, and new code gets attributes a type checker knows (``stats.delivered``).
Counters that have no attribute of their own (one per wire message kind, for example
``sent_ihave`` or ``received_gossip``) are in :attr:`Stats.details` and reachable by key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Stats(Mapping[str, int]):
    """A snapshot of a node's counters (monotonic totals) and gauges (current sizes).

    Read an attribute (``s.delivered``) or a key (``s["delivered"]``); every key of
    ``dict(s)`` is one or the other. Counters only grow while the node runs.
    """

    # -- deliveries
    #: Broadcasts this node originated.
    broadcasts: int = 0
    #: Broadcasts of others delivered to this node (each once).
    delivered: int = 0
    #: Payload copies received again after their first delivery (duplicates).
    dups: int = 0
    #: Payloads refused as older than their origin's ``dedup_window``: counted as
    #: duplicates too, but possibly never delivered here. Should stay 0; if it grows, the
    #: cluster runs seconds behind its broadcast rate: raise ``Config.dedup_window``.
    stale_drops: int = 0
    #: Messages this node lacked and pulled back (GRAFT answers and catch-up).
    recovered: int = 0
    #: Messages lost for good: sent, but no neighbour stores them any more (older than
    #: ``store_max_age``, or evicted by the store's count or byte bound); never delivered
    #: here. Reported in ``Gap`` events on ``events()``; each message counted once.
    lost: int = 0
    #: ``Gap`` events (one per origin each time catch-up learns of lost messages).
    gaps: int = 0
    #: Gauge: messages announced to this node (IHAVE) that it has not received yet.
    missing: int = 0
    #: Deliveries dropped because the consumer of ``messages()`` fell behind.
    lagged: int = 0
    #: Events dropped because the consumer of ``events()`` fell behind (10,000 queued).
    events_lagged: int = 0
    #: Gauge: deliveries waiting in the ``messages()`` queue.
    queued: int = 0
    #: Exceptions raised by an overridden ``handle_broadcast``.
    hook_errors: int = 0
    # -- protocol messages
    #: Protocol messages sent / received, all kinds (per kind in ``details``).
    sent: int = 0
    received: int = 0
    grafts_sent: int = 0
    prunes_sent: int = 0
    ihaves_sent: int = 0
    #: Messages requested from neighbours by digest catch-up.
    catch_up_requested: int = 0
    #: Tree optimisations (a lazy link promoted for a shorter path).
    optimizations: int = 0
    #: Messages held back and then skipped by FIFO delivery.
    fifo_skipped: int = 0
    #: Well-framed messages the engine rejected as invalid.
    bad_messages: int = 0
    #: Announced ids not tracked because their announcer held its whole share of
    #: missing-message entries (``Config.peer_missing_max``): an IHAVE flood.
    ihave_dropped: int = 0
    #: GRAFT/WANT requests of missing messages not sent to a neighbour whose request
    #: budget (``Config.peer_graft_rate``) was spent; the next announcer is asked.
    grafts_withheld: int = 0
    #: Payloads a neighbour asked for (GRAFT/WANT) beyond its answer budget
    #: (``Config.peer_answer_rate``), ignored.
    answers_refused: int = 0
    #: Messages :meth:`Node.validate` refused: not delivered, stored, relayed or announced.
    rejected: int = 0
    #: Nodes in the member list (this one included), as ``members()`` lists them.
    members: int = 0
    # -- membership
    #: Gauges: peers in the active / passive view, eager / lazy Plumtree links.
    active: int = 0
    passive: int = 0
    eager: int = 0
    lazy: int = 0
    #: NeighborUp / NeighborDown events so far.
    neighbor_up: int = 0
    neighbor_down: int = 0
    shuffles: int = 0
    #: Re-joins through the seeds after isolation.
    rejoins: int = 0
    #: Probes of failed peers (partition healing) and gauge of peers being probed.
    probes: int = 0
    graveyard: int = 0
    # -- payload store and dedup
    #: Gauges: payloads kept for GRAFT/catch-up, their bytes, origins tracked by dedup.
    store_messages: int = 0
    store_bytes: int = 0
    origins: int = 0
    # -- transport
    #: Gauge: open TCP connections.
    connections: int = 0
    connections_opened: int = 0
    connections_accepted: int = 0
    connections_refused: int = 0
    dials: int = 0
    dial_failures: int = 0
    handshake_failures: int = 0
    version_mismatches: int = 0
    cluster_mismatches: int = 0
    handshake_timeouts: int = 0
    #: Frames over ``max_frame_size`` or that failed to decode (the link was closed).
    bad_frames: int = 0
    heartbeat_timeouts: int = 0
    #: Peers dropped because their send queue exceeded ``send_queue_bytes``.
    slow_drops: int = 0
    #: Frames discarded because the peer's link was gone.
    send_drops: int = 0
    duplicate_links: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    frames_sent: int = 0
    #: Exceptions caught around the engine (a bug: please report).
    engine_errors: int = 0
    #: Dials to never-reached addresses refused by ``Config.dial_rate`` (forged views).
    dials_limited: int = 0
    #: TLS handshakes that failed, inbound (a foreign CA, no certificate, plain TCP, a
    #: stall) and outbound.
    tls_failures: int = 0
    #: Every other counter, by name (``sent_<kind>``, ``received_<kind>``,
    #: ``neighbor_down_<reason>`` ...).
    details: Mapping[str, int] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_counters(cls, counters: Mapping[str, int]) -> Stats:
        """Build a snapshot from a flat ``{name: value}``; unknown names go to ``details``."""
        known: dict[str, Any] = {}
        details: dict[str, int] = {}
        for name, value in counters.items():
            if name in _FIELDS:
                known[name] = int(value)
            else:
                details[name] = int(value)
        return cls(**known, details=details)

    # -- Mapping: the flat view of every counter
    def __getitem__(self, key: str) -> int:
        if key in _FIELDS:
            value: int = getattr(self, key)
            return value
        return self.details[key]

    def __iter__(self) -> Iterator[str]:
        yield from _FIELDS
        yield from self.details

    def __len__(self) -> int:
        return len(_FIELDS) + len(self.details)

    def __contains__(self, key: object) -> bool:
        return key in _FIELDS or key in self.details

    def as_dict(self) -> dict[str, int]:
        """Every counter as a plain dict (for JSON)."""
        return dict(self)


# Field names that are counters (all but `details`), in declaration order.
_FIELDS: dict[str, None] = dict.fromkeys(
    f.name for f in dataclasses.fields(Stats) if f.name != "details"
)

__all__ = ["Stats"]
