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


def test_bench_star_and_16_kib_cell() -> None:
    """The ceiling beside gossipfast and the flood, with 16 KiB payloads."""
    size = 16384
    cmd = [sys.executable, "-m", "gossipfast", "bench", "--nodes", "3", "--runs", "1"]
    cmd += ["--duration", "0.3", "--modes", "one", "--payloads", str(size), "--rates", "500"]
    cmd += ["--impls", "gossipfast,flood,star", "--quiet", "0.5", "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=170)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    rows = {row["impl"]: row for row in out["rows"]}
    assert set(rows) == {"gossipfast", "flood", "star"}
    for row in rows.values():
        assert row["scenario"] == "one/16384B/500/s"
        assert row["published"] > 0
        assert row["complete"] == 1.0
        assert row["bytes_per_s"] == pytest.approx(row["throughput"] * size)
        assert row["deliveries"] == 2 * row["published"]
        assert row["cpu_per_100k"] > 0
    # The star relays nothing: each node gets each message once, straight from node 0.
    assert rows["star"]["rmr"] == 0
    versus = {x["versus"]: x for x in out["ratios"]}
    assert set(versus) == {"flood", "star"}
    assert versus["star"]["throughput_ratio"] == pytest.approx(
        rows["gossipfast"]["throughput"] / rows["star"]["throughput"]
    )
