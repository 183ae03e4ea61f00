"""What the engine is told when a connection that was a link ends (no sockets)."""

from __future__ import annotations

import pytest

from gossipfast.transport import loss_report


@pytest.mark.parametrize(
    ("reason", "exc", "ready", "report"),
    [
        ("engine", None, True, None),
        ("idle", None, True, None),
        ("replaced", None, True, None),
        ("shutdown", OSError(), True, None),
        ("slow", None, True, "slow"),
        (None, None, True, "closed"),
        (None, None, False, "failed"),
        (None, ConnectionResetError(), True, "failed"),
        ("heartbeat", None, True, "failed"),
    ],
)
def test_what_the_engine_is_told_when_a_link_ends(
    reason: str | None, exc: Exception | None, ready: bool, report: str | None
) -> None:
    assert loss_report(reason, exc, ready) == report
