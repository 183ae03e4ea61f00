"""``run_once`` against a scripted cluster: an incomplete run is given ``late`` more
seconds and its completeness taken again, without changing the run's own figures."""

from __future__ import annotations

import base64
import zlib
from typing import Any

import pytest
from support.benchkit import import_bench

_bench = import_bench("gossipfast_bench.bench")
Scenario, run_once = _bench.Scenario, _bench.run_once

N = 3
PUBLISHED = 4


def _bitmap(got: int) -> str:
    """A recorder bitmap: one byte per seq of publisher 0, the first ``got`` delivered."""
    raw = b"\x01" * got + b"\x00" * (PUBLISHED - got)
    return base64.b64encode(zlib.compress(raw, 1)).decode()


def _report(node: int, got: int) -> dict[str, Any]:
    pub = {"published": PUBLISHED, "t0": 0, "t_end": 1_000_000} if node == 0 else None
    empty = _bitmap(0)
    return {
        "count": 0 if node == 0 else got,
        "last": 2_000_000,
        "hist": {"100": got},
        "bitmaps": [_bitmap(got) if node else empty, empty, empty],
        "cpu": 0.1,
        "rss_kib": 1024,
        "payload_sent": got,
        "pub": pub,
        "stats": {},
    }


class ScriptedCluster:
    """Node 0 publishes 4 broadcasts; node 2 has ``at_end`` of them when the run ends and
    all 4 once the bench has polled ``late_after`` times after its report (None: never)."""

    def __init__(self, at_end: int, late_after: int | None) -> None:
        self.n = N
        self.at_end = at_end
        self.late_after = late_after
        self.polls_after_report = 0
        self.reports = 0

    def _node2(self) -> int:
        late = self.late_after is not None and self.polls_after_report >= self.late_after
        return PUBLISHED if self.reports and late else self.at_end

    def gather(self, cmd: dict[str, Any], timeout: float = 30) -> list[dict[str, Any]]:
        kind = cmd["cmd"]
        if kind == "run":
            return [{} for _ in range(N)]
        if kind == "progress":
            if self.reports:
                self.polls_after_report += 1
            counts = [0, PUBLISHED, self._node2()]
            return [
                {"count": c, "published": PUBLISHED if i == 0 else None}
                for i, c in enumerate(counts)
            ]
        assert kind == "report"
        got = self._node2()
        self.reports += 1
        return [_report(0, PUBLISHED), _report(1, PUBLISHED), _report(2, got)]


@pytest.fixture(autouse=True)
def _no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_bench.time, "sleep", lambda s: None)


def _run(cl: ScriptedCluster, late: float = 0.0) -> _bench.RunResult:
    return run_once(cl, Scenario("one", 100, 0.0), 0.0, 0.0, late=late)  # type: ignore[arg-type]


def test_late_copies_are_told_apart_from_lost_ones() -> None:
    cl = ScriptedCluster(at_end=2, late_after=2)
    res = _run(cl, late=5.0)
    assert res.complete == 0.5  # the run's own figure, as at its end
    assert res.delivered_all == 2
    assert res.complete_late == 1.0  # the other two came within the extra wait
    assert cl.reports == 2


def test_lost_copies_stay_missing_after_the_extra_wait() -> None:
    cl = ScriptedCluster(at_end=2, late_after=None)
    res = _run(cl, late=0.3)
    assert res.complete == 0.5
    assert res.complete_late == 0.5
    assert cl.reports == 2


def test_no_extra_wait_when_not_asked_or_complete() -> None:
    cl = ScriptedCluster(at_end=2, late_after=0)
    res = _run(cl)
    assert res.complete == res.complete_late == 0.5
    assert cl.reports == 1
    cl = ScriptedCluster(at_end=PUBLISHED, late_after=None)
    res = _run(cl, late=5.0)
    assert res.complete == res.complete_late == 1.0
    assert cl.reports == 1


