"""The engine's one output sink (``gossipfast._outputs``), both builds."""

from __future__ import annotations

from types import ModuleType

import pytest
from support.buildkit import builds, pick

from gossipfast.wire import Join, Neighbor

BUILDS = builds("_outputs")


@pytest.fixture(params=["compiled", "pure"])
def mod(request: pytest.FixtureRequest) -> ModuleType:
    return pick(BUILDS, request.param, "_outputs")


def test_take_hands_out_everything_in_order_and_starts_empty(mod: ModuleType) -> None:
    out = mod.Outputs()
    out.send("a:1", Join())
    out.send("b:1", Neighbor(True))
    out.send("a:1", Neighbor(False))
    out.close("b:1")
    out.close("b:1")  # asked twice, closed once
    out.emit("ev")
    out.deliveries.append((1, 2, 3, b"x"))
    outbox, closing, deliveries, events = out.take()
    assert outbox == {"a:1": [Join(), Neighbor(False)], "b:1": [Neighbor(True)]}
    assert closing == ["b:1"] and deliveries == [(1, 2, 3, b"x")] and events == ["ev"]
    assert out.take() == ({}, [], [], [])
    assert outbox == {"a:1": [Join(), Neighbor(False)], "b:1": [Neighbor(True)]}  # kept


def test_send_counts_by_type_across_takes(mod: ModuleType) -> None:
    out = mod.Outputs()
    out.send("a:1", Join())
    out.take()
    out.send("a:1", Join())
    out.send("a:1", Neighbor(True))
    assert out.sent == {Join: 2, Neighbor: 1}
