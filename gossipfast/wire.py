"""Every message on the wire, as msgspec Structs (tagged union, ``array_like``).

A frame is a 4-byte big-endian length followed by a msgpack body; the body is an array
of one or more messages (see :mod:`gossipfast._codec`). Each message is encoded as an
array whose first element is its integer tag, so a message costs a few bytes of framing.

Peers are named by their advertised address ``"host:port"``; the sender of a message is
the peer at the other end of the connection (known from its :class:`Hello`), so messages
do not repeat it. Message ids travel as two integers: ``origin`` (64-bit xxh64 of the
node id and its incarnation) and ``seq`` (that origin's counter, from 1). Lists of ids are
flattened (``[origin, seq, origin, seq, ...]``) to keep encoding cheap; announcements and
requests of consecutive seqs travel as ranges.
"""

from __future__ import annotations

from typing import Union

import msgspec

#: Bumped on any incompatible change of the messages below. Checked in the handshake.
PROTOCOL_VERSION = 5


class Hello(msgspec.Struct, tag=1, array_like=True, frozen=True, gc=False):
    """First message each way on every connection."""

    version: int
    cluster: str
    node_id: str
    address: str
    incarnation: int


class Ping(msgspec.Struct, tag=2, array_like=True, frozen=True, gc=False):
    """Heartbeat on an idle link; answered by :class:`Pong` with the same nonce."""

    nonce: int


class Pong(msgspec.Struct, tag=3, array_like=True, frozen=True, gc=False):
    """Heartbeat answer."""

    nonce: int


# --- HyParView -------------------------------------------------------------------------


class Join(msgspec.Struct, tag=10, array_like=True, frozen=True, gc=False):
    """A new node asks a contact node to bring it into the overlay."""


class ForwardJoin(msgspec.Struct, tag=11, array_like=True, frozen=True, gc=False):
    """Random walk announcing ``node`` (the joiner); ``ttl`` counts down from ARWL."""

    node: str
    ttl: int


class Neighbor(msgspec.Struct, tag=12, array_like=True, frozen=True, gc=False):
    """Ask to become an active neighbour; ``high`` priority must be accepted."""

    high: bool


class NeighborReply(msgspec.Struct, tag=13, array_like=True, frozen=True, gc=False):
    """Answer to :class:`Neighbor`."""

    accepted: bool


class Disconnect(msgspec.Struct, tag=14, array_like=True, frozen=True, gc=False):
    """The sender dropped the receiver from its active view.

    ``alive``: the sender stays in the cluster (the receiver may keep it as a passive
    peer); ``False`` means the sender is leaving for good.
    """

    alive: bool


class Shuffle(msgspec.Struct, tag=15, array_like=True, frozen=True, gc=False):
    """Random walk started by ``origin`` carrying samples of its views."""

    origin: str
    ttl: int
    nodes: list[str]


class ShuffleReply(msgspec.Struct, tag=16, array_like=True, frozen=True, gc=False):
    """Samples of the passive view sent back to a SHUFFLE's origin."""

    nodes: list[str]


# --- Plumtree --------------------------------------------------------------------------


class Gossip(msgspec.Struct, tag=20, array_like=True, frozen=True, gc=False):
    """A broadcast payload, eager-pushed; ``hops`` counts links travelled so far."""

    origin: int
    seq: int
    hops: int
    payload: bytes


class IHave(msgspec.Struct, tag=21, array_like=True, frozen=True, gc=False):
    """Lazy push: ids the sender has, as runs ``[origin, first_seq, last_seq, hops, ...]``.

    Each run names every seq from ``first_seq`` to ``last_seq`` of ``origin``, all
    delivered to the sender ``hops`` links from the origin (a relay announces the
    consecutive messages of a stream as one run).
    """

    runs: list[int]


class Graft(msgspec.Struct, tag=22, array_like=True, frozen=True, gc=False):
    """Make the receiver an eager parent again and resend ``[origin, seq, ...]`` ids.

    Trees are per origin: each pair grafts the link into that origin's tree; ``seq`` 0
    asks for the link only (tree optimisation), with nothing to resend.
    """

    ids: list[int]


