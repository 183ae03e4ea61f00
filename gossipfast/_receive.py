"""What a node does with what its engine delivers: every batch to the delivery observers,
each message to the ``handle_broadcast`` hook or the ``messages()`` queue, and each new
message to the ``validate`` hook. A hook or observer that raises never stops the others:
its errors are counted and logged once (an observer is removed)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ._deliver import call_hook, message_id, messages
from ._inbox import Inbox
from .types import Message, origin_str

log = logging.getLogger("gossipfast")

#: A delivery observer: called once per batch with ``(origin, seq, hops, payload)`` tuples.
DeliveryObserver = Callable[[list[tuple[int, int, int, bytes]]], None]


class Receiver:
    """The receive side of one node: makes :class:`Message` objects of the engine's
    deliveries (``origin``: ours; ``senders``: origin -> node id, the member list's) and
    hands them to the application."""

    def __init__(
        self,
        inbox: Inbox,
        *,
        check: Callable[[Message], bool],
        remove: Callable[[DeliveryObserver], None],
    ) -> None:
        """Deliveries without a hook go to ``inbox``; ``check(message)`` is the validate
        hook; ``remove(observer)`` drops an observer that raised."""
        self.inbox = inbox
        self.check = check
        self.remove = remove
        self.origin = 0
        self.origin_names: dict[int, str] = {}
        self.senders: dict[int, str] = {}
        # Observers see every delivery batch (metrics); empty on the common path.
        self.observers: list[DeliveryObserver] = []
        self.hook_errors = 0
        self.validate_errors = 0

    def deliver(
        self,
        deliveries: list[tuple[int, int, int, bytes]],
        hook: Callable[[Message], None] | None,
    ) -> None:
        """Hand a batch to the observers, then to ``hook`` (None: the queue)."""
        if self.observers:
            self.observe(deliveries)
        if hook is None:
            # No hook: queue the messages in one pass, wake once.
            msgs = messages(deliveries, self.origin, self.origin_names, self.senders)
            self.inbox.put_messages(msgs)
            return
        failures, exc = call_hook(hook, deliveries, self.origin, self.origin_names, self.senders)
        if failures:
            # A failing user hook does not stop delivery to the others.
            if self.hook_errors == 0:
                log.error("handle_broadcast raised (further errors not logged)", exc_info=exc)
            self.hook_errors += failures

    def observe(self, deliveries: list[tuple[int, int, int, bytes]]) -> None:
        """Call every observer with the batch; one that raises is logged and removed."""
        for obs in list(self.observers):
            try:
                obs(deliveries)
            except Exception:
                log.exception("delivery observer %r raised; removed", obs)
                self.remove(obs)

    def validate(self, origin: int, seq: int, hops: int, payload: bytes) -> bool:
        """The engine's validator: ``check(message)`` for one new message; an exception
        refuses it."""
        sender = self.senders.get(origin)
        m = Message(message_id(origin, seq), origin_str(origin), payload, hops, sender)
        try:
            return bool(self.check(m))
        except Exception:
            if not self.validate_errors:
                log.exception("validate raised; the message is refused (further errors not logged)")
            self.validate_errors += 1
            return False
