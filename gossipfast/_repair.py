# cython: annotation_typing=False
"""HyParView's repair: short active views, isolation and healed partitions.

- Repair rounds: while the active view is short, every ``repair_interval`` (backed off
  x2 up to x8 while rounds change nothing) the whole passive view may be asked again; a
  round that changed nothing while the view is at most half full sends the next
  requests with high priority; a node alone for ``repair_interval`` re-joins through its
  seeds, and a short node with nobody left to ask tries an address it heard of.
- Failed peers (``HyParView.graveyard``) are probed one at a time every
  ``reconnect_interval`` until one answers, so a healed partition of any length
  re-merges (``docs/internals.md``, "Partition re-merge").

Hot module (compiled by Cython with ``_repair.pxd``; nothing here imports Cython).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .wire import Join, Neighbor, Shuffle

if TYPE_CHECKING:
    from ._hyparview import HyParView


class Repair:
    """The repair state of one node's :class:`~gossipfast._hyparview.HyParView` (``hv``).

    It reads ``hv``'s views, pending requests, seeds and failed peers, promotes through
    ``hv.fill``, sends through ``hv.send`` and counts in ``hv``'s counters (the stats keys
    stay HyParView's). Its timers are ``(handler,)`` tuples on ``hv``'s wheel:
    :meth:`timer_repair` and :meth:`timer_reconnect`.
    """

    def __init__(self, hv: HyParView, config: Any) -> None:
        """Repair for ``hv`` with the view sizes of ``config``."""
        self.hv = hv
        self.armed = False  # the repair timer is scheduled
        # repair rounds back off (x2 up to x8) while they change nothing, and a round
        # retries at once after at most `size` refusals: a short view in a full cluster
        # must not keep every passive peer busy answering
        self.backoff = 1
        self.changed = False
        self.refusals = 0
        # short (at most half full) and a whole repair round changed nothing: every
        # low-priority request was refused, as in a small island whose members hold each
        # other while the rest of the cluster is full. The next requests go out with high
        # priority (cannot be refused). Half, not any shortness: a node one short in a
        # full cluster would push the shortness around forever (odd degree sums).
        self.stuck = False
        self.empty_since = -1.0  # when the active view became empty (-1: it is not)
        self.graveyard_max = int(config.passive_view_size)
        self.reconnect_armed = False
        # every address we heard of lately (shuffle samples, walks, evicted passive
        # peers), bounded: a node that lost both views tries them one by one
        self.heard: dict[str, None] = {}
        self.heard_max = 2 * int(config.passive_view_size)

    # -- the active view changes -------------------------------------------------------------

    def linked(self) -> None:
        """A peer joined the active view."""
        self.changed = True
        self.empty_since = -1.0

    def lost(self, now: float) -> None:
        """A peer left the active view: the next round comes unbacked-off; when it was
        the last, the isolation clock starts."""
        self.changed = True
        self.backoff = 1
        if not self.hv.active and self.empty_since < 0.0:
            self.empty_since = now

    def refused(self, now: float) -> None:
        """A pending Neighbor request was refused: ask the next candidate, up to ``size``
        refusals a round (then wait for the next round)."""
        self.refusals += 1
        if self.refusals <= self.hv.size:
            self.hv.fill(now)
        else:
            self.arm(now)

    def hear(self, peer: str) -> None:
        """Remember an address we heard of (FIFO-bounded by twice the passive view)."""
        h = self.heard
        if peer in h or peer == self.hv.address:
            return
        if len(h) >= self.heard_max:
            del h[next(iter(h))]
        h[peer] = None

    # -- repair rounds -------------------------------------------------------------------------

    def arm(self, now: float) -> None:
        """Keep the repair timer running while the active view is short."""
        hv = self.hv
        if self.armed or hv.left or not hv.started:
            return
        if len(hv.active) >= hv.size:
            return
        if not hv.passive and not hv.seeds and not hv.pending and not self.heard:
            return
        self.armed = True
        backoff = self.backoff if hv.active else 1
        hv.timers.schedule(now + hv.config.repair_interval * backoff, (self.timer_repair,))

    def timer_repair(self, item: tuple[Any, ...], now: float) -> None:
        """Timer: the isolation repair."""
        if not self.hv.left:
            self.run(now)

    def run(self, now: float) -> None:
        """Periodic isolation repair: retry every passive peer, re-join when alone."""
        hv = self.hv
        self.armed = False
        if len(hv.active) >= hv.size:
            self.stuck = False
            return
        self.backoff = 1 if self.changed else min(8, 2 * self.backoff)
        stuck = bool(hv.active) and not self.changed and len(hv.active) <= hv.size // 2
        if stuck and not self.stuck:
            hv.escalations += 1
        self.stuck = stuck
        self.changed = False
        self.refusals = 0
        hv.tried.clear()
        if (
            not hv.active
            and self.empty_since >= 0.0
            and now - self.empty_since >= hv.config.repair_interval
        ):
            self.rejoin(now)
        hv.fill(now)
        if hv.active and not hv.passive and not hv.pending and self.heard:
            # short, and the passive view has nobody left to ask (a small island after
            # a mass crash): ask one address we heard of to take us in
            self.join_heard()
        self.arm(now)

    def join_heard(self) -> None:
        """Send a Join to one random address we heard of (and forget it)."""
        hv = self.hv
        h = self.heard
        keys = [p for p in h if p not in hv.active]
        if not keys:
            return
        peer = keys[int(hv.rng.random() * len(keys))]
        del h[peer]
        hv.probes += 1
        hv.send(peer, Join())

    def rejoin(self, now: float) -> None:
        """Alone for too long: ask the seeds (and one passive peer) to take us in again."""
        hv = self.hv
        hv.rejoins += 1
        self.empty_since = now
        targets = [s for s in hv.seeds if s not in hv.pending]
        p = hv.passive.random(hv.rng, hv.pending)
        if p is not None and p not in targets:
            targets.append(p)
        failed = list(hv.graveyard)
        for peer in failed[max(0, len(failed) - 2) :]:  # the most recent failures
            if peer not in targets:
                targets.append(peer)
        if not hv.passive and self.heard:
            # nobody left to ask: try the addresses we heard of, one per round
            h = self.heard
            keys = list(h)
            peer = keys[int(hv.rng.random() * len(keys))]
            del h[peer]
            if peer not in targets and peer not in hv.active:
                targets.append(peer)
        for t in targets:
            hv.send(t, Join())

    # -- failed peers ----------------------------------------------------------------------------

    def bury(self, peer: str, now: float) -> None:
        """Remember a failed peer; it is probed until it answers (bounded, random eviction)."""
        g = self.hv.graveyard
        if peer not in g and len(g) >= self.graveyard_max:
            # a random victim, not the oldest: in a long split the oldest entries are the
            # far side's, the ones that re-merge the overlay once it heals
            keys = list(g)
            del g[keys[int(self.hv.rng.random() * len(keys))]]
        g[peer] = True
        self.arm_reconnect(now)

    def alive(self, peer: str) -> None:
        """A frame came from ``peer``: if it had failed it is back: a passive peer again.

        Its coming back while nothing else answered is a sign that a partition healed:
        the other failed peers are then probed without forcing links (one forced link per
        heal and node is enough to merge the overlay; more would only churn it).
        """
        g = self.hv.graveyard
        forced = g.pop(peer, None)
        if forced is None:
            return
        if forced:
            for p in g:
                g[p] = False
        self.hv.add_passive(peer)  # a known-good backup (made active if this is a request)

    def arm_reconnect(self, now: float) -> None:
        """Keep the reconnect timer running while there are failed peers to probe."""
        hv = self.hv
        if self.reconnect_armed or hv.left or not hv.started:
            return
        self.reconnect_armed = True
        hv.timers.schedule(now + hv.jitter(hv.config.reconnect_interval), (self.timer_reconnect,))

    def timer_reconnect(self, item: tuple[Any, ...], now: float) -> None:
        """Timer: probe a failed peer."""
        if not self.hv.left:
            self.reconnect(now)

    def reconnect(self, now: float) -> None:
        """Probe one random failed peer (it answers if the network to it healed)."""
        hv = self.hv
        self.reconnect_armed = False
        g = hv.graveyard
        if not g:
            return
        keys = [p for p in g if p not in hv.active and p not in hv.pending]
        if keys:
            peer = keys[int(hv.rng.random() * len(keys))]
            hv.probes += 1
            if g[peer]:
                hv.pending[peer] = hv.timers.schedule(
                    now + hv.config.neighbor_timeout, (hv.timer_neighbor, peer)
                )
                hv.send(peer, Neighbor(True))
            else:
                nodes = hv.active.sample(hv.rng, hv.config.shuffle_active)
                nodes += hv.passive.sample(hv.rng, hv.config.shuffle_passive, (peer,))
                hv.send(peer, Shuffle(hv.address, 0, nodes))
        self.arm_reconnect(now)
