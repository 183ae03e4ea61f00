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


class _Queue:
    """One bounded queue: its items, its bound, and the items dropped (since the reader
    last said so, and in all)."""

    __slots__ = ("items", "lagged", "lagged_total", "limit")

    def __init__(self, limit: int) -> None:
        self.items: collections.deque[Any] = collections.deque()
        self.limit = limit
        self.lagged = 0
        self.lagged_total = 0

    def put(self, item: Any) -> None:
        """Append ``item``, dropping the oldest when full."""
        if len(self.items) >= self.limit:
            self.items.popleft()
            self.lagged += 1
            self.lagged_total += 1
        self.items.append(item)

    def put_many(self, items: list[Any]) -> None:
        """Append ``items`` in one pass, then drop the oldest beyond the bound."""
        q = self.items
        q.extend(items)
        over = len(q) - self.limit
        if over > 0:
            for _ in range(over):
                q.popleft()
            self.lagged += over
            self.lagged_total += over


class Inbox:
    """The ``messages()`` and ``events()`` queues of one node and the futures waiting on
    them. ``config.message_queue_size`` bounds the messages; ``closed`` (set by the node
    as it closes) ends both iterators once their queue is empty."""

    def __init__(self, config: Any) -> None:
        """Empty queues; ``config`` is the node's :class:`~gossipfast.config.Config`."""
        self.messages_in = _Queue(config.message_queue_size)
        self.events_in = _Queue(EVENT_QUEUE_SIZE)
        self.waiters: list[asyncio.Future[None]] = []
        self.closed = False

    # -- filling ---------------------------------------------------------------------------

    def put_message(self, message: Message) -> None:
        """Queue one delivery (dropping the oldest when full) and wake the readers."""
        self.messages_in.put(message)
        self.wake()

    def put_messages(self, msgs: list[Message]) -> None:
        """Queue a batch of deliveries in one pass and wake the readers once."""
        self.messages_in.put_many(msgs)
        self.wake()

    def put_event(self, ev: Event) -> None:
        """Queue one event (dropping the oldest when full); the caller wakes the readers."""
        self.events_in.put(ev)

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

    def messages(self) -> AsyncIterator[Message | Lagged]:
        """The deliveries in order, a :class:`Lagged` first when older ones were dropped;
        ends once the node is closed and the queue empty."""
        return self._read(self.messages_in)

    def events(self) -> AsyncIterator[Event | Lagged]:
        """The events in order, a :class:`Lagged` first when older ones were dropped;
        ends once the node is closed and the queue empty."""
        return self._read(self.events_in)

    async def _read(self, box: _Queue) -> AsyncIterator[Any]:
        q = box.items
        while True:
            if box.lagged:
                dropped, box.lagged = box.lagged, 0
                yield Lagged(dropped)
                continue
            if q:
                yield q.popleft()
                continue
            if self.closed:
                return
            await self.waiter()
