"""Smoke test of ``gossipfast bench`` with tiny parameters (loopback only)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.network, pytest.mark.timeout(180)]


@pytest.mark.parametrize("gc_freeze", [False, True], ids=["gc-default", "gc-freeze"])
def test_bench_json_tiny_cluster(gc_freeze: bool) -> None:
    """Three processes per implementation, one short run: the JSON has the table rows."""
    cmd = [
        sys.executable,
        "-m",
        "gossipfast",
        "bench",
        "--nodes",
        "3",
        "--runs",
        "1",
        "--duration",
        "0.2",
        "--modes",
        "one",
        "--payloads",
        "100",
        "--rates",
        "2000",
        "--impls",
        "gossipfast,flood,aiogossip",
        # An interpreter that surely cannot import aiogossip: it must be skipped, not fail.
        "--others-python",
        sys.executable + "-does-not-exist",
        "--quiet",
        "0.5",
        "--json",
    ]
    if gc_freeze:
        cmd.append("--gc-freeze")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=170)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    rows = {(row["scenario"], row["impl"]): row for row in out["rows"]}
    assert set(rows) == {("one/100B/2000/s", "gossipfast"), ("one/100B/2000/s", "flood")}
    for row in rows.values():
        assert row["published"] > 0
        assert 0 < row["complete"] <= 1
        assert row["complete"] <= row["complete_late"] <= 1  # late copies only add
        assert row["throughput"] > 0
        assert row["p50_ms"] is not None and row["p50_ms"] > 0
    assert any("skipped aiogossip" in m for m in out["messages"])
    assert [r["versus"] for r in out["ratios"]] == ["flood"]
    assert out["machine"]["nproc"] >= 1
    assert out["machine"]["gc_freeze"] is gc_freeze
