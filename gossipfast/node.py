"""The public asyncio API: :class:`Node`.

A node listens on TCP, joins a cluster through any seed, broadcasts payloads and yields
every broadcast of the other members once. It drives the sans-IO engine
(:mod:`gossipfast.engine`) through :class:`gossipfast.transport.Transport`::

    async with gossipfast.Node("127.0.0.1:0") as node:
        await node.join(["127.0.0.1:7000"])
        await node.broadcast(b"hello")
        async for msg in node.messages():
            print(msg.origin, msg.payload)
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import socket
import ssl as _ssl
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, TypeVar

import msgspec

from ._deliver import message_id as _message_id
from ._eventlog import EventLog
from ._inbox import Inbox
from ._joinseeds import JoinSeeds
from ._meta import checked_meta
from ._receive import DeliveryObserver, Receiver
from ._seeds import is_self
from .config import Config
from .errors import JoinError, NodeClosed
from .stats import Stats
from .transport import Transport, format_address, parse_address
from .types import Event, Gap, Lagged, Member, Message, MessageId, origin_str

log = logging.getLogger("gossipfast")

# `async with Subclass(...) as node` gives the subclass' type.
_N = TypeVar("_N", bound="Node")


class Node:
    """One member of a gossipfast cluster.

    ``listen`` is ``"host:port"`` (port 0 picks a free one). ``node_id`` defaults to a
    readable name unique per process start; ``advertise`` is the address peers dial when
    it differs from the bound one (NAT, containers); ``ssl`` and ``client_ssl`` are
    :class:`ssl.SSLContext` objects for the server and client side of TLS links.

    Use it as an async context manager: entering starts listening, leaving calls
    :meth:`leave`. Subclasses may override :meth:`handle_broadcast`.
    """

    def __init__(
        self,
        listen: str,
        *,
        config: Config | None = None,
        node_id: str | None = None,
        advertise: str | None = None,
        ssl: _ssl.SSLContext | None = None,
        client_ssl: _ssl.SSLContext | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> None:
        self._listen_host, self._listen_port = parse_address(listen)
        if advertise is not None:
            parse_address(advertise)
        self.config: Config = config if config is not None else Config()
        self._meta = checked_meta(meta if meta is not None else {}, self.config.member_meta_max)
        self._node_id = node_id
        self._advertise = advertise
        self._ssl = ssl
        self._client_ssl = client_ssl
        self._address = ""
        self._engine: Any = None
        self._transport: Transport | None = None
        self._seeds = JoinSeeds(
            self.config,
            is_self=self._is_self,
            isolated=lambda: self._engine is not None and not self._engine.active_view,
            join=self._join_more,
        )
        self._origin = 0
        self._incarnation = 0
        self._state = "new"  # new -> running -> closed
        self._inbox = Inbox(self.config)  # what messages() and events() yield
        self._eventlog = EventLog()
        self._receiver = Receiver(
            self._inbox, check=self.validate, remove=self.remove_delivery_observer
        )

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Bind the listening socket and start serving (what ``async with`` does)."""
        if self._state != "new":
            raise NodeClosed("a Node can be started once")
        from .engine import Engine  # imported late: the engine pulls in compiled modules

        self._transport = Transport(
            self.config,
            deliver=self._on_deliveries,
            emit=self._on_events,
            ssl=self._ssl,
            client_ssl=self._client_ssl,
        )
        host, port = await self._transport.listen(self._listen_host, self._listen_port)
        self._listen_port = port  # the real one when 0 was asked for
        self._address = self._advertise or format_address(host, port)
        self._incarnation = time.time_ns()
        if self._node_id is None:
            self._node_id = (
                f"{socket.gethostname().split('.')[0]}@{self._address}/{secrets.token_hex(3)}"
            )
        self._engine = Engine(
            self._address,
            self.config,
            node_id=self._node_id,
            incarnation=self._incarnation,
            rng=random.Random(secrets.randbits(64)),
        )
        self._origin = self._receiver.origin = self._engine.origin
        if self._meta:
            self._engine.members.set_meta(self._meta, 0.0)
        self._receiver.senders = self._engine.members.origins
        if type(self).validate is not Node.validate:
            self._engine.set_validator(self._receiver.validate)
        self._state = "running"
        await self._transport.start(
            self._engine,
            address=self._address,
            node_id=self._node_id,
            incarnation=self._incarnation,
        )
        log.info("node %s listening on %s", self._node_id, self._address)

    async def __aenter__(self: _N) -> _N:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.leave()

    async def leave(self) -> None:
        """Tell every neighbour we are leaving for good, flush, close. Idempotent."""
        if self._state != "running":
            self._state = "closed"
            self._inbox.closed = True
            self._inbox.wake()
            return
        self._state = "closed"
        self._inbox.closed = True
        self._seeds.stop()
        assert self._transport is not None
        log.info("node %s leaving (active view %s)", self._node_id, ", ".join(self.active_view))
        try:
            self._transport.run(self._engine.leave)
        except Exception:
            log.exception("engine.leave failed")
        await self._transport.close()
        self._inbox.wake()

    async def close(self) -> None:
        """Alias of :meth:`leave`."""
        await self.leave()

    def _abort(self) -> None:
        """Vanish without telling anyone (tests use it to simulate a crash)."""
        self._state = "closed"
        self._inbox.closed = True
        self._seeds.stop()
        if self._transport is not None:
            self._transport.abort()
        self._inbox.wake()

    # ------------------------------------------------------------------ identity
    @property
    def address(self) -> str:
        """The advertised ``"host:port"`` (the real port once listening)."""
        return self._address

    @property
    def id(self) -> str:
        """This node's id: readable and unique per process start."""
        return self._node_id or ""

    @property
    def origin(self) -> str:
        """Our origin as 16 hex digits: what :attr:`Message.origin` shows for our broadcasts."""
        return origin_str(self._origin)

    @property
    def incarnation(self) -> int:
        """Start time in ns: tells this start of the node from earlier ones at the address."""
        return self._incarnation

    @property
    def seeds(self) -> tuple[str, ...]:
        """Seeds remembered from :meth:`join` (used again to repair isolation)."""
        return tuple(self._seeds.given)

    @property
    def running(self) -> bool:
        """True between start and leave."""
        return self._state == "running"

    # ------------------------------------------------------------------ membership
    async def join(self, seeds: Iterable[str] | str) -> None:
        """Join the cluster through any of ``seeds``; return once a neighbour is up.

        A seed is ``"host:port"``, ``"[v6]:port"`` or ``"dns:NAME:PORT"``: every A and
        AAAA record of ``NAME`` is a seed, resolved now and again whenever the node is
        isolated (its own address among them is skipped). Raises :class:`ConfigError`
        for a malformed seed, :class:`SeedError` (a :class:`JoinError`) when no seed is
        left to dial (no name resolved, or every seed is this node), :class:`JoinError`
        when no seed answered within ``Config.join_timeout``.
        """
        self._check_running()
        addresses = await self._seeds.addresses(seeds)
        assert self._transport is not None
        self._transport.run(self._engine.join, addresses)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.join_timeout
        while not self._engine.active_view:
            left = deadline - loop.time()
            if left <= 0 or self._state != "running":
                raise JoinError(
                    f"no seed answered within join_timeout={self.config.join_timeout}s: "
                    + ", ".join(addresses)
                )
            fut = self._inbox.waiter()
            try:
                await asyncio.wait_for(fut, left)
            except asyncio.TimeoutError:
                pass
        log.info("node %s joined: active view %s", self._node_id, ", ".join(self.active_view))

    def _join_more(self, addresses: list[str]) -> None:
        """Contact more seeds (fresh DNS records) while running."""
        if self._state == "running" and self._transport is not None:
            self._transport.run(self._engine.join, addresses)

    def _is_self(self, address: str) -> bool:
        return is_self(address, self._address, self._listen_host, self._listen_port)

    @property
    def active_view(self) -> tuple[str, ...]:
        """Addresses of the active view (peers with an open link)."""
        return tuple(self._engine.active_view) if self._engine is not None else ()

    @property
    def passive_view(self) -> tuple[str, ...]:
        """Addresses of the passive view (known backups)."""
        return tuple(self._engine.passive_view) if self._engine is not None else ()

    # ------------------------------------------------------------------ members
    def members(self) -> Mapping[str, Member]:
        """Every live node of the cluster, this one included: node id -> :class:`Member`.

        Eventually consistent: a node that joins is listed everywhere within about one
        flood across the overlay (at most ``Config.member_sync_interval`` times the
        active view size when a flood is lost), one that leaves likewise, and one that
        crashes once its neighbours' failure detector has noticed
        (``Config.heartbeat_timeout``). Empty before :meth:`start`.
        """
        if self._engine is None:
            return MappingProxyType({})
        return MappingProxyType(self._engine.members.members())

    @property
    def meta(self) -> Mapping[str, str]:
        """This node's metadata, as its :class:`Member` carries it."""
        return MappingProxyType(dict(self._meta))

    def set_meta(self, meta: Mapping[str, str]) -> None:
        """Replace this node's metadata; every member list converges to it as to a join.

        ``TypeError`` for keys or values that are not ``str``; :class:`ConfigError`
        when the keys and values (UTF-8) exceed ``Config.member_meta_max`` bytes.
        """
        self._check_running()
        self._meta = checked_meta(meta, self.config.member_meta_max)
        assert self._transport is not None
        self._transport.run(self._engine.members.set_meta, self._meta)

    # ------------------------------------------------------------------ broadcast
    async def broadcast(self, payload: bytes) -> MessageId:
        """Send ``payload`` to every other member; return its id.

        Raises :class:`PayloadTooLarge` above ``Config.max_payload_size``. Awaits only
        while a neighbour's link is congested. The payload is not delivered to this node.
        """
        if self._state != "running":
            self._check_running()
        assert self._transport is not None
        # the engine converts a bytes-like payload and raises PayloadTooLarge before it
        # changes anything
        origin, seq = await self._transport.publish(self._engine.broadcast, payload, 1)
        return _message_id(origin, seq)

    async def broadcast_many(self, payloads: Iterable[bytes]) -> list[MessageId]:
        """Broadcast several payloads at once, in order; return their ids.

        The same as calling :meth:`broadcast` for each, in one engine call and one
        write per neighbour (split into frames of at most ``Config.max_frame_size``):
        the fast way to publish a batch. Every size is checked first; if one is over
        ``Config.max_payload_size``, :class:`PayloadTooLarge` is raised and nothing is
        sent. Awaits once at the end while a neighbour's link is congested.
        """
        if self._state != "running":
            self._check_running()
        if isinstance(payloads, (str, bytes, bytearray, memoryview)):
            raise TypeError(
                "broadcast_many() takes an iterable of payloads; for one payload, broadcast()"
            )
        batch = list(payloads)  # the engine converts bytes-likes to bytes
        if not batch:
            return []
        assert self._transport is not None
        # the engine checks every size before it sends any
        ids = await self._transport.publish(self._engine.broadcast_many, batch, len(batch))
        return [_message_id(o, s) for o, s in ids]

    def handle_broadcast(self, message: Message) -> None:
        """Called once per delivered broadcast; the default feeds :meth:`messages`.

        Override to act on deliveries directly (call ``super()`` to keep
        :meth:`messages` working). Runs inside the event loop: do not block.
        """
        self._inbox.put_message(message)

    def validate(self, message: Message) -> bool:
        """Override to refuse messages: called once per new message, before it is
        delivered, stored or passed on. False (or an exception, logged once) refuses it:
        not delivered here, not relayed, announced or served to other nodes, counted in
        ``stats()["rejected"]``; the default accepts everything. Runs inside the event
        loop on the receive path: keep it short and do not block.
        """
        return True

    def messages(self) -> AsyncIterator[Message | Lagged]:
        """Deliveries in order; a :class:`Lagged` first when older ones were dropped.

        The queue holds at most ``Config.message_queue_size`` deliveries (oldest dropped).
        The iterator ends when the node closes.
        """
        return self._inbox.messages()

    def events(self) -> AsyncIterator[Event | Lagged]:
        """Events: :class:`NeighborUp` and :class:`NeighborDown` as the active view
        changes, and :class:`Gap` when messages were lost for good (sent, but no
        neighbour stores them any more: they will not be delivered here).

        The queue holds the latest 10,000 events; a consumer that falls behind further
        gets a :class:`Lagged` item (how many were dropped, oldest first) before the
        rest. The iterator ends when the node closes.
        """
        return self._inbox.events()

    # ------------------------------------------------------------------ figures
    def stats(self) -> Stats:
        """A snapshot of this node's counters and gauges as a typed :class:`Stats`.

        Engine figures (delivered, dups, recovered, missing, sent, received, ...),
        transport figures (connections, bad_frames, slow_drops, ...) and the node's own
        (lagged, queued, hook_errors). ``Stats`` is also a read-only mapping:
        ``stats["delivered"]`` and ``dict(stats)`` work as with a dict.
        """
        out: dict[str, int] = {}
        if self._engine is not None:
            out.update(self._engine.stats())
        if self._transport is not None:
            out.update(self._transport.counters())
        out.setdefault("delivered", 0)
        if "dups" not in out and "duplicates" in out:
            out["dups"] = out["duplicates"]
        inbox = self._inbox
        out["lagged"] = inbox.messages_in.lagged_total
        out["events_lagged"] = inbox.events_in.lagged_total
        out["queued"] = len(inbox.messages_in.items)
        out["hook_errors"] = self._receiver.hook_errors
        out["active"] = len(self.active_view)
        out["passive"] = len(self.passive_view)
        for reason, n in self._eventlog.down_reasons.items():
            out["neighbor_down_" + reason] = n
        return Stats.from_counters(out)

    def add_delivery_observer(self, observer: DeliveryObserver) -> None:
        """Call ``observer(batch)`` for every batch of deliveries (own broadcasts too).

        ``batch`` is a list of ``(origin, seq, hops, payload)`` tuples. Observers run in
        the event loop on the delivery path: keep them short (the metrics exporter
        counts hops). An observer that raises is removed and logged.
        """
        self._receiver.observers.append(observer)

    def remove_delivery_observer(self, observer: DeliveryObserver) -> None:
        """Stop calling ``observer`` (no error when it was not added)."""
        observers = self._receiver.observers
        if observer in observers:
            observers.remove(observer)

    # ------------------------------------------------------------------ internals
    def _check_running(self) -> None:
        if self._state != "running":
            raise NodeClosed(f"node {self._address or '(not started)'} is not running")

    def _on_deliveries(self, deliveries: list[tuple[int, int, int, bytes]]) -> None:
        if type(self).handle_broadcast is Node.handle_broadcast:
            self._receiver.deliver(deliveries, None)  # no hook: the messages() queue
        else:
            self._receiver.deliver(deliveries, self.handle_broadcast)

    def _on_events(self, events: list[Event]) -> None:
        now = time.monotonic()
        inbox = self._inbox
        for ev in events:
            if type(ev) is Gap and ev.sender is None:
                sender = self._node_of(ev.origin)
                if sender is not None:
                    ev = msgspec.structs.replace(ev, sender=sender)
            self._eventlog.note(self._node_id, ev, now)
            inbox.put_event(ev)
        inbox.wake()

    def _node_of(self, origin: str) -> str | None:
        """The node id behind ``origin`` (16 hex digits) when the member list knows it."""
        return self._receiver.senders.get(int(origin, 16))

    def __repr__(self) -> str:
        return f"<Node {self.id or '?'} {self._state} active={len(self.active_view)}>"


__all__ = ["DeliveryObserver", "Node"]
