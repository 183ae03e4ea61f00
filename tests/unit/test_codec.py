"""Frame codec: chunking, round trips of every wire message, faults, memory bound.

Every test runs against both builds in one process: the compiled extension (when it was
built and extensions are enabled) and the pure-Python source loaded from ``_codec.py``.
"""

from __future__ import annotations

import itertools
import struct
import typing
from types import ModuleType

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.buildkit import compiled, pure_twin

from gossipfast import _hot, wire

_PURE = pure_twin("_codec")
_COMPILED = compiled("_codec")


@pytest.fixture(params=["compiled", "pure"])
def codec(request: pytest.FixtureRequest) -> ModuleType:
    """The module under test: each build in turn."""
    if request.param == "pure":
        return _PURE
    if _COMPILED is None:
        pytest.skip("compiled _codec not built or extensions disabled")
    return _COMPILED


def test_builds_are_what_they_claim() -> None:
    assert not _hot.is_compiled(_PURE)
    if _COMPILED is not None:
        assert _COMPILED.FrameDecoder.__module__ == "gossipfast._codec"


# --- strategies: one per wire Struct, built from its field types -----------------------

_U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
_I64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
_INTS = st.one_of(_I64, _U64)
_SCALARS: dict[object, st.SearchStrategy[typing.Any]] = {
    int: _INTS,
    bool: st.booleans(),
    str: st.text(max_size=40),
    bytes: st.binary(max_size=300),
}


def _field_strategy(tp: object) -> st.SearchStrategy[typing.Any]:
    if tp in _SCALARS:
        return _SCALARS[tp]
    if typing.get_origin(tp) is list:
        (inner,) = typing.get_args(tp)
        return st.lists(_field_strategy(inner), max_size=12)
    if typing.get_origin(tp) is dict:
        key, value = typing.get_args(tp)
        return st.dictionaries(_field_strategy(key), _field_strategy(value), max_size=4)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):  # a nested record
        return _message_strategy(tp)
    raise AssertionError(f"no strategy for wire field type {tp!r}")  # a new field type


def _message_strategy(cls: type[msgspec.Struct]) -> st.SearchStrategy[msgspec.Struct]:
    fields = msgspec.structs.fields(cls)
    return st.builds(cls, *(_field_strategy(f.type) for f in fields))


_MESSAGE_TYPES: tuple[type[msgspec.Struct], ...] = typing.get_args(wire.WireMessage)
_BY_TYPE = {cls: _message_strategy(cls) for cls in _MESSAGE_TYPES}
messages = st.one_of(*_BY_TYPE.values())
batches = st.lists(st.lists(messages, min_size=1, max_size=5), min_size=1, max_size=6)


def test_strategies_cover_every_wire_struct() -> None:
    structs = {
        v
        for v in vars(wire).values()
        if isinstance(v, type) and issubclass(v, msgspec.Struct) and v is not msgspec.Struct
    }
    assert structs == set(_MESSAGE_TYPES) | {wire.MemberRecord}  # a record, not a message
    assert len(_MESSAGE_TYPES) == 20


def _flat(bs: list[list[typing.Any]]) -> list[typing.Any]:
    return [m for b in bs for m in b]


def _frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


SAMPLE = [
    [wire.Gossip(1 << 63, 1, 0, b"x" * 100), wire.IHave([1, 2, 2, 3])],
    [wire.Hello(1, "c", "n1", "127.0.0.1:7000", 9)],
    [wire.Join(), wire.Prune(), wire.Ping(7)],
    [wire.Gossip(5, 2, 1, b"")],
]
SAMPLE_STREAM = b"".join(_frame(wire.encoder.encode(b)) for b in SAMPLE)


