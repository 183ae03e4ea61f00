"""The anchored shared tree: one fewest-hops spanning tree for origins without their own.

Plumtree gives an origin its own tree from its second message on; a new origin's first
message uses the *shared* tree. In the paper that tree takes the shape of whatever pushes
pruned it last: with many one-shot senders it converges to a lowest-latency tree grown
from nowhere in particular, whose depth from random roots is about 1.4x an eager flood's
(``bench/tree_bound.py``). A fewest-hops tree from any single node is almost as shallow
as the flood from every root, so this module keeps the shared tree one:

- one node is the **anchor**; every ``tree_beacon_interval`` it starts a beacon
  ``(term, anchor, epoch, hops=0)`` that floods the active views. Each node keeps the
  copy with the fewest hops (the first one among equals), makes its sender its **up**
  link and forwards the beacon (hops + 1) to every neighbour, telling its up link
  that it is its child. The shared tree is then exactly {up} + children: every other
  neighbour is lazy. Prunes and grafts of first messages still act on it in between
  (duplicates are pruned, missing messages grafted); each new epoch resets it, and
  Plumtree's hop optimisations leave it alone (they would bend it back towards the
  latency tree).
- **election**: a beacon of a higher term wins; within a term, the lower anchor. A node
  that heard no new epoch for ``3 x tree_beacon_interval`` (or lost its link to the
  anchor itself) becomes a candidate after a random delay: it starts term + 1 as anchor.
  Concurrent candidates cost little: a beacon is forwarded only by nodes it improves.
  Partition halves elect their own anchors; when they merge the higher term takes over.
- **no loops**: within one epoch a node's hop count only decreases, and it only takes an
  up link with fewer hops than its own, so up links always lead to the anchor. When the
  up link fails the node re-attaches to a neighbour with fewer hops, or waits detached
  (its messages still flow through lazy announcements and grafts) for the next epoch.

Beacons are rare control messages; this module is not compiled.
"""

from __future__ import annotations

import random
from typing import Any

from .wire import Beacon

_U64 = (1 << 64) - 1
_HOPS_MAX = 1 << 16
#: No tree known yet: every key is newer.
_NO_KEY = (-1, 0, 0)


