"""``run_once`` against a scripted cluster: an incomplete run is given ``late`` more
seconds and its completeness taken again, without changing the run's own figures."""

from __future__ import annotations

import base64
import zlib
from typing import Any

import pytest

from gossipfast import _bench
from gossipfast._bench import Scenario, run_once

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