# --- round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("cls", _MESSAGE_TYPES, ids=lambda c: c.__name__)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_round_trip_each_message_type(
    codec: ModuleType, cls: type[msgspec.Struct], data: st.DataObject
) -> None:
    msgs = data.draw(st.lists(_BY_TYPE[cls], min_size=1, max_size=4))
    frame = codec.encode_frame(msgs)
    assert frame[:4] == struct.pack(">I", len(frame) - 4)
    assert wire.decoder.decode(frame[4:]) == msgs
    dec = codec.FrameDecoder(1 << 20)
    assert dec.feed(frame) == (msgs, None)
    assert dec.buffered == 0


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(bs=batches)
def test_encode_frames_is_the_concatenation(codec: ModuleType, bs: list[list]) -> None:
    stream = codec.encode_frames(bs)
    assert stream == b"".join(codec.encode_frame(b) for b in bs)
    assert codec.FrameDecoder(1 << 20).feed(stream) == (_flat(bs), None)


def test_encode_frames_empty_and_empty_batch(codec: ModuleType) -> None:
    assert codec.encode_frames([]) == b""
    # An empty batch is a 1-byte body (an empty msgpack array): legal, decodes to nothing.
    assert codec.encode_frame([]) == b"\x00\x00\x00\x01\x90"
    assert codec.FrameDecoder(16).feed(b"\x00\x00\x00\x01\x90") == ([], None)


def test_encode_matches_between_builds(codec: ModuleType) -> None:
    assert codec.encode_frames(SAMPLE) == SAMPLE_STREAM
    assert codec.encode_frames(SAMPLE) == _PURE.encode_frames(SAMPLE)


# Sizes around each msgpack bin header (bin8/bin16/bin32) and the parts threshold.
_PART_SIZES = [0, 1, 255, 256, 8192, 8193, 65535, 65536, 70_000, 300_000]


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.sampled_from(_PART_SIZES), min_size=1, max_size=8),
    small=st.lists(messages, max_size=4),
    seed=st.randoms(use_true_random=False),
)
def test_frame_parts_join_to_the_frame_and_keep_large_payloads(
    codec: ModuleType, sizes: list[int], small: list, seed: typing.Any
) -> None:
    msgs = [wire.Gossip(7, i + 1, 3, bytes([i]) * n) for i, n in enumerate(sizes)] + small
    seed.shuffle(msgs)
    parts = codec.encode_frame_parts(msgs, 1 << 22)
    if all(type(m) is not wire.Gossip or len(m.payload) <= 8192 for m in msgs):
        assert parts is None
        return
    assert b"".join(parts) == codec.encode_frame(msgs)
    large = [m.payload for m in msgs if type(m) is wire.Gossip and len(m.payload) > 8192]
    # the large payloads are written from their own objects, not copied into a frame,
    # and small pieces next to each other are joined into one buffer
    assert [p for p in parts if any(p is q for q in large)] == large
    assert not any(len(a) <= 8192 and len(b) <= 8192 for a, b in itertools.pairwise(parts))


@pytest.mark.parametrize("limit", [20_000, 50_000, 100_000])
def test_frame_parts_split_a_batch_above_the_frame_limit(codec: ModuleType, limit: int) -> None:
    msgs = [wire.Gossip(1, i, 0, bytes([i]) * 9000 * (i % 2 + 1)) for i in range(1, 12)]
    msgs.insert(3, wire.IHave([1, 2, 3, 4]))
    stream = b"".join(codec.encode_frame_parts(msgs, limit))
    dec = codec.FrameDecoder(1 << 20)
    assert dec.feed(stream) == (msgs, None)
    # every frame's body stays under the limit (each holds at least one message)
    pos = frames = 0
    while pos < len(stream):
        (length,) = struct.unpack(">I", stream[pos : pos + 4])
        assert length <= limit
        pos += 4 + length
        frames += 1
    assert frames > 1 and pos == len(stream)


def test_frame_parts_give_a_message_above_the_limit_its_own_frame(codec: ModuleType) -> None:
    msgs = [wire.Gossip(1, 1, 0, b"a" * 50_000), wire.Gossip(1, 2, 0, b"b" * 9_000)]
    stream = b"".join(codec.encode_frame_parts(msgs, 20_000))
    assert stream == codec.encode_frames([[msgs[0]], [msgs[1]]])


