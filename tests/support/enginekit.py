"""A tiny in-test harness: a few Engines wired together with a manual virtual clock.

Not the simulator (``gossipfast.sim``): just enough network to test the engine. Every
frame takes ``latency`` seconds; frames between two nodes stay in order; a send to a
crashed node reports ``on_disconnected(peer, "failed")`` to the sender after one latency;
a crash is reported to the crashed node's active neighbours after ``detect`` seconds (as
heartbeats would).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable
from typing import Any

from gossipfast.config import Config
from gossipfast.engine import Engine
from gossipfast.types import Gap, MemberDown, MemberUp, NeighborDown, NeighborUp


def addr(i: int) -> str:
    """Address of node ``i`` in a harness network."""
    return f"10.0.0.{i}:7000"


class Net:
    """Engines named ``addr(0..n-1)`` on a virtual network."""

    def __init__(
        self,
        n: int,
        config: Config | None = None,
        *,
        seed: int = 1,
        latency: float = 0.01,
        detect: float = 0.5,
    ) -> None:
        self.config = config or Config()
        self.now = 0.0
        self.latency = latency
        self.detect = detect
        self.rng = random.Random(seed)
        self.engines: dict[str, Engine] = {}
        self.dead: set[str] = set()
        self.queue: list[tuple[float, int, str, str, str, Any]] = []
        self._n = 0
        self.delivered: dict[str, list[tuple[int, int, int, bytes]]] = {}
        self.events: dict[str, list] = {}
        self.side: dict[str, int] = {}  # partition: address -> side (empty: no partition)
        self.frames: dict[str, int] = {}  # kind -> messages carried
        self.gossip_count: dict[tuple[int, int], int] = {}  # id -> Gossip payloads sent
        for i in range(n):
            self.add(addr(i))

    def add(self, a: str, incarnation: int = 1) -> Engine:
        """Start an engine at address ``a``."""
        e = Engine(
            a,
            self.config,
            node_id=a,
            incarnation=incarnation,
            rng=random.Random(self.rng.random()),
        )
        self.engines[a] = e
        self.dead.discard(a)
        self.delivered[a] = []
        self.events[a] = []
        return e

    # -- plumbing ---------------------------------------------------------------------------

    def _push(self, when: float, kind: str, dst: str, src: str, data: Any) -> None:
        self._n += 1
        heapq.heappush(self.queue, (when, self._n, kind, dst, src, data))

    def pump(self, a: str) -> None:
        """Take the outputs of engine ``a`` and put its frames on the wire."""
        e = self.engines[a]
        outbox, _closing, deliveries, events = e.drain()
        self.delivered[a].extend(deliveries)
        self.events[a].extend(events)
        for peer, msgs in outbox.items():
            for m in msgs:
                k = type(m).__name__
                self.frames[k] = self.frames.get(k, 0) + 1
                if k == "Gossip":
                    key = (m.origin, m.seq)
                    self.gossip_count[key] = self.gossip_count.get(key, 0) + 1
            if peer in self.dead or peer not in self.engines or self.cut(a, peer):
                self._push(self.now + self.latency, "fail", a, peer, None)
            else:
                self._push(self.now + self.latency, "frame", peer, a, list(msgs))

    def call(self, a: str, method: str, *args: Any) -> Any:
        """Call an input of engine ``a`` at the current time, then pump it."""
        r = getattr(self.engines[a], method)(*args, self.now)
        self.pump(a)
        return r

    def join(self, a: str, seeds: Iterable[str]) -> None:
        """Node ``a`` joins through ``seeds``."""
        self.call(a, "join", list(seeds))

    def broadcast(self, a: str, payload: bytes) -> tuple[int, int]:
        """Node ``a`` broadcasts ``payload``."""
        return self.call(a, "broadcast", payload)  # type: ignore[no-any-return]

    def crash(self, a: str) -> None:
        """Kill node ``a`` silently; its neighbours notice after ``detect`` seconds."""
        self.dead.add(a)
        for b, e in self.engines.items():
            if b not in self.dead and a in e.active_view:
                self._push(self.now + self.detect, "fail", b, a, None)

    def cut(self, a: str, b: str) -> bool:
        """True when a partition separates ``a`` and ``b``."""
        return bool(self.side) and self.side.get(a) != self.side.get(b)

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the network; links across fail (noticed after ``detect`` seconds)."""
        for k, g in enumerate(groups):
            for a in g:
                self.side[a] = k
        for a in self.live():
            for b in self.engines[a].active_view:
                if self.cut(a, b):
                    self._push(self.now + self.detect, "fail", a, b, None)

    def heal(self) -> None:
        """End the partition."""
        self.side.clear()

    # -- time -------------------------------------------------------------------------------

    def step(self, until: float) -> bool:
        """Process the next event at or before ``until``; False when there is none."""
        t_msg = self.queue[0][0] if self.queue else None
        t_timer = None
        who = None
        for a, e in self.engines.items():
            if a in self.dead:
                continue
            d = e.next_deadline()
            if d is not None and (t_timer is None or d < t_timer):
                t_timer, who = d, a
        if t_msg is not None and (t_timer is None or t_msg <= t_timer):
            if t_msg > until:
                return False
            when, _, kind, dst, src, data = heapq.heappop(self.queue)
            self.now = max(self.now, when)
            if dst in self.dead:
                return True
            if kind == "frame" and self.cut(src, dst):  # in flight when the cut came
                self._push(self.now + self.latency, "fail", src, dst, None)
                return True
            e = self.engines[dst]
            if kind == "frame":
                e.on_frame(src, data, self.now)
            else:
                e.on_disconnected(src, "failed", self.now)
            self.pump(dst)
            return True
        if t_timer is None or t_timer > until or who is None:
            return False
        self.now = max(self.now, t_timer)
        self.engines[who].tick(self.now)
        self.pump(who)
        return True

    def run(self, seconds: float) -> None:
        """Advance the virtual clock by ``seconds``, processing everything due."""
        until = self.now + seconds
        while self.step(until):
            pass
        self.now = until

    # -- checks -----------------------------------------------------------------------------

    def live(self) -> list[str]:
        """Addresses of the live nodes."""
        return [a for a in self.engines if a not in self.dead]

    def check_invariants(self) -> None:
        """Assert the per-node invariants of the engine's views and trees."""
        cfg = self.config
        for a in self.live():
            e = self.engines[a]
            act, pas = set(e.active_view), set(e.passive_view)
            assert a not in act and a not in pas, a
            assert not act & pas, (a, act & pas)
            assert len(act) <= cfg.active_view_size
            assert len(pas) <= cfg.passive_view_size
            assert set(e.eager_peers) | set(e.lazy_peers) == act, a
            assert not set(e.eager_peers) & set(e.lazy_peers), a
            for o in list(e.pt.trees):  # every origin's tree spans the active view too
                eager, lazy = e.pt.tree_of(o)
                assert set(eager) | set(lazy) == act and not set(eager) & set(lazy), (a, o)
            tree = e.tree
            if tree is not None:  # the anchored tree: state about active peers only
                assert set(tree.nb) <= act and (tree.up is None or tree.up in act), a
                up = tree.up
                if up is not None and up not in self.dead:
                    t2 = self.engines[up].tree
                    if t2 is not None and t2.key == tree.key:
                        # within an epoch up links lead towards the anchor: no loops
                        assert t2.hops < tree.hops, (a, up, tree.hops, t2.hops)
            ids = [(o, s) for o, s, _h, _p in self.delivered[a]]
            assert len(ids) == len(set(ids)), f"{a} delivered a message twice"
            assert all(o != e.origin for o, _s in ids), f"{a} delivered its own message"
            # the event stream replays into the active view
            view: set[str] = set()
            for ev in self.events[a]:
                if isinstance(ev, (Gap, MemberUp, MemberDown)):
                    continue
                if isinstance(ev, NeighborUp):
                    assert ev.peer not in view
                    view.add(ev.peer)
                else:
                    assert isinstance(ev, NeighborDown)
                    assert ev.peer in view
                    view.discard(ev.peer)
            assert view == act, (a, view, act)

    def symmetric(self) -> bool:
        """True when every live active link is known at both ends."""
        for a in self.live():
            for b in self.engines[a].active_view:
                if b in self.dead or a not in self.engines[b].active_view:
                    return False
        return True

    def connected(self) -> bool:
        """True when the live active-view graph is one component."""
        live = self.live()
        if not live:
            return True
        seen = {live[0]}
        todo = [live[0]]
        while todo:
            a = todo.pop()
            for b in self.engines[a].active_view:
                if b not in seen and b not in self.dead:
                    seen.add(b)
                    todo.append(b)
        return len(seen) == len(live)


