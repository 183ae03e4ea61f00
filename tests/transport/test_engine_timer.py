"""EngineTimer (gossipfast._engine_timer) on a fake loop."""

from __future__ import annotations

from collections.abc import Callable

from gossipfast._engine_timer import EngineTimer


class FakeHandle:
    def __init__(self, when: float, fn: Callable[[], None]) -> None:
        self.when = when
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    def __init__(self) -> None:
        self.now = 0.0
        self.handles: list[FakeHandle] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, fn: Callable[[], None]) -> FakeHandle:
        h = FakeHandle(when, fn)
        self.handles.append(h)
        return h

    def live(self) -> list[float]:
        return [h.when for h in self.handles if not h.cancelled]

    def run_until(self, t: float) -> None:
        self.now = t
        for h in list(self.handles):
            if not h.cancelled and h.when <= t:
                h.cancelled = True
                h.fn()


def make() -> tuple[EngineTimer, FakeLoop, list[float]]:
    loop = FakeLoop()
    fired: list[float] = []
    return EngineTimer(loop, lambda: fired.append(loop.now)), loop, fired  # type: ignore[arg-type]


def test_arming_at_the_same_deadline_keeps_the_timer() -> None:
    timer, loop, fired = make()
    timer.arm(1.0)
    timer.arm(1.0)
    assert len(loop.handles) == 1
    timer.arm(0.5)  # moved: the old one is cancelled
    assert loop.live() == [0.5] and len(loop.handles) == 2
    loop.run_until(0.5)
    assert fired == [0.5] and timer.last_tick == 0.5 and loop.live() == []


def test_none_cancels() -> None:
    timer, loop, fired = make()
    timer.arm(1.0)
    timer.arm(None)
    timer.cancel()  # harmless twice
    loop.run_until(2.0)
    assert fired == [] and loop.live() == []
    timer.arm(3.0)  # armed again after a cancel
    assert loop.live() == [3.0]


def test_a_deadline_is_never_before_a_millisecond_after_the_last_tick() -> None:
    timer, loop, fired = make()
    timer.arm(1.0)
    loop.run_until(1.0)
    assert fired == [1.0]
    timer.arm(0.999)  # a wheel's early report: no spinning
    assert loop.live() == [1.001]