def test_encode_buffer_is_released_after_a_huge_frame(codec: ModuleType) -> None:
    big = [wire.Gossip(1, 1, 0, bytes(3 << 20))]
    frame = codec.encode_frame(big)
    assert len(frame) > 3 << 20
    small = [wire.Ping(1)]
    assert codec.encode_frame(small) == _frame(wire.encoder.encode(small))
    assert codec.encode_frames([big, small])[-len(codec.encode_frame(small)) :] == (
        codec.encode_frame(small)
    )


# --- chunking -------------------------------------------------------------------------


def test_every_two_way_split(codec: ModuleType) -> None:
    want = _flat(SAMPLE)
    for i in range(len(SAMPLE_STREAM) + 1):
        dec = codec.FrameDecoder(1024)
        first, fault1 = dec.feed(SAMPLE_STREAM[:i])
        assert fault1 is None
        assert dec.buffered <= i
        second, fault2 = dec.feed(SAMPLE_STREAM[i:])
        assert fault2 is None
        assert first + second == want, i
        assert dec.buffered == 0


def test_every_three_way_split_of_a_short_stream(codec: ModuleType) -> None:
    stream = codec.encode_frames([[wire.Ping(1)], [wire.Join()], [wire.Pong(2)]])
    want = [wire.Ping(1), wire.Join(), wire.Pong(2)]
    for i in range(len(stream) + 1):
        for j in range(i, len(stream) + 1):
            dec = codec.FrameDecoder(64)
            got: list = []
            for part in (stream[:i], stream[i:j], stream[j:]):
                msgs, fault = dec.feed(part)
                assert fault is None
                got += msgs
            assert got == want


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(bs=batches, data=st.data())
def test_random_chunkings(codec: ModuleType, bs: list[list], data: st.DataObject) -> None:
    stream = codec.encode_frames(bs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    kind = data.draw(st.sampled_from([bytes, bytearray, memoryview]))
    dec = codec.FrameDecoder(1 << 16)
    got: list = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)]):
        msgs, fault = dec.feed(kind(stream[a:b]))
        assert fault is None
        got += msgs
        assert dec.buffered < len(stream)
    assert got == _flat(bs)
    assert dec.buffered == 0


def test_byte_by_byte(codec: ModuleType) -> None:
    dec = codec.FrameDecoder(1024)
    got: list = []
    for i in range(len(SAMPLE_STREAM)):
        msgs, fault = dec.feed(SAMPLE_STREAM[i : i + 1])
        assert fault is None
        got += msgs
    assert got == _flat(SAMPLE)


def test_one_feed_decodes_every_complete_frame(codec: ModuleType) -> None:
    dec = codec.FrameDecoder(1024)
    msgs, fault = dec.feed(SAMPLE_STREAM + SAMPLE_STREAM[:6])
    assert fault is None
    assert msgs == _flat(SAMPLE)
    assert dec.buffered == 6


def test_truncated_stream_holds_the_partial_frame(codec: ModuleType) -> None:
    last = len(SAMPLE_STREAM) - len(_frame(wire.encoder.encode(SAMPLE[-1])))
    for cut in (last + 1, last + 3, last + 4, last + 5, len(SAMPLE_STREAM) - 1):
        dec = codec.FrameDecoder(1024)
        msgs, fault = dec.feed(SAMPLE_STREAM[:cut])
        assert (msgs, fault) == (_flat(SAMPLE[:-1]), None)
        assert dec.buffered == cut - last
        assert dec.feed(b"") == ([], None)
        assert dec.feed(SAMPLE_STREAM[cut:]) == (SAMPLE[-1], None)
        assert dec.buffered == 0


