"""Public value types and the wire message set."""

from __future__ import annotations

import msgspec
import pytest

from gossipfast import Gap, Lagged, Message, MessageId, NeighborDown, NeighborUp, wire
from gossipfast.types import make_origin, origin_str


def test_message_id_parts_round_trip() -> None:
    mid = MessageId.from_parts(2**64 - 1, 42)
    assert len(mid) == 16 and isinstance(mid, bytes)
    assert (mid.origin, mid.seq) == (2**64 - 1, 42)
    assert MessageId(bytes(mid)) == mid
    assert repr(mid) == f"MessageId({mid.hex()})"


@pytest.mark.parametrize("n", [0, 8, 15, 17])
def test_message_id_length_checked(n: int) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        MessageId(b"x" * n)


def test_origin_depends_on_id_and_incarnation() -> None:
    a = make_origin("a@h:1", 1)
    assert a == make_origin("a@h:1", 1)
    assert a != make_origin("a@h:1", 2)
    assert a != make_origin("b@h:1", 1)
    assert 0 <= a < 2**64
    assert len(origin_str(a)) == 16 and int(origin_str(a), 16) == a


def test_public_structs_are_frozen_values() -> None:
    m = Message(MessageId.from_parts(1, 1), origin_str(1), b"p", 2)
    assert m == Message(MessageId.from_parts(1, 1), origin_str(1), b"p", 2)
    with pytest.raises(AttributeError):
        m.hops = 3  # type: ignore[misc]
    assert NeighborDown("a:1", "failed").reason == "failed"
    assert NeighborUp("a:1").peer == "a:1"
    assert Lagged(3).dropped == 3


def _samples() -> list[wire.WireMessage]:
    return [
        wire.Hello(wire.PROTOCOL_VERSION, "c", "n@h:1", "h:1", 7),
        wire.Ping(1),
        wire.Pong(1),
        wire.Join(),
        wire.ForwardJoin("h:2", 6),
        wire.Neighbor(True),
        wire.NeighborReply(False),
        wire.Disconnect(True),
        wire.Shuffle("h:3", 5, ["h:4", "h:5"]),
        wire.ShuffleReply(["h:6"]),
        wire.Gossip(2**64 - 1, 2**63, 3, b"\x00payload"),
        wire.IHave([1, 2, 3, 4, 5, 6, 7, 8]),
        wire.Graft([1, 2]),
        wire.Prune([1, 2]),
        wire.Beacon(3, 2**64 - 1, 9, 4, True),
        wire.Digest([9, 10]),
        wire.Want([9, 1, 10]),
        wire.Gone([9, 1, 4]),
        wire.Members([wire.MemberRecord("n@h:1/ab", "h:1", 7, 2, 0, {"zone": "eu-1"})], False),
        wire.MemberSync(wire.MemberRecord("n@h:1/ab", "h:1", 7, 2, 1, {}), 2**64 - 1, 2),
    ]


def test_every_wire_message_round_trips_in_one_body() -> None:
    msgs = _samples()
    assert {type(m) for m in msgs} == set(wire.WireMessage.__args__)  # type: ignore[attr-defined]
    body = wire.encoder.encode(msgs)
    assert wire.decoder.decode(body) == msgs


def test_tags_are_unique() -> None:
    tags = [msgspec.inspect.type_info(t).tag for t in wire.WireMessage.__args__]  # type: ignore[attr-defined]
    assert len(tags) == len(set(tags))


def test_unknown_tag_is_a_decode_error() -> None:
    with pytest.raises(msgspec.ValidationError):
        wire.decoder.decode(msgspec.msgpack.encode([[99, 1]]))


def test_gap_is_a_public_frozen_event() -> None:
    g = Gap("00000000000000ab", None, 3)
    assert (g.origin, g.sender, g.count) == ("00000000000000ab", None, 3)
    assert Gap("00000000000000ab", "n1", 3) != g
    with pytest.raises(AttributeError):
        g.count = 4  # type: ignore[misc]
