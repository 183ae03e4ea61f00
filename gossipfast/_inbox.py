"""The node's two application queues: what ``Node.messages()`` and ``Node.events()`` yield.

Both are bounded deques that drop their oldest items when full; a reader that fell
behind gets a :class:`~gossipfast.types.Lagged` (how many were dropped) before the rest.
The readers, and ``Node.join`` waiting for its first neighbour, sleep on futures that
:meth:`Inbox.wake` resolves once per batch.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from typing import Any

from .types import Event, Lagged, Message

# Bound of the events() queue (oldest dropped): membership changes are rare.
EVENT_QUEUE_SIZE = 10_000


class Inbox:
    """The ``messages()`` and ``events()`` queues of one node and the futures waiting on
    them. ``config.message_queue_size`` bounds the messages; ``closed`` (set by the node
    as it closes) ends both iterators once their queue is empty."""

    def __init__(self, config: Any) -> None:
        """Empty queues; ``config`` is the node's :class:`~gossipfast.config.Config`."""
        self.config = config
        self.message_queue: collections.deque[Message] = collections.deque()
        self.lagged = 0  # messages dropped since messages() last said so
        self.lagged_total = 0
        self.event_queue: collections.deque[Event] = collections.deque()
        self.events_lagged = 0  # events dropped since events() last said so
        self.events_lagged_total = 0
        self.waiters: list[asyncio.Future[None]] = []
        self.closed = False

    # -- filling ---------------------------------------------------------------------------

    def put_message(self, message: Message) -> None:
        """Queue one delivery (dropping the oldest when full) and wake the readers."""
        q = self.message_queue
        if len(q) >= self.config.message_queue_size:
            q.popleft()
            self.lagged += 1
            self.lagged_total += 1
        q.append(message)
        self.wake()

    def put_messages(self, msgs: list[Message]) -> None:
        """Queue a batch of deliveries in one pass and wake the readers once."""
        q = self.message_queue
        q.extend(msgs)
        over = len(q) - self.config.message_queue_size
        if over > 0:
            for _ in range(over):
                q.popleft()
            self.lagged += over
            self.lagged_total += over
        self.wake()

    def put_event(self, ev: Event) -> None:
        """Queue one event (dropping the oldest when full); the caller wakes the readers."""
        if len(self.event_queue) >= EVENT_QUEUE_SIZE:
            self.event_queue.popleft()
            self.events_lagged += 1
            self.events_lagged_total += 1
        self.event_queue.append(ev)

    # -- waiting ---------------------------------------------------------------------------

    def waiter(self) -> asyncio.Future[None]:
        """A future the next :meth:`wake` resolves."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        return fut

    def wake(self) -> None:
        """Resolve every waiting future."""
        if self.waiters:
            waiters, self.waiters = self.waiters, []
            for f in waiters:
                if not f.done():
                    f.set_result(None)

    # -- reading ---------------------------------------------------------------------------

    async def messages(self) -> AsyncIterator[Message | Lagged]:
        """The deliveries in order, a :class:`Lagged` first when older ones were dropped;
        ends once the node is closed and the queue empty."""
        q = self.message_queue
        while True:
            if self.lagged:
                dropped, self.lagged = self.lagged, 0
                yield Lagged(dropped)
                continue
            if q:
                yield q.popleft()
                continue
            if self.closed:
                return
            await self.waiter()

    async def events(self) -> AsyncIterator[Event | Lagged]:
        """The events in order, a :class:`Lagged` first when older ones were dropped;
        ends once the node is closed and the queue empty."""
        q = self.event_queue
        while True:
            if self.events_lagged:
                dropped, self.events_lagged = self.events_lagged, 0
                yield Lagged(dropped)
                continue
            if q:
                yield q.popleft()
                continue
            if self.closed:
                return
            await self.waiter()