def test_large_frame_in_small_reads(codec: ModuleType) -> None:
    msgs = [wire.Gossip(i, i + 1, 0, bytes(range(256)) * 4) for i in range(64)]
    frame = codec.encode_frame(msgs)
    dec = codec.FrameDecoder(len(frame))
    got: list = []
    for i in range(0, len(frame), 1000):
        out, fault = dec.feed(frame[i : i + 1000])
        assert fault is None
        got += out
    assert got == msgs


@pytest.mark.parametrize("cuts", [(), (15_000,), (3, 30_000), (20_000, 40_000)])
def test_big_frames_whole_and_split(codec: ModuleType, cuts: tuple[int, ...]) -> None:
    """Bodies above 8 KiB take the memoryview paths (decode, and into the tail)."""
    msgs = [wire.Gossip(i, i + 1, 0, bytes([i]) * 10_000) for i in range(2)]
    stream = codec.encode_frame(msgs) * 2
    dec = codec.FrameDecoder(1 << 16)
    got: list = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)]):
        out, fault = dec.feed(stream[a:b])
        assert fault is None
        got += out
    assert got == msgs * 2
    assert dec.buffered == 0


# --- faults ---------------------------------------------------------------------------


def test_oversize_length_rejected_on_the_header(codec: ModuleType) -> None:
    dec = codec.FrameDecoder(100)
    assert dec.feed(struct.pack(">I", 100) + b"\x91") == ([], None)  # at the limit: waits
    dec = codec.FrameDecoder(100)
    msgs, fault = dec.feed(struct.pack(">I", 101))  # no body sent: rejected already
    assert msgs == []
    assert fault is not None and fault.kind == "oversize"
    assert "101" in fault.detail and "100" in fault.detail
    assert dec.buffered == 0


def test_oversize_length_in_split_header(codec: ModuleType) -> None:
    dec = codec.FrameDecoder(100)
    good = codec.encode_frame([wire.Ping(1)])
    assert dec.feed(good + b"\x00\xff") == ([wire.Ping(1)], None)
    msgs, fault = dec.feed(b"\xff\xff" + b"x" * 50)
    assert msgs == []
    assert fault is not None and fault.kind == "oversize"
    assert str(0xFFFFFF) in fault.detail
    assert dec.buffered == 0


def test_zero_length(codec: ModuleType) -> None:
    ping = codec.encode_frame([wire.Ping(3)])
    msgs, fault = codec.FrameDecoder(100).feed(ping + b"\x00\x00\x00\x00" + ping)
    assert msgs == [wire.Ping(3)]
    assert fault is not None and fault.kind == "empty"
    assert "0 bytes" in fault.detail


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"\xc1", "DecodeError"),  # never-used msgpack opcode
        (b"\x91\x92\x02", "DecodeError"),  # truncated inside the body
        (b"\x91\x92\x02\xa1x", "Expected `int`"),  # wrong field type
        (b"\x91\x91\x63", "Invalid value 99"),  # unknown message tag
        (b"\x81\xa1a\x01", "Expected `array`"),  # a map, not an array
        (b"\x91\x93\x02\x01" + b"\x91" * 100_000 + b"\x90", "RecursionError"),  # deep
    ],
    ids=["opcode", "truncated", "type", "tag", "map", "deep"],
)
def test_malformed_bodies(codec: ModuleType, body: bytes, needle: str) -> None:
    ping = codec.encode_frame([wire.Ping(3)])
    dec = codec.FrameDecoder(1 << 20)
    msgs, fault = dec.feed(ping + _frame(body) + ping)
    assert msgs == [wire.Ping(3)]
    assert fault is not None and fault.kind == "malformed"
    assert needle in fault.detail
    assert str(len(body)) in fault.detail
    assert dec.buffered == 0


