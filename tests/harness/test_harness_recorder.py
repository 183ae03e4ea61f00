"""The bench worker's per-node recorder (no network)."""

from __future__ import annotations

import gc
import struct

import pytest
from support.benchkit import import_bench

worker = import_bench("gossipfast_bench.worker")
Recorder, Worker = worker.Recorder, worker.Worker

_HDR = struct.Struct(">qII")


def _payload(ts: int, pub: int, seq: int) -> bytes:
    return _HDR.pack(ts, pub, seq) + bytes(20)


def test_recorder_notes_deliveries_and_resets_in_place() -> None:
    rec = Recorder(me=1)
    note = rec.on_payload
    note(_payload(0, 0, 5))  # before any run: ignored, no error
    assert rec.count == 0

    rec.reset(3)
    note(_payload(0, 0, 0))
    note(_payload(0, 2, 70_000))  # past the bitmap's first growth step
    note(_payload(0, 1, 3))  # our own message: not counted
    note(_payload(0, 7, 3))  # a publisher index outside the run: ignored
    assert rec.count == 2
    assert rec.bitmaps[0][0] == 1 and rec.bitmaps[2][70_000] == 1
    assert not any(rec.bitmaps[1])
    assert rec.last > 0 and len(rec.lat) == 2
    assert sum(rec.histogram().values()) == 2

    rec.reset(2)  # the same function keeps recording, into the cleared containers
    assert rec.on_payload is note and rec.count == 0 and rec.last == 0
    note(_payload(0, 1, 0))
    note(_payload(0, 0, 9))
    assert rec.count == 1 and rec.bitmaps[0][9] == 1 and len(rec.bitmaps) == 2


class _Impl:
    """The parts of a bench implementation that Worker.prepare touches."""

    def __init__(self) -> None:
        self.index = 0
        self.recorder = Recorder(0)

    def payload_sent(self) -> int:
        return 0


def test_worker_freezes_the_gc_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    if gc.get_freeze_count():
        pytest.skip("something in this process froze the GC already")
    w = Worker(_Impl(), ctl=None)  # type: ignore[arg-type]
    monkeypatch.delenv("GOSSIPFAST_BENCH_GC_FREEZE", raising=False)
    w.prepare({"nodes": 2})
    assert gc.get_freeze_count() == 0
    monkeypatch.setenv("GOSSIPFAST_BENCH_GC_FREEZE", "1")
    freezes = []
    real_freeze = gc.freeze
    # Count calls rather than compare freeze counts: a frozen object that is freed
    # leaves the permanent generation, so the count may drop between two prepares.
    monkeypatch.setattr(gc, "freeze", lambda: (freezes.append(1), real_freeze())[1])
    try:
        w.prepare({"nodes": 2})
        assert gc.get_freeze_count() > 0
        w.prepare({"nodes": 2})  # once per process, not per run
        assert len(freezes) == 1
    finally:
        gc.unfreeze()