class AnchorTree:
    """Anchored shared tree of one node (sans-IO; driven by the engine).

    ``pt`` is the node's :class:`~gossipfast._plumtree.Plumtree` (its shared tree is set
    here), ``out`` the engine's :class:`~gossipfast._outputs.Outputs` (beacons are sent
    there), ``timers`` the engine's wheel; its
    timers there are ``(handler, *args)`` tuples the engine calls back as
    ``handler(item, now)``: :meth:`timer_watchdog`, :meth:`timer_beacon` and
    :meth:`timer_election` (the last two carry the generation they were armed in; an
    older one is void). After :meth:`stop` every timer is ignored.
    """

    def __init__(
        self,
        origin: int,
        interval: float,
        timers: Any,
        pt: Any,
        out: Any,
    ) -> None:
        """Create the tree state; nothing happens before :meth:`start`."""
        self.origin = origin
        self.interval = float(interval)
        self.timeout = 3.0 * self.interval
        self.timers = timers
        self.pt = pt
        self.send = out.send
        # independent of the engine's generator: the membership's random choices (and
        # every seeded simulation figure) stay as they were without the tree
        self.rng = random.Random(origin ^ 0x5EED)
        # (term, -anchor, epoch): a greater key is newer
        self.key: tuple[int, int, int] = _NO_KEY
        self.hops = 0
        self.up: str | None = None
        # neighbour -> (its key, its hops, whether we are its up link)
        self.nb: dict[str, tuple[tuple[int, int, int], int, bool]] = {}
        self.fresh_at = 0.0
        self.gen = 0  # timers of an older generation are ignored
        self.stopped = False
        self.started = False
        self.elections = 0
        self.bad = 0

    # -- views -----------------------------------------------------------------------------

    @property
    def known(self) -> bool:
        """True once this node belongs to an anchored tree."""
        return self.key != _NO_KEY

    @property
    def anchor(self) -> int | None:
        """Origin of the current anchor (None before any beacon)."""
        return -self.key[1] if self.known else None

    @property
    def is_anchor(self) -> bool:
        """True when this node is the anchor."""
        return self.known and -self.key[1] == self.origin

    @property
    def attached(self) -> bool:
        """True when we hang from the anchor (or are it): up links lead to it."""
        return self.up is not None or self.is_anchor

    def children(self) -> list[str]:
        """Neighbours whose up link we are."""
        return [p for p, (_k, _h, up) in self.nb.items() if up]

    def links(self) -> set[str]:
        """Our shared-tree links: the up link and the children."""
        s = set(self.children())
        if self.up is not None:
            s.add(self.up)
        return s

    # -- driver inputs ---------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Arm the watchdog; a node that hears of no anchor stands as a candidate."""
        if self.started:
            return
        self.started = True
        self.fresh_at = now
        # the first candidate comes within one interval (not three): a new cluster gets
        # its tree soon; nodes that join later hear of it from their first neighbour
        self.timers.schedule(
            now + self.rng.uniform(0.5, 1.0) * self.interval, (self.timer_watchdog,)
        )

    def neighbor_up(self, peer: str, now: float) -> None:
        """A new neighbour: tell it our tree; it is lazy in the shared tree until it
        becomes a tree link (eager, as in the paper, while we are detached: after a
        mass failure the new links are what reconnects us)."""
        if not self.known:
            return
        self._send_to(peer)
        if self.attached:
            self.apply()

    def neighbor_down(self, peer: str, reason: str, now: float) -> None:
        """A neighbour left the active view: re-attach if it was our up link."""
        info = self.nb.pop(peer, None)
        if peer != self.up:
            if info is not None and info[2]:
                self.apply()  # a child left
            return
        self.up = None
        if self.hops == 1 and reason in ("failed", "left"):
            # the anchor itself is gone: stand as a candidate soon (its other neighbours
            # do too; the lowest origin wins) instead of waiting for the watchdog. Not on
            # a membership swap: the anchor is alive and its next epoch re-attaches us.
            self._arm_election(now, 0.05 * self.interval)
        # re-attach to a neighbour with fewer hops in this epoch: never one of our own
        # descendants (they all have more), so no loop
        best = None
        best_hops = self.hops
        for p, (k, h, _up) in self.nb.items():
            if k == self.key and h < best_hops:
                best = p
                best_hops = h
        if best is not None:
            self.up = best
            self.hops = best_hops + 1
            self._publish()
        else:
            self.apply()

    def on_beacon(self, peer: str, msg: Any, now: float) -> None:
        """A neighbour's beacon: remember it; adopt it when it is newer or shorter."""
        term = msg.term
        anchor = msg.anchor
        epoch = msg.epoch
        hops = msg.hops
        up = msg.up
        if (
            type(term) is not int
            or type(anchor) is not int
            or type(epoch) is not int
            or type(hops) is not int
            or type(up) is not bool
            or not (0 <= term <= _U64 and 0 <= anchor <= _U64 and 0 <= epoch <= _U64)
            or not 0 <= hops < _HOPS_MAX - 1  # we forward hops + 1
        ):
            self.bad += 1
            return
        if not self.pt.is_active(peer):
            return  # beacons travel over active links only
        key = (term, -anchor, epoch)
        old = self.nb.get(peer)
        self.nb[peer] = (key, hops, up)
        # a new epoch, a better anchor, or a shorter path in this epoch (never our own
        # beacon coming back)
        if anchor != self.origin and (key > self.key or (key == self.key and hops + 1 < self.hops)):
            if key > self.key:
                self.fresh_at = now
            self._adopt(key, hops + 1, peer)
        elif old is None or old[2] != up:
            self.apply()  # a child (un)registered

    def stop(self) -> None:
        """The node leaves: ignore every timer from now on."""
        self.stopped = True

    def timer_watchdog(self, item: tuple[Any, ...], now: float) -> None:
        """Timer: stand as a candidate when no anchor was heard of for too long."""
        if self.stopped:
            return
        self.timers.schedule(now + self.interval, (self.timer_watchdog,))
        if not self.is_anchor and now - self.fresh_at >= self._stale_after():
            self._arm_election(now, self.interval)

    def timer_beacon(self, item: tuple[Any, ...], now: float) -> None:
        """Timer ``(handler, generation)``: the anchor starts the next epoch."""
        if not self.stopped and item[1] == self.gen and self.is_anchor:
            term, a, epoch = self.key
            self.key = (term, a, epoch + 1)
            self.fresh_at = now
            self._publish()
            self.timers.schedule(now + self.interval, (self.timer_beacon, self.gen))

    def timer_election(self, item: tuple[Any, ...], now: float) -> None:
        """Timer ``(handler, generation)``: stand as the anchor if still without one."""
        if self.stopped or item[1] != self.gen or self.is_anchor:
            return
        if now - self.fresh_at >= self._stale_after() or self.up is None:
            self._elect(now)

    # -- internals -------------------------------------------------------------------------

    def _stale_after(self) -> float:
        # before any tree: one interval; after: three missed epochs
        return self.timeout if self.known else 0.0

    def _arm_election(self, now: float, spread: float) -> None:
        if not self.pt.active:
            return  # alone: nobody to anchor; the membership's repair comes first
        self.gen += 1
        self.timers.schedule(now + self.rng.uniform(0.0, spread), (self.timer_election, self.gen))

    def _elect(self, now: float) -> None:
        if not self.pt.active:
            return
        # (a forged beacon may have taken the last term: stay in it, the lower anchor wins)
        term = min(self.key[0] + 1, _U64) if self.known else 1
        self.key = (term, -self.origin, 1)
        self.hops = 0
        self.up = None
        self.fresh_at = now
        self.elections += 1
        self.gen += 1
        self._publish()
        self.timers.schedule(now + self.interval, (self.timer_beacon, self.gen))

    def _adopt(self, key: tuple[int, int, int], hops: int, peer: str) -> None:
        if self.is_anchor and -key[1] != self.origin:
            self.gen += 1  # stepped down: our beacon timer is void
        self.key = key
        self.hops = hops
        self.up = peer
        self._publish()

    def _send_to(self, peer: str) -> None:
        term, a, epoch = self.key
        self.send(peer, Beacon(term, -a, epoch, self.hops, peer == self.up))

    def _publish(self) -> None:
        """Our tree position changed: tell every neighbour, then reshape the shared tree."""
        for p in self.pt.active:
            self._send_to(p)
        self.apply()

    def apply(self) -> None:
        """Make Plumtree's shared tree our tree links (every other neighbour lazy)."""
        if self.known:
            self.pt.set_shared_tree(self.links(), self.attached)


__all__ = ["AnchorTree"]
