"""The sans-IO protocol engine: HyParView membership + Plumtree broadcast + catch-up.

One :class:`Engine` per node. The transport and the simulator drive the same class:
inputs are method calls carrying ``now`` (no clock reads, no I/O); every layer writes
its outputs (``outbox``, ``closing``, ``deliveries``, ``events``) to the one
:class:`~gossipfast._outputs.Outputs` the engine hands it, and the driver takes them
with :meth:`drain` after every input. See ``docs/internals.md`` for the contract.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ._anchor import AnchorTree
from ._hyparview import HyParView, valid_address
from ._members import MemberList
from ._outputs import Outputs
from ._plumtree import Plumtree
from ._timers import TimerWheel
from .config import Config
from .errors import PayloadTooLarge
from .types import Gap, NeighborDown, NeighborUp, make_origin, origin_str
from .wire import (
    Beacon,
    Disconnect,
    ForwardJoin,
    Join,
    Members,
    MemberSync,
    Neighbor,
    NeighborReply,
    Shuffle,
    ShuffleReply,
)

#: Stats names of the membership messages (Plumtree counts its own kinds).
_KIND: dict[type, str] = {
    Join: "join",
    ForwardJoin: "forward_join",
    Neighbor: "neighbor",
    NeighborReply: "neighbor_reply",
    Disconnect: "disconnect",
    Shuffle: "shuffle",
    ShuffleReply: "shuffle_reply",
    Beacon: "beacon",
    Members: "members",
    MemberSync: "member_sync",
}
#: Seconds between two housekeeping passes at most (payload expiry, request expiry).
_MAINTENANCE_MAX = 15.0


def _exact_bytes(payload: object) -> bytes:
    """A bytes-like payload as bytes; ``TypeError`` saying what is expected otherwise
    (``bytes(5)`` would be five zero bytes, ``bytes([1, 2])`` two: never what was meant)."""
    try:
        return memoryview(payload).tobytes()  # type: ignore[arg-type]
    except TypeError:
        hint = " (encode text first, e.g. text.encode())" if isinstance(payload, str) else ""
        raise TypeError(
            "a payload is bytes, bytearray or another bytes-like object, "
            f"not {type(payload).__name__}{hint}"
        ) from None


class Engine:
    """The protocol state of one node; see the module docstring and ``docs/internals.md``.

    Attributes:
        address: this node's advertised ``"host:port"``.
        origin: 64-bit origin of this node's broadcasts.
        out: the outputs of every layer (:class:`~gossipfast._outputs.Outputs`), taken
            with :meth:`drain`.
    """

    def __init__(
        self,
        address: str,
        config: Config,
        *,
        node_id: str,
        incarnation: int,
        rng: random.Random,
    ) -> None:
        """Create a node's engine; nothing is sent before :meth:`join` or a first message."""
        self.address = address
        self.config = config
        self.node_id = node_id
        self.origin = make_origin(node_id, incarnation)
        self.rng = rng
        self.out = Outputs()
        # a small wheel: an idle engine costs a few KB (far timers go to its heap)
        self.timers = TimerWheel(resolution=0.001, slots=256)
        self.pt = Plumtree(self.origin, config, self.timers, self.out)
        self.hv = HyParView(
            address, config, rng, self.timers, self.out, up=self._up, down=self._down
        )
        self.members = MemberList(
            node_id,
            address,
            incarnation,
            config,
            self.timers,
            self.out,
            tree=self._tree_peers,
        )
        self._eof = False  # the link being dropped closed without a goodbye
        self.tree: AnchorTree | None = None
        if config.tree_beacon_interval > 0.0:
            self.tree = AnchorTree(
                self.origin, config.tree_beacon_interval, self.timers, self.pt, self.out
            )
        self._received: dict[str, int] = dict.fromkeys(_KIND.values(), 0)
        self._bad = 0
        self._ups = 0
        self._downs = 0
        self._gaps = 0
        self._broadcasts = 0
        self._maint_armed = False
        self._maint_interval = min(_MAINTENANCE_MAX, max(1.0, config.store_max_age / 8.0))
        self._ihave_now = config.ihave_interval <= 0.0
        self._other = self._membership  # one bound method, not one per frame

    # -- what a layer hears of the others ---------------------------------------------------

    def _tree_peers(self) -> tuple[str, ...]:
        return self.pt.eager

    def _up(self, peer: str, now: float) -> None:
        self._ups += 1
        self.out.events.append(NeighborUp(peer))
        self.pt.neighbor_up(peer, now)
        if self.tree is not None:
            self.tree.neighbor_up(peer, now)
        self.members.link_up(peer, now)

    def _down(self, peer: str, reason: str, now: float) -> None:
        self._downs += 1
        self.out.events.append(NeighborDown(peer, reason))  # type: ignore[arg-type]
        self.pt.neighbor_down(peer)
        if self.tree is not None:
            self.tree.neighbor_down(peer, reason, now)
        # a link closed without a Disconnect: the process at its end is gone (or cut us
        # off); the member list takes it for a suspect as for a failed link
        self.members.link_down(peer, "failed" if self._eof else reason, now)

    def _start(self, now: float) -> None:
        if not self._maint_armed:
            self._maint_armed = True
            self.timers.schedule(now + self._maint_interval, (self._timer_maintenance,))
            self.pt.catchup.start(now)
            self.members.start(now)
        self.hv.start(now)
        if self.tree is not None:
            self.tree.start(now)

    # -- inputs ------------------------------------------------------------------------------

    def join(self, seeds: list[str], now: float) -> None:
        """Contact ``seeds`` (remembered for isolation repair) to enter the overlay."""
        self._start(now)
        self.hv.join(list(seeds), now)

    def on_frame(self, peer: str, msgs: list, now: float) -> None:
        """Handle a decoded batch of messages from ``peer``; never raises on bad input."""
        hv = self.hv
        if hv.left:
            return
        if not valid_address(peer) or peer == self.address or type(msgs) is not list:
            self._bad += 1
            return
        if not self._maint_armed:
            self._start(now)
        if hv.graveyard:
            hv.alive(peer)
        pt = self.pt
        pt.on_frame(peer, msgs, now, self._other)
        if self._ihave_now and pt.ihaves.queues:
            pt.ihaves.flush()
        if pt.gaps:
            self._emit_gaps()

    def _emit_gaps(self) -> None:
        # messages Plumtree learnt lost for good (a Gone): one Gap per origin and input
        pt = self.pt
        for o, count in pt.gaps:
            self._gaps += 1
            sender = self.node_id if o == self.origin else None
            self.out.events.append(Gap(origin_str(o), sender, count))
        pt.gaps = []

    def _membership(self, peer: str, msg: object, now: float) -> None:
        # a non-Plumtree message of a frame, in its place in the frame
        name = _KIND.get(type(msg))
        if name is None:  # Hello/Ping/Pong or garbage: not the engine's business
            self._bad += 1
            return
        self._received[name] += 1
        t = type(msg)
        if t is Beacon:
            if self.tree is not None:
                self.tree.on_beacon(peer, msg, now)
            return
        if t is Members or t is MemberSync:
            if peer not in self.hv.active:
                return  # member news only over active links (a late one after a drop)
            if isinstance(msg, Members):
                self.members.on_members(peer, msg, now)
            elif isinstance(msg, MemberSync):
                self.members.on_sync(peer, msg, now)
            return
        self.hv.on_message(peer, msg, now)

    def on_disconnected(self, peer: str, reason: str, now: float) -> None:
        """The link to ``peer`` is gone: ``"failed"`` (dead) or ``"closed"`` (clean EOF)."""
        self._eof = reason == "closed"
        try:
            self.hv.on_disconnected(peer, reason, now)
        finally:
            self._eof = False

    def broadcast(self, payload: bytes, now: float) -> tuple[int, int]:
        """Broadcast ``payload`` to the cluster; returns its id ``(origin, seq)``.

        Raises :class:`~gossipfast.errors.PayloadTooLarge` over ``max_payload_size``.
        """
        # the payload store holds exact bytes (a typed field in the compiled build); the
        # size is that of the bytes (a memoryview's len counts items, not bytes)
        if type(payload) is not bytes:
            payload = _exact_bytes(payload)
        if len(payload) > self.config.max_payload_size:
            raise PayloadTooLarge(len(payload), self.config.max_payload_size)
        if not self._maint_armed:
            self._start(now)
        self._broadcasts += 1
        return self.pt.broadcast(payload, now)

    def broadcast_many(self, payloads: list[bytes], now: float) -> list[tuple[int, int]]:
        """Broadcast each payload in order; returns their ids (consecutive seqs).

        Every size is checked first: on :class:`~gossipfast.errors.PayloadTooLarge`
        nothing is sent.
        """
        limit = self.config.max_payload_size
        exact = []  # one pass: converted to bytes, then sized (as in broadcast)
        for p in payloads:
            if type(p) is not bytes:
                p = _exact_bytes(p)
            if len(p) > limit:
                raise PayloadTooLarge(len(p), limit)
            exact.append(p)
        payloads = exact
        if not self._maint_armed:
            self._start(now)
        self._broadcasts += len(payloads)
        bc = self.pt.broadcast
        return [bc(p, now) for p in payloads]

    def tick(self, now: float) -> None:
        """Fire the timers due at ``now``.

        Every layer puts its timers on the shared wheel as ``(handler, *args)`` tuples, its
        own methods: each is called back as ``handler(item, now)``, so a layer adds a timer
        without a change here.
        """
        for item in self.timers.expire(now):
            item[0](item, now)
        self.pt.control.flush_grafts()

    def _timer_maintenance(self, item: tuple, now: float) -> None:
        self.pt.expire(now)
        self.timers.schedule(now + self._maint_interval, (self._timer_maintenance,))

    def next_deadline(self) -> float | None:
        """Earliest time :meth:`tick` has something to do (None: no timer pending)."""
        return self.timers.next_deadline()

    def set_validator(self, validator: Callable[[int, int, int, bytes], bool] | None) -> None:
        """Check each new message with ``validator(origin, seq, hops, payload)`` before
        it is stored, delivered, pushed or announced: False rejects it (None: no check)."""
        self.pt.validator = validator

    def leave(self, now: float) -> None:
        """Tell every neighbour we leave (``Disconnect(alive=False)``); then go quiet."""
        self.pt.ihaves.flush()
        self.members.leave(now)
        self.hv.leave(now)
        if self.tree is not None:
            self.tree.stop()

    def drain(self) -> tuple[dict[str, list], list[str], list, list]:
        """Take the outputs accumulated so far: ``(outbox, closing, deliveries, events)``.

        Read them before the next input: an empty container is handed out and kept (most
        inputs produce only some kinds of output; the driver drains after every one).
        """
        return self.out.take()

    # -- views and figures ---------------------------------------------------------------

    @property
    def active_view(self) -> tuple[str, ...]:
        """Peers of the active view (open links, broadcast tree candidates)."""
        return tuple(self.hv.active)

    @property
    def passive_view(self) -> tuple[str, ...]:
        """Peers of the passive view (backups)."""
        return tuple(self.hv.passive)

    @property
    def eager_peers(self) -> tuple[str, ...]:
        """Active peers that get payloads pushed (the broadcast tree)."""
        return self.pt.eager

    @property
    def lazy_peers(self) -> tuple[str, ...]:
        """Active peers that only get IHave announcements."""
        return self.pt.lazy

    def stats(self) -> dict[str, int]:
        """Counters and gauges of this node."""
        pt = self.pt
        hv = self.hv
        s: dict[str, int] = {}
        sent = self.out.sent
        for t, name in _KIND.items():
            s["sent_" + name] = sent.get(t, 0)
        for name, n in self._received.items():
            s["received_" + name] = n
        s["sent_gossip"] = pt.s_gossip
        s["sent_ihave"] = pt.s_ihave
        s["sent_graft"] = pt.s_graft
        s["sent_prune"] = pt.s_prune
        s["sent_digest"] = pt.s_digest
        s["sent_want"] = pt.s_want
        s["received_gossip"] = pt.r_gossip
        s["received_ihave"] = pt.r_ihave
        s["received_graft"] = pt.r_graft
        s["received_prune"] = pt.r_prune
        s["received_digest"] = pt.r_digest
        s["received_want"] = pt.r_want
        s["sent_gone"] = pt.s_gone
        s["received_gone"] = pt.r_gone
        s["sent"] = sum(v for k, v in s.items() if k.startswith("sent_"))
        s["received"] = sum(v for k, v in s.items() if k.startswith("received_"))
        s["broadcasts"] = self._broadcasts
        s["delivered"] = pt.delivered
        s["duplicates"] = pt.duplicates
        s["stale_drops"] = pt.dedup.stale
        s["grafts_sent"] = pt.grafts
        s["prunes_sent"] = pt.s_prune
        s["ihaves_sent"] = pt.s_ihave
        s["recovered"] = pt.recovered
        s["catch_up_requested"] = pt.catch_up_requested
        s["lost"] = pt.lost
        s["gaps"] = self._gaps
        s["optimizations"] = pt.optimizations
        s["early_grafts"] = pt.graft_delay.early
        s["graft_delay_ms"] = round(pt.graft_delay.value * 1000.0)
        s["fifo_skipped"] = pt.fifo_order.skipped
        s["ihave_dropped"] = pt.ihave_dropped
        s["grafts_withheld"] = pt.grafts_withheld
        s["answers_refused"] = pt.answers_refused
        s["rejected"] = pt.rejected
        tree = self.tree
        mem = self.members
        s["bad_messages"] = self._bad + pt.bad + hv.bad + (tree.bad if tree else 0) + mem.bad
        s["members"] = len(mem.records) - len(mem.dead_since)
        s["members_dead"] = len(mem.dead_since)
        s["members_refused"] = mem.refused
        s["member_syncs"] = mem.syncs
        s["member_tables"] = mem.tables
        s["tree_elections"] = tree.elections if tree else 0
        s["tree_hops"] = tree.hops if tree and tree.known else -1
        s["neighbor_up"] = self._ups
        s["neighbor_down"] = self._downs
        s["shuffles"] = hv.shuffles
        s["rejoins"] = hv.rejoins
        s["escalations"] = hv.escalations
        s["probes"] = hv.probes
        s["graveyard"] = len(hv.graveyard)
        s["active"] = len(hv.active)
        s["passive"] = len(hv.passive)
        s["eager"] = len(pt.eager)
        s["lazy"] = len(pt.lazy)
        s["missing"] = len(pt.missing)
        s["store_messages"] = len(pt.store)
        s["store_bytes"] = pt.store.nbytes
        s["origins"] = len(pt.dedup)
        s["origins_refused"] = pt.dedup.refused
        s["origins_throttled"] = pt.dedup.throttled
        return s


__all__ = ["Engine"]
