"""``gossipfast bench``: the command of the gossipfast-bench distribution, a smoke test
with tiny parameters (loopback only), its workers under ``python -m``, and the one line
the library's CLI prints when the distribution is not installed."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner
from support.benchkit import need_bench

from gossipfast import cli

pytestmark = [pytest.mark.timeout(180)]


def test_bench_command_comes_from_the_bench_distribution() -> None:
    need_bench()
    from gossipfast_bench.bench import bench_command

    assert cli.cli.get_command(click.Context(cli.cli), "bench") is bench_command


def test_without_the_distribution_bench_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli, "_plugin", lambda name: None)  # as if not installed
    r = CliRunner().invoke(cli.cli, ["bench", "--impls", "gossipfast", "--runs", "1"])
    assert r.exit_code == 1
    (line,) = r.output.strip().splitlines()
    assert "gossipfast-bench" in line and "pip install -e ./bench" in line
    assert "bench" in cli.cli.list_commands(click.Context(cli.cli))


@pytest.mark.network
@pytest.mark.parametrize("impl", ["gossipfast", "flood"])
def test_worker_runs_under_python_dash_m(impl: str) -> None:
    """A worker started as ``python -m gossipfast_bench.worker`` listens, answers, and
    exits when its stdin closes."""
    need_bench()
    p = subprocess.Popen(
        [sys.executable, "-m", "gossipfast_bench.worker", impl, "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdin is not None and p.stdout is not None
        addr = json.loads(p.stdout.readline())["addr"]  # its first line: where it listens
        assert addr.startswith("127.0.0.1:")
        p.stdin.write(json.dumps({"cmd": "view"}) + "\n")
        p.stdin.flush()
        assert json.loads(p.stdout.readline()) == {"view": []}
        p.stdin.close()
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.network
@pytest.mark.parametrize("gc_freeze", [False, True], ids=["gc-default", "gc-freeze"])
def test_bench_json_tiny_cluster(gc_freeze: bool) -> None:
    """Three processes per implementation, one short run: the JSON has the table rows."""
    need_bench()
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


@pytest.mark.network
def test_bench_star_and_16_kib_cell() -> None:
    """The ceiling beside gossipfast and the flood, with 16 KiB payloads."""
    need_bench()
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
