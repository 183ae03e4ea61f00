"""Public value types: message ids, deliveries and events."""

from __future__ import annotations

from typing import Literal

import msgspec
import xxhash

#: Why a neighbour went down.
DownReason = Literal["failed", "disconnected", "replaced", "slow", "left"]


class MessageId(bytes):
    """16-byte id of a broadcast: 8 bytes of origin, then 8 bytes of sequence number.

    Two broadcasts of the same payload are still two messages with two ids.
    """

    __slots__ = ()

    def __new__(cls, value: bytes) -> MessageId:
        """Wrap 16 bytes as a message id (``ValueError`` for any other length)."""
        if len(value) != 16:
            raise ValueError(f"a MessageId is 16 bytes, got {len(value)}")
        return super().__new__(cls, value)

    @classmethod
    def from_parts(cls, origin: int, seq: int) -> MessageId:
        """Build an id from its 64-bit origin and sequence number."""
        return cls(origin.to_bytes(8, "big") + seq.to_bytes(8, "big"))

    @property
    def origin(self) -> int:
        """The 64-bit origin (xxh64 of the sender's node id and incarnation)."""
        return int.from_bytes(self[:8], "big")

    @property
    def seq(self) -> int:
        """The origin's sequence number of this message (from 1)."""
        return int.from_bytes(self[8:], "big")

    def __repr__(self) -> str:
        return f"MessageId({self.hex()})"


def make_origin(node_id: str, incarnation: int) -> int:
    """The 64-bit origin of a node: xxh64 of its id and its incarnation."""
    return xxhash.xxh64_intdigest(node_id.encode() + incarnation.to_bytes(8, "big"))


def origin_str(origin: int) -> str:
    """The origin as shown to users: 16 hex digits."""
    return f"{origin:016x}"


class Message(msgspec.Struct, frozen=True, gc=False):
    """One delivered broadcast.

    ``origin`` is the sender's origin as 16 hex digits (see ``Node.origin``); ``hops`` is
    the number of links the payload travelled to reach this node; ``sender`` is the
    sending node's id (its ``Node.id``), learnt from the member list: None only while
    this node has not heard of the sender yet (a message that overtook the sender's
    member record, moments after it joined).
    """

    id: MessageId
    origin: str
    payload: bytes
    hops: int
    sender: str | None = None


class Member(msgspec.Struct, frozen=True):
    """A live node of the cluster as the member list knows it: its id (``Node.id``),
    the address peers dial, and its metadata (``Node(meta=...)``, ``Node.set_meta``)."""

    id: str
    address: str
    meta: dict[str, str]


class MemberUp(msgspec.Struct, frozen=True):
    """A node joined the cluster (or came back after it was taken for dead)."""

    member: Member


class MemberDown(msgspec.Struct, frozen=True):
    """A node left the cluster (``"left"``) or was found dead (``"failed"``)."""

    member: Member
    reason: Literal["left", "failed"]


class NeighborUp(msgspec.Struct, frozen=True):
    """A peer joined this node's active view."""

    peer: str


class NeighborDown(msgspec.Struct, frozen=True):
    """A peer left this node's active view, and why."""

    peer: str
    reason: DownReason


class Lagged(msgspec.Struct, frozen=True):
    """The consumer of ``messages()`` (or ``events()``) fell behind: ``dropped``
    deliveries (or events), the oldest, were discarded."""

    dropped: int


class Gap(msgspec.Struct, frozen=True):
    """``count`` messages of one origin were lost for good: they will not be delivered.

    Reported when catch-up learns that the origin sent them but no neighbour stores
    them any more (they are older than ``Config.store_max_age``, or were evicted by the
    store's count or byte bound), for example after a partition longer than that.
    ``origin`` is the sender's origin as 16 hex digits (as in :attr:`Message.origin`);
    ``sender`` is the sending node's id when this node knows it (the origin is its own
    or that of a peer it has a link to), else None. Each lost message is counted once;
    a message that was delivered is never counted.
    """

    origin: str
    sender: str | None
    count: int


Event = NeighborUp | NeighborDown | Gap | MemberUp | MemberDown

__all__ = [
    "DownReason",
    "Event",
    "Gap",
    "Lagged",
    "Member",
    "MemberDown",
    "MemberUp",
    "Message",
    "MessageId",
    "NeighborDown",
    "NeighborUp",
    "make_origin",
    "origin_str",
]
