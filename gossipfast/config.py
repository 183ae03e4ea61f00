"""Node configuration: one frozen, validated :class:`Config`.

Defaults follow the papers (HyParView, DSN 2007; Plumtree, SRDS 2007) where they give a
value, and measured choices otherwise. Every field is listed in :data:`FIELDS` with its
meaning and allowed range; a value outside that range raises :class:`ConfigError`
(a ``ValueError``) naming the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import msgspec

from .errors import ConfigError

_INF = math.inf
# Dedup keeps dedup_window bits per tracked origin; cap the product (memory must stay bounded).
_DEDUP_MAX_BYTES = 1 << 30

#: field name -> (allowed minimum, allowed maximum, description). Bounds are inclusive.
FIELDS: dict[str, tuple[float, float, str]] = {
    # HyParView membership
    "active_view_size": (1, 64, "Max peers in the active view (open TCP links)."),
    "passive_view_size": (1, 4096, "Max peers in the passive view (backups, no link)."),
    "active_random_walk_length": (1, 64, "ARWL: hops of a FORWARD_JOIN random walk."),
    "passive_random_walk_length": (
        0,
        64,
        "PRWL: walk hop at which FORWARD_JOIN adds the new node to the passive view.",
    ),
    "shuffle_active": (0, 64, "ka: active-view samples carried by a SHUFFLE."),
    "shuffle_passive": (0, 256, "kp: passive-view samples carried by a SHUFFLE."),
    "shuffle_ttl": (1, 64, "Hops of a SHUFFLE random walk."),
    "shuffle_interval": (1e-3, _INF, "Seconds between two SHUFFLEs of a node."),
    "neighbor_timeout": (
        1e-3,
        _INF,
        "Seconds to wait for a NEIGHBOR answer before trying the next passive peer.",
    ),
    "repair_interval": (
        1e-3,
        _INF,
        "Seconds between isolation-repair attempts while the active view is short.",
    ),
    "reconnect_interval": (
        1e-3,
        _INF,
        "Seconds between two probes of failed peers (one peer a probe), so that a healed "
        "partition of any length re-merges.",
    ),
    # Plumtree broadcast
    "ihave_interval": (0, _INF, "Seconds IHAVE announcements are batched for (0: at once)."),
    "ihave_batch_max": (
        1,
        1 << 16,
        "Max message ids announced in one IHAVE, and unseen ids looked at in one received.",
    ),
    "graft_timeout_1": (
        1e-4,
        _INF,
        "Seconds after an IHAVE for a missing message before the first GRAFT.",
    ),
    "graft_timeout_2": (
        1e-4,
        _INF,
        "Seconds between later GRAFTs for the same missing message (next announcer).",
    ),
    "tree_beacon_interval": (
        0,
        _INF,
        "Seconds between beacons of the anchor that keeps the shared broadcast tree "
        "fewest-hops (0: no anchor; the shared tree takes the shape of first pushes, "
        "as in the paper).",
    ),
    "optimization_threshold": (
        1,
        1 << 16,
        "Hop gain that makes a lazy announcer replace an eager parent.",
    ),
    # Plumtree limits per neighbour (a hostile member is contained by its own share)
    "peer_missing_max": (
        1,
        1 << 24,
        "Missing-message entries one neighbour's IHAVEs may hold at once (the node holds "
        "2**16 at most in all); beyond, its announcements are dropped and counted "
        "(stats: ihave_dropped).",
    ),
    "peer_graft_rate": (
        1,
        _INF,
        "Missing messages requested (GRAFT/WANT) from one neighbour per second (burst: "
        "1 s); beyond, the next announcer is asked or the id dropped (grafts_withheld).",
    ),
    "peer_answer_rate": (
        1,
        _INF,
        "Payloads resent to one neighbour per second in answer to its GRAFT/WANT (burst: "
        "1 s, at least catch_up_max); beyond, the ids are ignored (answers_refused).",
    ),
    # Message ids, dedup and payload store
    "dedup_window": (
        64,
        1 << 20,
        "Per-origin sliding window of sequence numbers remembered (window/8 bytes per origin)."
        " A copy that arrives more than this many seqs behind its origin's newest is taken"
        " for a duplicate: keep it above (broadcasts/s of one origin) x (worst repair delay).",
    ),
    "dedup_max_origins": (
        16,
        1 << 24,
        "Origins tracked by dedup. One is forgotten only after store_max_age + 30 s unseen;"
        " while none is, a new origin's messages are dropped (origins_refused). From half"
        " full on, each neighbour brings in new origins at most 1/8 of this at once and"
        " 1/8 per store_max_age + 30 s (origins_throttled).",
    ),
    "store_max_messages": (0, 1 << 30, "Payloads kept for GRAFT and catch-up: count bound."),
    "store_max_bytes": (0, 1 << 40, "Payloads kept for GRAFT and catch-up: bytes bound."),
    "store_max_age": (0, _INF, "Payloads kept for GRAFT and catch-up: seconds bound."),
    "anti_entropy_interval": (
        0,
        _INF,
        "Seconds between two digests sent to the active neighbours in turn, so that "
        "messages a partition or a lost answer kept from a node are pulled (0: a digest "
        "only when a link comes up).",
    ),
    # Member list
    "member_sync_interval": (
        1e-3,
        _INF,
        "Seconds between two member-table comparisons with an active neighbour (in turn); "
        "a mismatch pushes both tables.",
    ),
    "member_refresh_interval": (
        0,
        _INF,
        "Seconds between two floods of a node's own member record; a member not heard of "
        "for three of them is suspected (0: no refresh, failures found by neighbours only).",
    ),
    "member_suspect_timeout": (
        0,
        _INF,
        "Seconds a member whose neighbour lost its link to it stays listed as a suspect "
        "before it is taken for failed, unless it denies (it is alive).",
    ),
    "member_dead_retention": (
        0,
        _INF,
        "Seconds a left or failed member's record is kept, so that an old live copy of it "
        "does not bring it back.",
    ),
    "max_members": (1, 1 << 24, "Member records kept (live and dead); more are refused."),
    "member_meta_max": (
        0,
        1 << 16,
        "Bytes of a member's metadata (keys and values, UTF-8) at most.",
    ),
    "catch_up_max": (
        0,
        1 << 24,
        "Max messages one catch-up exchange may request from a neighbour.",
    ),
    # Sizes on the wire
    "max_payload_size": (1, 1 << 30, "Largest payload broadcast() accepts, in bytes."),
    "max_frame_size": (1024, 1 << 31, "Largest frame read from a peer, in bytes."),
    # Transport
    "connect_timeout": (1e-3, _INF, "Seconds to open a TCP connection and finish the handshake."),
    "heartbeat_interval": (1e-3, _INF, "Seconds of silence on a link before a heartbeat."),
    "heartbeat_timeout": (
        1e-3,
        _INF,
        "Seconds of silence after which a neighbour is declared failed.",
    ),
    "join_timeout": (1e-3, _INF, "Seconds join() waits for a seed before JoinError."),
    "send_queue_bytes": (
        1024,
        1 << 40,
        "Bytes queued for one peer before it is dropped as slow.",
    ),
    "message_queue_size": (
        1,
        1 << 30,
        "Deliveries buffered for messages() before the oldest are dropped (Lagged).",
    ),
    # Limits against hostile or broken peers (transport)
    "max_connections": (1, 1 << 20, "Open TCP connections at most; more are refused."),
    "max_handshaking": (
        1,
        1 << 20,
        "Inbound connections still in the handshake (no Hello yet) at most; more are refused.",
    ),
    "max_connections_per_host": (
        1,
        1 << 20,
        "Inbound connections from one remote IP address at most; more are refused.",
    ),
    "accept_rate": (
        0.01,
        _INF,
        "New inbound connections per second accepted from one IP (burst: one second's worth).",
    ),
    "max_hello_bytes": (
        64,
        1 << 30,
        "Bytes buffered from a peer before its Hello is complete; more closes the connection.",
    ),
    "frame_timeout": (
        1e-3,
        _INF,
        "Seconds a started frame may take to arrive whole (slowloris); then the link closes.",
    ),
    "peer_read_rate": (
        1024,
        1 << 40,
        "Bytes per second read from one connection; above it reading pauses "
        "(burst: 1 s, at least one max frame).",
    ),
    "peer_control_rate": (
        1,
        1 << 30,
        "Control messages (all but Gossip/IHave; a Graft counts its ids, a Want the "
        "messages it asks for) per second read from one connection; above it reading "
        "pauses (burst 1 s).",
    ),
    "dial_rate": (
        0.01,
        _INF,
        "Dials per second to addresses that never answered one of our dials (in the last "
        "hour; 4,096 remembered), burst one second's worth; more fail at once as "
        "unreachable. Against forged views that name arbitrary addresses.",
    ),
}


class Config(msgspec.Struct, frozen=True, kw_only=True):
    """Tunables of a node. Immutable; build a new one with :func:`msgspec.structs.replace`.

    See :data:`FIELDS` (or the README's Config table) for each field's meaning and range.
    """

    #: Name of the cluster; peers of another cluster are refused at the handshake.
    cluster: str = "gossipfast"
    active_view_size: int = 5
    passive_view_size: int = 30
    active_random_walk_length: int = 6
    passive_random_walk_length: int = 3
    shuffle_active: int = 3
    shuffle_passive: int = 4
    shuffle_ttl: int = 6
    shuffle_interval: float = 10.0
    neighbor_timeout: float = 2.0
    repair_interval: float = 1.0
    reconnect_interval: float = 10.0
    ihave_interval: float = 0.005
    ihave_batch_max: int = 1024
    graft_timeout_1: float = 0.08
    graft_timeout_2: float = 0.04
    optimization_threshold: int = 3
    peer_missing_max: int = 16384
    peer_graft_rate: float = 50_000.0
    peer_answer_rate: float = 100_000.0
    tree_beacon_interval: float = 10.0
    dedup_window: int = 65536
    dedup_max_origins: int = 16384
    store_max_messages: int = 200_000
    store_max_bytes: int = 128 << 20
    store_max_age: float = 120.0
    anti_entropy_interval: float = 1.0
    member_sync_interval: float = 5.0
    member_refresh_interval: float = 30.0
    member_suspect_timeout: float = 3.0
    member_dead_retention: float = 3600.0
    max_members: int = 65536
    member_meta_max: int = 512
    catch_up_max: int = 100_000
    max_payload_size: int = 1 << 20
    max_frame_size: int = 4 << 20
    connect_timeout: float = 3.0
    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = 5.0
    join_timeout: float = 5.0
    send_queue_bytes: int = 32 << 20
    message_queue_size: int = 100_000
    max_connections: int = 4096
    max_handshaking: int = 256
    max_connections_per_host: int = 256
    accept_rate: float = 200.0
    max_hello_bytes: int = 64 << 10
    frame_timeout: float = 30.0
    peer_read_rate: int = 256 << 20
    peer_control_rate: int = 20_000
    dial_rate: float = 30.0
    #: Deliver each origin's messages in sequence order (holds back out-of-order ones).
    fifo: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.cluster, str) or not self.cluster or len(self.cluster) > 255:
            raise ConfigError("cluster must be a non-empty string of at most 255 characters")
        if not isinstance(self.fifo, bool):
            raise ConfigError(f"fifo must be a bool, got {self.fifo!r}")
        for name, (lo, hi, _doc) in FIELDS.items():
            value: Any = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name} must be a number, got {value!r}")
            if isinstance(lo, int) and isinstance(hi, int) and not isinstance(value, int):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
            if not (lo <= value <= hi) or value != value:
                raise ConfigError(f"{name}={value!r} is out of range: allowed {lo} .. {hi}")
        if self.max_frame_size < self.max_payload_size + 1024:
            raise ConfigError(
                f"max_frame_size={self.max_frame_size} must exceed "
                f"max_payload_size={self.max_payload_size} by at least 1024 bytes"
            )
        dedup_bytes = self.dedup_max_origins * (self.dedup_window // 8)
        if dedup_bytes > _DEDUP_MAX_BYTES:
            raise ConfigError(
                f"dedup_max_origins={self.dedup_max_origins} x dedup_window="
                f"{self.dedup_window} needs {dedup_bytes >> 20} MiB of dedup bitmaps; "
                f"at most {_DEDUP_MAX_BYTES >> 20} MiB is allowed"
            )
        if self.heartbeat_timeout <= self.heartbeat_interval:
            raise ConfigError(
                f"heartbeat_timeout={self.heartbeat_timeout} must be greater than "
                f"heartbeat_interval={self.heartbeat_interval}"
            )
        if self.passive_random_walk_length > self.active_random_walk_length:
            raise ConfigError(
                f"passive_random_walk_length={self.passive_random_walk_length} must not "
                f"exceed active_random_walk_length={self.active_random_walk_length}"
            )


def config_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``FIELD=JSON`` items (the CLIs' ``--config``) into Config keyword arguments.

    Raises :class:`ConfigError` naming the item that is malformed or out of range.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep:
            raise ConfigError(f"{item!r} is not FIELD=JSON")
        try:
            out[key.strip()] = json.loads(val)
        except ValueError as e:
            raise ConfigError(f"{item!r}: the value is not JSON ({e})") from e
    try:
        Config(**out)
    except TypeError as e:  # an unknown field name
        raise ConfigError(str(e)) from e
    return out


__all__ = ["FIELDS", "Config", "config_overrides"]