class Prune(msgspec.Struct, tag=23, array_like=True, frozen=True, gc=False):
    """The receiver moves the sender to the lazy set of these origins' trees.

    Sent when duplicates of those origins' messages arrived from the receiver. An empty
    list prunes the link from every tree.
    """

    origins: list[int] = []


class Beacon(msgspec.Struct, tag=24, array_like=True, frozen=True, gc=False):
    """The anchored shared tree: the sender's view of the current anchor.

    ``anchor`` (an origin) started beacon ``epoch`` in election ``term``; the sender is
    ``hops`` links from it. ``up``: the receiver is the sender's parent towards the
    anchor (the sender is its child in the shared broadcast tree).
    """

    term: int
    anchor: int
    epoch: int
    hops: int
    up: bool


# --- Catch-up --------------------------------------------------------------------------


class Digest(msgspec.Struct, tag=30, array_like=True, frozen=True, gc=False):
    """What the sender has seen: ``[origin, highest_seq, ...]``."""

    entries: list[int]


class Want(msgspec.Struct, tag=31, array_like=True, frozen=True, gc=False):
    """Request for stored payloads, as ranges ``[origin, first_seq, last_seq, ...]``."""

    ranges: list[int]


class Gone(msgspec.Struct, tag=32, array_like=True, frozen=True, gc=False):
    """Ids lost for good, as ranges ``[origin, first_seq, last_seq, ...]``.

    The answer to a :class:`Want` for ids the sender has seen but no longer stores
    (older than its payload store keeps), and the notice a node that learnt of such a
    loss passes on to its neighbours: none of them can fetch those ids any more.
    """

    ranges: list[int]


# --- member list -----------------------------------------------------------------------


class MemberRecord(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One member as the member list knows it (not a message of its own).

    ``status`` is 0 alive, 1 left, 2 failed; ``version`` is raised only by the member
    itself. Its origin is ``make_origin(id, incarnation)``.
    """

    id: str
    address: str
    incarnation: int
    version: int
    status: int
    meta: dict[str, str]


class Members(msgspec.Struct, tag=40, array_like=True, frozen=True):
    """Member records: news flooded on, or (``table``) a chunk of a whole table."""

    records: list[MemberRecord]
    table: bool


class MemberSync(msgspec.Struct, tag=41, array_like=True, frozen=True):
    """The sender's own record and the hash of its listed members. ``kind``: 0 at link-up
    (the records only), 1 a periodic comparison (a mismatch is answered with our table
    and a kind 2), 2 that answer (a mismatch left after it: the asker pushes its table)."""

    own: MemberRecord
    hash: int
    kind: int


WireMessage = Union[  # noqa: UP007 - a runtime alias msgspec needs on 3.10
    Hello,
    Ping,
    Pong,
    Join,
    ForwardJoin,
    Neighbor,
    NeighborReply,
    Disconnect,
    Shuffle,
    ShuffleReply,
    Gossip,
    IHave,
    Graft,
    Prune,
    Beacon,
    Digest,
    Want,
    Gone,
    Members,
    MemberSync,
]

#: A frame body: one or more messages.
FrameBody = list[WireMessage]

#: Module-level encoder and decoder, reused (building them is costly).
encoder = msgspec.msgpack.Encoder()
decoder: msgspec.msgpack.Decoder[list[WireMessage]] = msgspec.msgpack.Decoder(FrameBody)

__all__ = [
    "PROTOCOL_VERSION",
    "Beacon",
    "Digest",
    "Disconnect",
    "ForwardJoin",
    "FrameBody",
    "Gone",
    "Gossip",
    "Graft",
    "Hello",
    "IHave",
    "Join",
    "MemberRecord",
    "MemberSync",
    "Members",
    "Neighbor",
    "NeighborReply",
    "Ping",
    "Pong",
    "Prune",
    "Shuffle",
    "ShuffleReply",
    "Want",
    "WireMessage",
    "decoder",
    "encoder",
]