def _node_report(node: int, got: int, cpu: float, stats: dict[str, int]) -> dict[str, Any]:
    rep = _report(node, got)
    rep["cpu"] = cpu
    rep["stats"] = stats
    return rep


def test_bytes_per_second_and_cpu_per_100k_deliveries() -> None:
    """Node 0 publishes 4 messages of 1,000 B in 1 ms; nodes 1 and 2 get all of them
    (8 deliveries) by 2 ms; the nodes use 0.1 + 0.2 + 0.3 s of CPU, the server 0.4."""
    reps = [
        _node_report(0, PUBLISHED, 0.1, {}),
        _node_report(1, PUBLISHED, 0.2, {}),
        _node_report(2, PUBLISHED, 0.3, {"disconnects": 1}),
    ]
    res = _bench._summarise(reps, [0], N, size=1000, server_cpu=0.4)
    assert res.window == pytest.approx(0.002)
    assert res.throughput == pytest.approx(4 / 0.002)
    assert res.bytes_per_s == pytest.approx(4 * 1000 / 0.002)
    assert res.deliveries == 8
    assert res.cpu_total_s == pytest.approx(1.0)
    assert res.cpu_per_100k == pytest.approx(1.0 / 8 * 100_000)
    assert res.cpu_s == pytest.approx(0.2)  # the median node, as before
    # Every copy arrived, but a subscriber was cut off: the run counts as incomplete.
    assert res.complete == 1.0 and res.disconnects == 1 and res.incomplete


def test_rows_and_ratios_carry_the_new_figures(capsys: pytest.CaptureFixture[str]) -> None:
    def run(throughput: float, cpu100k: float, complete: float = 1.0) -> _bench.RunResult:
        r = _bench.RunResult(
            published=10,
            delivered_all=10,
            window=1.0,
            throughput=throughput,
            offered=throughput,
            p50_ms=1.0,
            p99_ms=2.0,
            complete=complete,
            rmr=0.0,
            cpu_s=0.1,
            cpu_max_s=0.1,
            rss_mib=10.0,
        )
        r.bytes_per_s = throughput * 100
        r.cpu_per_100k = cpu100k
        return r

    gf = _bench._row_figures([run(100, 2.0), run(300, 4.0), run(200, 3.0)])
    assert gf["throughput"] == 200 and gf["bytes_per_s"] == 20_000
    assert gf["cpu_per_100k"] == 3.0 and gf["incomplete_runs"] == 0
    star = _bench._row_figures([run(400, 1.5), run(400, 1.5, complete=0.5)])
    assert star["incomplete_runs"] == 1
    rows = [
        {"scenario": "one/100B/max", "impl": "gossipfast", "runs": 3, **gf},
        {"scenario": "one/100B/max", "impl": "star", "runs": 2, **star},
    ]
    (ratio,) = _bench.ratio_rows(rows)
    assert ratio["versus"] == "star"
    assert ratio["throughput_ratio"] == pytest.approx(0.5)  # half of the ceiling
    assert ratio["cpu_ratio"] == pytest.approx(2.0)

    cut_off = run(50, 9.0)
    cut_off.disconnects = 2  # every copy arrived, but the server closed subscribers
    broker = _bench._row_figures([cut_off])
    rows.append({"scenario": "one/100B/max", "impl": "redis", "runs": 1, **broker})
    out = {
        "machine": {"nproc": 2, "python": "3", "date": "d", "loadavg": [1.0], "gc_freeze": 0},
        "rows": rows,
        "ratios": _bench.ratio_rows(rows),
        "best": [],
        "messages": [],
    }
    _bench.print_table(out)
    text = capsys.readouterr().out
    assert "MB/s" in text and "CPU s/100k" in text
    assert "0.50x (50% of star)" in text
    assert "4.00x" in text  # 200/s over redis's 50/s
    assert "redis: 1 of 1 runs incomplete; subscribers disconnected by the server 2" in text