# -- single-engine helpers for hand-written scenarios ---------------------------------------

ME = "10.9.9.9:7000"


def engine(address: str = ME, *, seed: int = 0, **fields: Any) -> Engine:
    """A lone engine with ``Config(**fields)``."""
    return Engine(
        address,
        Config(**fields),
        node_id=address,
        incarnation=1,
        rng=random.Random(seed),
    )


def peer(i: int) -> str:
    """Address of hand-driven peer ``i``."""
    return f"10.1.0.{i}:7000"


def make_active(e: Engine, peers: Iterable[str], now: float = 0.0) -> None:
    """Bring ``peers`` into the active view of ``e`` (each sends Neighbor(high=True))."""
    from gossipfast.wire import Neighbor

    for p in peers:
        e.on_frame(p, [Neighbor(True)], now)
    e.drain()


def make_passive(e: Engine, peers: Iterable[str], now: float = 0.0) -> None:
    """Put ``peers`` in the passive view of ``e`` (a ShuffleReply carrying them)."""
    from gossipfast.wire import ShuffleReply

    todo = list(peers)
    while todo:  # a reply carries at most shuffle_active + shuffle_passive + 1 nodes
        chunk, todo = todo[: e.hv.max_list], todo[e.hv.max_list :]
        e.on_frame(peer(250), [ShuffleReply(chunk)], now)
    e.drain()


def sent(outbox: dict[str, list], kind: type) -> dict[str, list]:
    """The messages of one kind in an outbox, per peer (peers without any left out)."""
    out = {}
    for p, msgs in outbox.items():
        got = [m for m in msgs if type(m) is kind]
        if got:
            out[p] = got
    return out


def split_cluster(cfg: Config, seed: int) -> tuple[Net, list[str], list[str]]:
    """16 engines joined one by one, settled, then split in halves for 20 s (each side
    repaired on its own); returns the net and the two halves' addresses."""
    net = Net(16, cfg, seed=seed, detect=0.5)
    for i in range(1, 16):
        net.join(addr(i), [addr(net.rng.randrange(i))])
        net.run(0.2)
    net.run(5.0)
    left, right = [addr(i) for i in range(8)], [addr(i) for i in range(8, 16)]
    net.partition(left, right)
    net.run(20.0)  # each side repairs on its own
    assert not any(b in right for a in left for b in net.engines[a].active_view)
    return net, left, right
