"""The engine's timers as one event-loop timer: armed at the engine's next deadline
after every input, re-armed only when that deadline moved."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class EngineTimer:
    """One ``loop.call_at`` at the deadline given to :meth:`arm`; ``fire()`` then.

    A deadline is never earlier than 1 ms after the last firing: a timer wheel may
    report one up to a slot early, and the transport must not spin on it.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, fire: Callable[[], None]) -> None:
        self._loop = loop
        self._fire = fire
        self._handle: asyncio.TimerHandle | None = None
        self._at: float | None = None
        #: When it last fired (loop time).
        self.last_tick = 0.0

    def arm(self, when: float | None) -> None:
        """Fire at ``when`` (None: not at all) instead of any earlier arming."""
        if when is None:
            self.cancel()
            return
        when = max(when, self.last_tick + 0.001)
        if self._handle is not None:
            if self._at == when:
                return
            self._handle.cancel()
        self._at = when
        self._handle = self._loop.call_at(when, self._on_timer)

    def cancel(self) -> None:
        """Fire no more until armed again."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self._at = None

    def _on_timer(self) -> None:
        self._handle = None
        self._at = None
        self.last_tick = self._loop.time()
        self._fire()
