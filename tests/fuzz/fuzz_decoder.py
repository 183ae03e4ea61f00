"""Coverage-guided fuzzing of the frame decoder and the engine with atheris.

Each input is split into socket reads (the first byte picks the cut points), fed to a
``FrameDecoder`` and, when it decodes, to a real ``Engine``; any exception is a crash.
The compiled and the pure decoder must agree on every input when both are present.

Run (atheris: ``pip install atheris``; it needs a clang-built CPython wheel or compiler)::

    python tests/fuzz/fuzz_decoder.py -atheris_runs=200000 /tmp/gossipfast-corpus
    GOSSIPFAST_NO_EXTENSIONS=1 python tests/fuzz/fuzz_decoder.py -atheris_runs=200000

The corpus directory (created if missing) keeps the inputs that found new coverage;
``-max_total_time=600`` bounds the run by time instead; ``GOSSIPFAST_ATHERIS_ALL=1``
instruments every loaded function (the engine's coverage guides the pure build too).
Crashes are written as ``crash-<hash>`` files in the working directory and reproduce
with ``python tests/fuzz/fuzz_decoder.py crash-<hash>``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import random
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from gossipfast import _hot, wire
    from gossipfast._codec import FrameDecoder, encode_frame
    from gossipfast.config import Config
    from gossipfast.engine import Engine

ME = "127.0.0.1:7000"
PEERS = [f"127.0.0.1:{7001 + i}" for i in range(3)]
CFG = Config(
    store_max_messages=200,
    store_max_bytes=64 << 10,
    max_payload_size=32 << 10,
    max_frame_size=64 << 10,
)


def _pure_codec():  # type: ignore[no-untyped-def]
    source = Path(wire.__file__).with_name("_codec.py")
    spec = importlib.util.spec_from_file_location("gossipfast_pure_codec_atheris", source)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "gossipfast"
    spec.loader.exec_module(mod)
    return mod


_PURE = _pure_codec() if _hot.is_compiled(importlib.import_module("gossipfast._codec")) else None


def _engine() -> Engine:
    e = Engine(ME, CFG, node_id=ME, incarnation=1, rng=random.Random(1))
    for p in PEERS:
        e.on_frame(p, [wire.Neighbor(True)], 0.0)
    e.drain()
    return e


ENGINE = _engine()
NOW = [0.0]


def test_one_input(data: bytes) -> None:
    """Decode ``data`` in reads cut by its first byte; hand what decodes to the engine."""
    global ENGINE
    if not data:
        return
    step = data[0] or len(data)
    body = data[1:]
    chunks = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
    dec = FrameDecoder(CFG.max_frame_size)
    twin = _PURE.FrameDecoder(CFG.max_frame_size) if _PURE is not None else None
    for chunk in chunks:
        msgs, fault = dec.feed(chunk)
        if dec.buffered > CFG.max_frame_size + 4:
            raise AssertionError("decoder buffered more than one frame")
        if twin is not None:
            got, tfault = twin.feed(chunk)
            if got != msgs or (tfault is None) != (fault is None):
                raise AssertionError("compiled and pure decoders disagree")
        if msgs:
            NOW[0] += 0.01
            ENGINE.on_frame(PEERS[data[0] % 3], msgs, NOW[0])
            ENGINE.tick(NOW[0])
            ENGINE.drain()
        if fault is not None:
            break
    if len(ENGINE.active_view) < 2 or NOW[0] > 1e6:
        ENGINE = _engine()
        NOW[0] = 0.0


def _seed_corpus(directory: Path) -> None:
    """Write a few valid frames of every message type as a starting corpus."""
    directory.mkdir(parents=True, exist_ok=True)
    seeds = [
        [wire.Gossip(5, 1, 0, b"payload")],
        [wire.IHave([5, 2, 3, 1]), wire.Graft([5, 2])],
        [wire.Prune([5]), wire.Digest([5, 3]), wire.Want([5, 1, 3])],
        [wire.Join(), wire.ForwardJoin("127.0.0.1:9000", 6)],
        [wire.Neighbor(True), wire.NeighborReply(False), wire.Disconnect(True)],
        [wire.Shuffle("127.0.0.1:9001", 3, ["127.0.0.1:9002"]), wire.ShuffleReply([])],
        [wire.Hello(1, "gossipfast", "n", "127.0.0.1:9003", 1), wire.Ping(1), wire.Pong(1)],
    ]
    for i, msgs in enumerate(seeds):
        path = directory / f"seed-{i}"
        if not path.exists():
            path.write_bytes(bytes([0]) + encode_frame(msgs))


def main() -> None:
    """Entry point: atheris parses the libFuzzer options in ``sys.argv``."""
    dirs = [a for a in sys.argv[1:] if not a.startswith("-") and not os.path.isfile(a)]
    for d in dirs:
        _seed_corpus(Path(d))
    if os.environ.get("GOSSIPFAST_ATHERIS_ALL"):
        # Coverage of every loaded Python function (the engine too in the pure build):
        # slower to start, better guidance.
        atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
