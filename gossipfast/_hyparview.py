# cython: annotation_typing=False
"""HyParView membership state machine (sans-IO).

HyParView (Leitão, Pereira, Rodrigues, DSN 2007): a small symmetric *active* view (open
links, used for broadcast) and a larger *passive* view (addresses of backups, refreshed by
periodic SHUFFLE random walks). A failed or departed active peer is replaced by promoting
a passive peer with a NEIGHBOR request.

Conventions of this implementation (see ``docs/internals.md``):
- a node that puts a peer in its active view on its own (JOIN contact, end of a
  FORWARD_JOIN walk) tells it with ``Neighbor(high=True)``, which must be accepted; every
  ``Neighbor`` is answered with ``NeighborReply``;
- an accepted reply that arrives when we no longer wait for it is honoured if there is
  room, else answered with ``Disconnect(alive=True)`` so both sides agree;
- promotion keeps at most one pending request per free active slot, tries the next
  candidate on refusal, timeout or failure, and re-tries the whole passive view every
  ``repair_interval``; a node isolated for ``repair_interval`` re-joins via its seeds;
- failed peers are remembered (bounded) and one of them is probed every
  ``reconnect_interval`` for as long as it stays unreachable, so a healed partition
  re-merges whatever its length (``docs/internals.md``, "Partition re-merge").

The repair rounds and the probes of failed peers are :class:`~gossipfast._repair.Repair`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._peers import PeerSet
from ._repair import Repair
from .wire import Disconnect, ForwardJoin, Join, Neighbor, NeighborReply, Shuffle, ShuffleReply

#: Longest peer address accepted from the wire ("host:port").
MAX_ADDRESS = 255
#: Seeds remembered from join() (for isolation repair).
MAX_SEEDS = 64


def valid_address(x: Any) -> bool:
    """True for a plausible peer address taken from the wire."""
    return type(x) is str and 0 < len(x) <= MAX_ADDRESS


class HyParView:
    """Membership state of one node.

    Messages and link closes go to ``out``, the engine's
    :class:`~gossipfast._outputs.Outputs`; the other layers hear of links through the
    engine's ``up(peer, now)`` and ``down(peer, reason, now)``. Its timers on the
    shared wheel are ``(handler, *args)`` tuples that the engine calls back as
    ``handler(item, now)``: :meth:`timer_shuffle`, :meth:`timer_neighbor` (a NEIGHBOR
    request unanswered), and :attr:`repair`'s ``timer_repair`` and ``timer_reconnect``.
    """

    def __init__(
        self,
        address: str,
        config: Any,
        rng: Any,
        timers: Any,
        out: Any,
        *,
        up: Callable[[str, float], None],
        down: Callable[[str, str, float], None],
    ) -> None:
        """Create empty views for the node listening at ``address``; messages and link
        closes go to ``out`` (the engine's :class:`~gossipfast._outputs.Outputs`)."""
        self.address = address
        self.config = config
        self.rng = rng
        self.timers = timers
        self.send = out.send
        self.close = out.close
        self.up = up
        self.down = down
        self.size = int(config.active_view_size)
        self.active = PeerSet(self.size)
        self.passive = PeerSet(int(config.passive_view_size))
        self.pending: dict[str, int] = {}  # peer -> neighbour-timeout timer id
        self.tried: set[str] = set()  # refused/timed out since the last repair round
        self.seeds: list[str] = []
        # peers that failed, probed one at a time every reconnect_interval until they
        # answer: a healed partition of any length re-merges through them. The value says
        # how: True (no sign of a heal since it failed) forces a link with
        # Neighbor(high); False (another failed peer answered since) asks with a direct
        # Shuffle, which mixes the passive views without evicting anyone.
        self.graveyard: dict[str, bool] = {}
        self.last_shuffle: list[str] = []
        self.started = False
        self.left = False
        self.bad = 0
        self.shuffles = 0
        self.probes = 0
        self.rejoins = 0
        self.escalations = 0
        self.max_list = int(config.shuffle_active) + int(config.shuffle_passive) + 1
        self.repair = Repair(self, config)

    # -- helpers ---------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Arm the periodic shuffle (first input that carries a time)."""
        if self.started:
            return
        self.started = True
        self.timers.schedule(now + self.jitter(self.config.shuffle_interval), (self.timer_shuffle,))
        if self.graveyard:
            self.repair.arm_reconnect(now)

    def jitter(self, interval: float) -> float:
        """``interval`` +-25%."""
        # +-25% so that nodes started together do not shuffle in lockstep
        return float(interval) * (0.75 + 0.5 * self.rng.random())

    def sanitize(self, nodes: Any) -> list[str]:
        """Keep the plausible, foreign addresses of a list from the wire (capped)."""
        if type(nodes) is not list:
            self.bad += 1
            return []
        if len(nodes) > self.max_list:
            self.bad += 1
            nodes = nodes[: self.max_list]
        out = []
        for n in nodes:
            if not valid_address(n):
                self.bad += 1
            elif n != self.address and n not in out:
                out.append(n)
                self.repair.hear(n)
        return out

    def add_passive(self, peer: str, prefer: Any = ()) -> None:
        """Add ``peer`` to the passive view, evicting (preferably one of ``prefer``)."""
        if peer == self.address or peer in self.active or peer in self.passive:
            return
        if self.passive.is_full():
            victim: str | None = None
            for p in prefer:
                if p in self.passive:
                    victim = p
                    break
            if victim is None:  # spare the peers we are asking right now if we can
                victim = self.passive.random(self.rng, self.pending)
            if victim is None:
                victim = self.passive.random(self.rng)
            if victim is not None:
                self.passive.discard(victim)
                self.tried.discard(victim)
                self.repair.hear(victim)
        self.passive.add(peer)

    def add_active(self, peer: str, now: float, notify: bool) -> None:
        """Put ``peer`` in the active view (evicting a random peer when full)."""
        if peer == self.address or peer in self.active:
            return
        self.cancel_pending(peer)
        self.passive.discard(peer)
        self.tried.discard(peer)
        if self.active.is_full():
            victim = self.active.random(self.rng)
            if victim is not None:
                self.active.discard(victim)
                self.send(victim, Disconnect(True))
                self.close(victim)
                self.add_passive(victim)
                self.down(victim, "replaced", now)
        self.active.add(peer)
        self.repair.linked()
        if notify:
            self.send(peer, Neighbor(True))
        self.up(peer, now)

    def remove_active(self, peer: str, reason: str, now: float, keep: bool) -> None:
        """Drop an active peer (to the passive view when ``keep``), then repair."""
        if not self.active.discard(peer):
            return
        self.repair.lost(now)
        if keep:
            self.add_passive(peer)
        else:
            self.passive.discard(peer)
            if reason == "failed":
                self.repair.bury(peer, now)
        self.down(peer, reason, now)
        self.fill(now)

    def cancel_pending(self, peer: str) -> bool:
        """Forget an outstanding Neighbor request to ``peer``."""
        t = self.pending.pop(peer, None)
        if t is None:
            return False
        self.timers.cancel(t)
        return True

    def fill(self, now: float) -> None:
        """Promote passive peers while the active view (plus requests) has room."""
        if self.left:
            return
        while len(self.active) + len(self.pending) < self.size:
            exclude = self.tried | self.pending.keys()
            peer = self.passive.random(self.rng, exclude)
            if peer is None:
                break
            self.pending[peer] = self.timers.schedule(
                now + self.config.neighbor_timeout, (self.timer_neighbor, peer)
            )
            n = len(self.active)
            self.send(peer, Neighbor(n == 0 or (self.repair.stuck and n <= self.size // 2)))
        self.repair.arm(now)

    # -- local inputs ----------------------------------------------------------------------

    def join(self, seeds: list[str], now: float) -> None:
        """Contact the seeds (each answers with Neighbor(high) and walks us in)."""
        self.start(now)
        fresh = [s for s in seeds if valid_address(s) and s != self.address]
        for s in fresh:
            if s not in self.seeds and len(self.seeds) < MAX_SEEDS:
                self.seeds.append(s)
        if not self.active and self.repair.empty_since < 0.0:
            self.repair.empty_since = now
        for s in fresh[: self.size]:
            if s not in self.active:
                self.send(s, Join())
        for s in fresh[self.size :]:
            self.add_passive(s)
        self.repair.arm(now)

    def leave(self, now: float) -> None:
        """Say goodbye to every active peer; afterwards the node ignores the network."""
        for p in self.active.to_list():
            self.send(p, Disconnect(False))
            self.close(p)
            self.active.discard(p)
            self.down(p, "left", now)
        for p in list(self.pending):
            self.cancel_pending(p)
        self.left = True

    def on_disconnected(self, peer: str, reason: str, now: float) -> None:
        """The link to ``peer`` is gone (``failed``, ``closed``; ``slow`` from the driver)."""
        if self.left:
            return
        if peer in self.active:
            if reason == "failed":
                self.remove_active(peer, "failed", now, keep=False)
            elif reason == "slow":
                self.remove_active(peer, "slow", now, keep=True)
            else:  # a clean close without Disconnect: the peer dropped us
                self.remove_active(peer, "disconnected", now, keep=True)
            return
        if reason == "failed":
            # an unreachable passive peer, a dead request target or a failed probe: out of
            # the views, probed again later (with a forced link: it is still unreachable)
            if self.passive.discard(peer) or peer in self.pending or peer in self.graveyard:
                self.repair.bury(peer, now)
            self.tried.discard(peer)
            if self.cancel_pending(peer):
                self.fill(now)

    def alive(self, peer: str) -> None:
        """A frame came from ``peer`` (see :meth:`Repair.alive`)."""
        self.repair.alive(peer)

    # -- timers ----------------------------------------------------------------------------

    def timer_shuffle(self, item: tuple, now: float) -> None:
        """Timer: start the periodic SHUFFLE."""
        if not self.left:
            self.shuffle(now)

    def timer_neighbor(self, item: tuple, now: float) -> None:
        """Timer ``(handler, peer)``: ``peer`` did not answer our NEIGHBOR in time."""
        peer = item[1]
        if not self.left and peer in self.pending:
            del self.pending[peer]
            self.tried.add(peer)
            self.fill(now)

    def shuffle(self, now: float) -> None:
        """Start a SHUFFLE walk with samples of both views; re-arm the timer."""
        self.timers.schedule(now + self.jitter(self.config.shuffle_interval), (self.timer_shuffle,))
        peer = self.active.random(self.rng)
        if peer is None:
            return
        nodes = self.active.sample(self.rng, self.config.shuffle_active, (peer,))
        nodes += self.passive.sample(self.rng, self.config.shuffle_passive)
        self.last_shuffle = nodes
        self.shuffles += 1
        self.send(peer, Shuffle(self.address, self.config.shuffle_ttl, nodes))

    # -- messages --------------------------------------------------------------------------

    def on_message(self, peer: str, msg: Any, now: float) -> bool:
        """Handle one membership message; False when it is not one (or is bad)."""
        if self.left:
            return True
        t = type(msg)
        if t is Join:
            self.on_join(peer, now)
        elif t is ForwardJoin:
            self.on_forward_join(peer, msg.node, msg.ttl, now)
        elif t is Neighbor:
            self.on_neighbor(peer, msg.high, now)
        elif t is NeighborReply:
            self.on_neighbor_reply(peer, msg.accepted, now)
        elif t is Disconnect:
            self.on_disconnect(peer, msg.alive, now)
        elif t is Shuffle:
            self.on_shuffle(peer, msg.origin, msg.ttl, msg.nodes, now)
        elif t is ShuffleReply:
            self.on_shuffle_reply(msg.nodes)
        else:
            return False
        repair = self.repair
        if not repair.armed:  # e.g. new passive peers while the view is short
            repair.arm(now)
        return True

    def on_join(self, peer: str, now: float) -> None:
        """A new node asks us in: take it (high priority) and walk it to others."""
        self.start(now)
        if peer in self.active:
            self.send(peer, Neighbor(True))  # it lost track of us; say it again
            return
        self.add_active(peer, now, notify=True)
        ttl = self.config.active_random_walk_length
        for p in self.active:
            if p != peer:
                self.send(p, ForwardJoin(peer, ttl))

    def on_forward_join(self, sender: str, node: Any, ttl: Any, now: float) -> None:
        """One step of the random walk announcing a joiner."""
        if not valid_address(node) or type(ttl) is not int or ttl < 0:
            self.bad += 1
            return
        if node == self.address:
            return
        self.repair.hear(node)
        ttl = min(ttl, self.config.active_random_walk_length)
        if ttl == 0 or len(self.active) <= 1:  # walk ends, or we only know the sender
            self.add_active(node, now, notify=True)
            return
        if ttl == self.config.passive_random_walk_length:
            self.add_passive(node)
        nxt = self.active.random(self.rng, (sender, node))
        if nxt is None:
            self.add_active(node, now, notify=True)
        else:
            self.send(nxt, ForwardJoin(node, ttl - 1))

    def on_neighbor(self, peer: str, high: Any, now: float) -> None:
        """A request to become active neighbours; high priority cannot be refused."""
        if peer in self.active:
            self.cancel_pending(peer)
            self.send(peer, NeighborReply(True))
            return
        if high is True or not self.active.is_full():
            # the reply goes first: the peer must know the link before our digest
            self.send(peer, NeighborReply(True))
            self.add_active(peer, now, notify=False)
        else:
            self.send(peer, NeighborReply(False))
            self.add_passive(peer)

    def on_neighbor_reply(self, peer: str, accepted: Any, now: float) -> None:
        """The answer to one of our Neighbor requests."""
        was_pending = self.cancel_pending(peer)
        if accepted is True:
            if peer in self.active:
                return
            if was_pending or not self.active.is_full():
                self.add_active(peer, now, notify=False)
            else:
                # we gave up waiting and filled the slot: undo the peer's side
                self.send(peer, Disconnect(True))
                self.close(peer)
        elif was_pending:
            self.tried.add(peer)
            self.repair.refused(now)

    def on_disconnect(self, peer: str, alive: Any, now: float) -> None:
        """The peer dropped us (``alive``) or leaves the cluster."""
        self.close(peer)
        if alive is True:
            if peer in self.active:
                self.remove_active(peer, "disconnected", now, keep=True)
            elif self.cancel_pending(peer):
                self.fill(now)
        else:
            self.passive.discard(peer)
            self.tried.discard(peer)
            if peer in self.active:
                self.remove_active(peer, "left", now, keep=False)
            elif self.cancel_pending(peer):
                self.fill(now)

    def on_shuffle(self, sender: str, origin: Any, ttl: Any, nodes: Any, now: float) -> None:
        """A SHUFFLE walk: forward it, or answer its origin and integrate its samples."""
        if not valid_address(origin) or type(ttl) is not int or ttl < 0:
            self.bad += 1
            return
        if origin == self.address:
            return
        self.repair.hear(origin)
        ttl = min(ttl, self.config.shuffle_ttl)
        nodes = self.sanitize(nodes)
        if ttl > 0 and len(self.active) > 1:
            nxt = self.active.random(self.rng, (sender, origin))
            if nxt is not None:
                self.send(nxt, Shuffle(origin, ttl - 1, nodes))
                return
        reply = self.passive.sample(self.rng, len(nodes) + 1, (origin,))
        self.send(origin, ShuffleReply(reply))
        if origin not in nodes:
            nodes.append(origin)
        for n in nodes:
            self.add_passive(n, reply)
        self.fill(now)

    def on_shuffle_reply(self, nodes: Any) -> None:
        """Integrate the passive samples that answer our SHUFFLE."""
        for n in self.sanitize(nodes):
            self.add_passive(n, self.last_shuffle)
