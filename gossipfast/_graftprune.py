# cython: annotation_typing=False
"""Plumtree's ``Graft`` and ``Prune``: the batches we send and the ones we get.

Prunes (from duplicates), Grafts (from graft timers and tree optimisation) and Wants
(fetches that move no tree link) are collected per peer while one input or one tick is
handled, and leave as one message per peer and kind. An incoming ``Prune`` makes its
sender lazy in the trees it names, a ``Graft`` makes it eager and asks for payloads from
the store, each spending one of the sender's answer tokens.

Hot module (compiled by Cython with ``_graftprune.pxd``; nothing here imports Cython).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .wire import Gossip, Graft, Prune, Want

if TYPE_CHECKING:
    from ._plumtree import Plumtree

#: Bounds that reject forged ids.
_U64 = (1 << 64) - 1
_SEQ_MAX = (1 << 63) - 1
#: Ids of a Graft we look at; the rest is ignored.
_MAX_LIST = 1 << 17


class GraftPrune:
    """The Graft/Prune traffic of one node's :class:`~gossipfast._plumtree.Plumtree`
    (``pt``): it sends through ``pt.send``, changes ``pt``'s trees through their methods
    and counts in ``pt``'s counters. ``prunes``, ``grafts`` and ``wants`` map a peer to
    the ids queued for it (``[origin, ...]``, ``[origin, seq, ...]`` and ``[origin,
    first, last, ...]``).
    """

    def __init__(self, pt: Plumtree, max_origins: int) -> None:
        """No batch queued yet; a Prune names at most ``max_origins`` (the bound of
        ``pt``'s trees)."""
        self.pt = pt
        self.max_origins = max_origins
        self.prunes: dict[str, list[int]] = {}
        self.grafts: dict[str, list[int]] = {}
        self.wants: dict[str, list[int]] = {}

    def forget(self, peer: str) -> None:
        """``peer`` left the active view: drop what was queued for it."""
        self.grafts.pop(peer, None)
        self.wants.pop(peer, None)
        self.prunes.pop(peer, None)

    def queue_prune(self, peer: str, o: int) -> None:
        """Tell ``peer`` to stop pushing ``o``'s messages to us (batched per input)."""
        b = self.prunes.get(peer)
        if b is None:
            self.prunes[peer] = [o]
        elif o not in b:
            b.append(o)

    def queue_graft(self, peer: str, o: int, s: int) -> None:
        """Ask ``peer`` for (o, s) and to push ``o`` to us (s = 0: the link only)."""
        b = self.grafts.get(peer)
        if b is None:
            self.grafts[peer] = [o, s]
        else:
            b.append(o)
            b.append(s)

    def queue_want(self, peer: str, o: int, s: int) -> None:
        """Ask ``peer`` for (o, s) from its store, leaving every tree as it is."""
        b = self.wants.get(peer)
        if b is None:
            self.wants[peer] = [o, s, s]
        else:
            b.append(o)
            b.append(s)
            b.append(s)

    def send_batches(self, batch: dict[str, list[int]], kind: Any) -> int:
        """Send one ``kind(ids)`` message per peer of ``batch``; returns how many."""
        pt = self.pt
        for peer, ids in batch.items():
            pt.send(peer, kind(ids))
        return len(batch)

    def flush_prunes(self) -> None:
        """Send the Prunes collected while handling one input, one message per peer."""
        pt = self.pt
        if self.prunes:
            b = self.prunes
            self.prunes = {}
            pt.s_prune += self.send_batches(b, Prune)

    def flush_grafts(self) -> None:
        """Send the Grafts (and Wants) collected by the timers of one tick, one message
        per peer and kind."""
        pt = self.pt
        if self.grafts:
            b = self.grafts
            self.grafts = {}
            pt.s_graft += self.send_batches(b, Graft)
        if self.wants:
            b = self.wants
            self.wants = {}
            pt.s_want += self.send_batches(b, Want)

    def on_prune(self, peer: str, origins: Any) -> None:
        """A neighbour got duplicates from us: stop pushing these origins to it."""
        pt = self.pt
        if not pt.is_active(peer):
            return
        n = len(origins)
        if n == 0:  # every tree, and the shared one
            if pt.peers.to_lazy(peer):
                pt.refresh()
            for t in pt.trees.values():
                if t.lazy is not None and peer not in t.lazy:
                    t.lazy.add(peer)
                    t.epoch = -1
            return
        if n > self.max_origins:
            pt.bad += 1
            n = self.max_origins
        for i in range(n):
            o = origins[i]
            if 0 <= o <= _U64:
                pt.to_lazy(o, peer)
            else:
                pt.bad += 1

    def on_graft(self, peer: str, ids: Any) -> None:
        """A neighbour wants us as eager parent again (per origin), and resent payloads.

        ``ids`` is ``[origin, seq, ...]``; ``seq`` 0 asks for the tree link only.
        """
        pt = self.pt
        if not pt.is_active(peer):
            return
        n = len(ids)
        if n == 0:  # every tree, and the shared one
            if pt.peers.to_eager(peer):
                pt.refresh()
            for t in pt.trees.values():
                if t.lazy is not None and peer in t.lazy:
                    t.lazy.discard(peer)
                    t.epoch = -1
            return
        if n % 2 or n > _MAX_LIST:
            pt.bad += 1
            n = min(n - n % 2, _MAX_LIST)
        b = pt.requests.answer_tokens(peer)
        for i in range(0, n, 2):
            o = ids[i]
            s = ids[i + 1]
            if not (0 <= o <= _U64 and 0 <= s <= _SEQ_MAX):
                pt.bad += 1
                continue
            if s != 0:
                # a payload asked for: one answer token (beyond its budget the id is
                # ignored, link and all: it cannot make us resend the store in a loop)
                if b.resends < 1.0:
                    pt.answers_refused += 1
                    continue
                b.resends -= 1.0
            pt.to_eager(o, peer)
            if s == 0:
                continue
            item = pt.store.get(o, s)
            if item is not None:
                pt.send(peer, Gossip(o, s, item[0], item[1]))
                pt.s_gossip += 1
