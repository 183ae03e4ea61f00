# cython: annotation_typing=False
"""The outputs of a node's engine: one sink that every layer writes to.

The engine hands the same :class:`Outputs` to each layer (Plumtree and its catch-up,
HyParView, the anchored tree, the member list). During one input a layer queues wire
messages with :meth:`Outputs.send` (Plumtree appends to ``outbox`` itself on its hot
path), asks for a link to be closed with :meth:`Outputs.close`, reports events with
:meth:`Outputs.emit`, and Plumtree appends deliveries. The driver takes all four with
:meth:`Outputs.take` after every input.

Hot module (compiled by Cython with ``_outputs.pxd``; nothing here imports Cython).
"""

from __future__ import annotations


class Outputs:
    """What the layers of one engine produced since the driver last took it.

    Attributes:
        outbox: peer -> wire messages to send, in order.
        closing: peers whose link the driver closes after flushing the outbox.
        deliveries: ``(origin, seq, hops, payload)`` of every new broadcast received.
        events: public events (``NeighborUp``, ``MemberDown``, ``Gap``, ...) in order.
        sent: message type -> how many :meth:`send` queued (Plumtree counts its own).
    """

    def __init__(self) -> None:
        """Empty outputs."""
        self.outbox: dict[str, list] = {}
        self.closing: list[str] = []
        self.deliveries: list[tuple[int, int, int, bytes]] = []
        self.events: list = []
        self.sent: dict[type, int] = {}

    def send(self, peer: str, msg: object) -> None:
        """Queue ``msg`` for ``peer`` and count it by type."""
        lst = self.outbox.get(peer)
        if lst is None:
            self.outbox[peer] = [msg]
        else:
            lst.append(msg)
        t = type(msg)
        self.sent[t] = self.sent.get(t, 0) + 1

    def close(self, peer: str) -> None:
        """Ask the driver to close the link to ``peer`` once its outbox is flushed."""
        if peer not in self.closing:
            self.closing.append(peer)

    def emit(self, event: object) -> None:
        """Report a public event."""
        self.events.append(event)

    def take(self) -> tuple[dict[str, list], list[str], list, list]:
        """Take ``(outbox, closing, deliveries, events)`` and start empty ones.

        A container that is empty is handed out and kept (most inputs produce only some
        kinds of output); read the four before the next input.
        """
        out = (self.outbox, self.closing, self.deliveries, self.events)
        if self.outbox:
            self.outbox = {}
        if self.closing:
            self.closing = []
        if self.deliveries:
            self.deliveries = []
        if self.events:
            self.events = []
        return out


__all__ = ["Outputs"]
