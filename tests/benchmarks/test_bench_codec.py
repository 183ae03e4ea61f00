"""Frame codec benchmarks: compiled vs pure (one process) vs msgspec's bare calls.

Each group holds one workload; in it ``compiled`` is the Cython extension, ``pure`` the
same ``_codec.py`` loaded as source, and ``baseline`` msgspec alone on the pre-split
bodies (decode) or without framing (encode) — the floor a framing layer can reach.
Every round handles 1024 Gossip messages, packed 64 or 1 per frame.

Run: ``python -m pytest tests/benchmarks/test_bench_codec.py --benchmark-only``
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from support.buildkit import compiled, pure_twin

from gossipfast import wire

_PURE = pure_twin("_codec")
_COMPILED = compiled("_codec")

MESSAGES = 1024
READ_SIZE = 65536  # a typical socket read
CASES = [(size, per) for size in (100, 1024) for per in (64, 1)]
CASE_IDS = [f"{size}B-x{per}" for size, per in CASES]


def _impl(name: str) -> ModuleType:
    if name == "pure":
        return _PURE
    if _COMPILED is None:
        pytest.skip("compiled _codec not built or extensions disabled")
    return _COMPILED


def _batches(size: int, per: int) -> list[list[Any]]:
    msgs = [wire.Gossip((1 << 63) + i, i + 1, 3, bytes([i % 256]) * size) for i in range(MESSAGES)]
    return [msgs[i : i + per] for i in range(0, MESSAGES, per)]


@pytest.fixture(scope="module", params=CASES, ids=CASE_IDS)
def workload(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Messages, their frames and their bare bodies for one (payload size, per frame)."""
    size, per = request.param
    batches = _batches(size, per)
    stream = _PURE.encode_frames(batches)
    return {
        "label": f"{size}B x{per}/frame",
        "batches": batches,
        "flat": [m for b in batches for m in b],
        "stream": stream,
        "reads": [stream[i : i + READ_SIZE] for i in range(0, len(stream), READ_SIZE)],
        "bodies": [wire.encoder.encode(b) for b in batches],
    }


# --- decode ---------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["compiled", "pure"])
def test_decode(benchmark: Any, workload: dict[str, Any], impl: str) -> None:
    """The whole stream in one feed()."""
    mod = _impl(impl)
    benchmark.group = f"decode {workload['label']}"
    stream = workload["stream"]

    def run() -> tuple[list, Any]:
        return mod.FrameDecoder(1 << 20).feed(stream)

    msgs, fault = benchmark(run)
    assert fault is None
    assert msgs == workload["flat"]


def test_decode_baseline(benchmark: Any, workload: dict[str, Any]) -> None:
    """msgspec's bare decode of the same bodies, already split out."""
    benchmark.group = f"decode {workload['label']}"
    bodies = workload["bodies"]
    decode = wire.decoder.decode

    def run() -> list:
        out: list = []
        for body in bodies:
            out += decode(body)
        return out

    assert benchmark(run) == workload["flat"]


@pytest.mark.parametrize("impl", ["compiled", "pure"])
def test_decode_reads(benchmark: Any, workload: dict[str, Any], impl: str) -> None:
    """The stream as 64 KiB socket reads: frames cross read boundaries."""
    mod = _impl(impl)
    benchmark.group = f"decode {workload['label']}"
    reads = workload["reads"]

    def run() -> list:
        dec = mod.FrameDecoder(1 << 20)
        out: list = []
        for data in reads:
            msgs, _ = dec.feed(data)
            out += msgs
        return out

    assert benchmark(run) == workload["flat"]


# --- encode ---------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["compiled", "pure"])
def test_encode_frame(benchmark: Any, workload: dict[str, Any], impl: str) -> None:
    """encode_frame() once per batch (one frame per peer write)."""
    mod = _impl(impl)
    benchmark.group = f"encode {workload['label']}"
    batches = workload["batches"]
    encode_frame = mod.encode_frame

    def run() -> list[bytes]:
        return [encode_frame(b) for b in batches]

    assert b"".join(benchmark(run)) == workload["stream"]


@pytest.mark.parametrize("impl", ["compiled", "pure"])
def test_encode_frames(benchmark: Any, workload: dict[str, Any], impl: str) -> None:
    """encode_frames(): every batch into one buffer."""
    mod = _impl(impl)
    benchmark.group = f"encode {workload['label']}"
    batches = workload["batches"]
    assert benchmark(mod.encode_frames, batches) == workload["stream"]


def test_encode_baseline(benchmark: Any, workload: dict[str, Any]) -> None:
    """msgspec's bare encode of each batch, no length prefix."""
    benchmark.group = f"encode {workload['label']}"
    batches = workload["batches"]
    encode = wire.encoder.encode

    def run() -> list[bytes]:
        return [encode(b) for b in batches]

    assert benchmark(run) == workload["bodies"]


# --- large payloads: one frame copied out, or its parts handed to writelines() -------------

LARGE = [16384, 262144]


@pytest.fixture(scope="module", params=LARGE, ids=[f"{n}B" for n in LARGE])
def large_batch(request: pytest.FixtureRequest) -> list[Any]:
    """Eight Gossip messages of one large payload size: a relay's batch to one peer."""
    n = request.param
    return [wire.Gossip((1 << 63) + i, i + 1, 3, bytes([i]) * n) for i in range(8)]


@pytest.mark.parametrize("impl", ["compiled", "pure"])
@pytest.mark.parametrize("how", ["frame", "parts"])
def test_encode_large(benchmark: Any, large_batch: list[Any], impl: str, how: str) -> None:
    """A batch of large payloads made ready for the socket: ``encode_frame`` copies every
    payload into one frame; ``encode_frame_parts`` leaves them in place for writelines."""
    mod = _impl(impl)
    benchmark.group = f"encode for the socket, 8 x {len(large_batch[0].payload)} B"
    if how == "frame":
        frame = benchmark(mod.encode_frame, large_batch)
    else:
        frame = b"".join(benchmark(mod.encode_frame_parts, large_batch, 1 << 22))
    assert frame == _PURE.encode_frame(large_batch)