def test_malformed_body_completed_from_the_tail(codec: ModuleType) -> None:
    frame = _frame(b"\x91\x92\x02\xa1x")
    dec = codec.FrameDecoder(64)
    assert dec.feed(frame[:6]) == ([], None)
    msgs, fault = dec.feed(frame[6:])
    assert msgs == []
    assert fault is not None and fault.kind == "malformed"


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(min_size=1, max_size=200), split=st.integers(0, 204))
def test_garbage_bodies_never_raise(codec: ModuleType, body: bytes, split: int) -> None:
    stream = _frame(body)
    dec = codec.FrameDecoder(1024)
    first, f1 = dec.feed(stream[:split])
    second, f2 = dec.feed(stream[split:])
    if f1 is not None:  # the whole frame was in the first part
        assert split >= len(stream)
        assert f2 is f1
    try:
        want = wire.decoder.decode(body)
    except Exception:
        assert f2 is not None and f2.kind == "malformed"
        assert first + second == []
    else:
        assert (first + second, f2) == (want, None)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(noise=st.binary(max_size=400), data=st.data())
def test_arbitrary_streams_never_raise(
    codec: ModuleType, noise: bytes, data: st.DataObject
) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(noise)), max_size=6)))
    dec = codec.FrameDecoder(64)
    fault = None
    for a, b in zip([0, *cuts], [*cuts, len(noise)]):
        _, fault = dec.feed(noise[a:b])
        assert dec.buffered <= 64 + 4
    if fault is not None:
        assert fault.kind in ("oversize", "empty", "malformed")


def test_fault_is_sticky(codec: ModuleType) -> None:
    dec = codec.FrameDecoder(10)
    _, fault = dec.feed(b"\x00\x00\x01\x00")
    assert fault is not None
    assert dec.fault is fault
    good = codec.encode_frame([wire.Ping(1)])
    for _ in range(3):
        msgs, again = dec.feed(good)
        assert msgs == []
        assert again is fault
    assert dec.buffered == 0


def test_fault_value_is_printable(codec: ModuleType) -> None:
    _, fault = codec.FrameDecoder(10).feed(b"\x00\x00\x00\x00")
    assert str(fault) == "empty frame: frame announces a body of 0 bytes"
    assert repr(fault).startswith("FrameFault(kind='empty', detail=")
    assert fault == codec.FrameFault("empty", "frame announces a body of 0 bytes")
    assert fault != codec.FrameFault("oversize", fault.detail)
    assert hash(fault) == hash(codec.FrameFault("empty", fault.detail))
    assert fault.kind == "empty"


def test_healthy_decoder_has_no_fault(codec: ModuleType) -> None:
    assert codec.FrameDecoder(10).fault is None


@pytest.mark.parametrize("bad", [0, -1, 1 << 32])
def test_max_frame_size_is_checked(codec: ModuleType, bad: int) -> None:
    with pytest.raises(ValueError):
        codec.FrameDecoder(bad)


# --- memory bound ---------------------------------------------------------------------


def test_buffer_never_exceeds_one_max_frame(codec: ModuleType) -> None:
    limit = 4096
    body_msgs = [wire.Gossip(1, 1, 0, bytes(limit - 20))]
    frame = codec.encode_frame(body_msgs)
    assert len(frame) - 4 <= limit
    stream = frame * 3
    dec = codec.FrameDecoder(limit)
    got = 0
    for step in (1, 7, 1000, 5000):
        for i in range(0, len(stream), step):
            msgs, fault = dec.feed(stream[i : i + step])
            assert fault is None
            got += len(msgs)
            assert dec.buffered <= limit + 4
    assert got == 12
    # One read holding many frames and a partial one keeps only the partial one.
    msgs, fault = dec.feed(stream * 5 + frame[:-1])
    assert (len(msgs), fault) == (15, None)
    assert dec.buffered == len(frame) - 1


def test_oversize_announcement_buffers_nothing(codec: ModuleType) -> None:
    dec = codec.FrameDecoder(1000)
    _, fault = dec.feed(struct.pack(">I", 1 << 31) + bytes(5000))
    assert fault is not None and fault.kind == "oversize"
    assert dec.buffered == 0
