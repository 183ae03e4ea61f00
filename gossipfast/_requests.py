# cython: annotation_typing=False
"""Plumtree's request records and per-neighbour budgets.

A copy that answers a ``Graft``/``Want`` of ours counts as a recovery and must not prune
its sender, so each request is remembered (bounded, for a while). Each active
neighbour has a :class:`_Budget`: its share of missing-message entries, a token bucket of
ids we may ask it for, its unanswered requests, and a token bucket of payloads we resend
to it (a hostile peer is contained by its own). docs/internals.md ("Plumtree choices
beyond the paper") tells why.

Hot module (compiled by Cython with ``_requests.pxd``; nothing here imports Cython).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._plumtree import Plumtree


class _Budget:
    """What one neighbour may make us hold and do (hostile peers are contained per peer).

    - ``missing``: missing-message entries its announcements made that are still alive
      (at most ``peer_missing_max``; beyond, its announcements are dropped and counted);
    - ``grants``: a token bucket of ids we may request from it (Graft/Want of a missing
      message), ``peer_graft_rate`` a second, burst one second;
    - ``asked``: records of our Grafts/Wants to it still waiting for an answer (at most
      ``peer_missing_max``: a peer that never answers is soon asked nothing more);
    - ``resends``: a token bucket of payloads we resend to it in answer to its Graft/Want,
      ``peer_answer_rate`` a second, burst ``max(rate, catch_up_max)`` (one catch-up).

    Tokens are floats refilled when spent (per request, or per Graft/Want answered).
    """

    __slots__ = ("asked", "grant_at", "grants", "missing", "resend_at", "resends")

    def __init__(self, grants: float, resends: float, now: float) -> None:
        self.missing = 0
        self.asked = 0
        self.grants = grants
        self.grant_at = now
        self.resends = resends
        self.resend_at = now


class Requests:
    """The requests of one node's :class:`~gossipfast._plumtree.Plumtree` (``pt``) and
    its neighbours' budgets.

    ``requested`` maps (origin, seq) we asked for to when; ``answers`` maps (origin, seq,
    peer) we asked to when, or to (peer's budget, when) while counted in the peer's
    ``asked``. Both are kept for ``ttl`` seconds, at most ``cap`` records each. Budgets
    are made with ``pt.now``; withheld requests count in
    ``pt.grafts_withheld`` (the stats keys stay Plumtree's).
    """

    def __init__(self, pt: Plumtree, config: Any, ttl: float, missing_max: int) -> None:
        """Empty records, with the per-neighbour limits of ``config``; ``missing_max``
        is ``pt``'s bound of missing-message entries (as many requests are kept at
        least)."""
        self.pt = pt
        self.ttl = ttl
        self.budgets: dict[str, _Budget] = {}
        self.peer_missing_max = int(config.peer_missing_max)
        self.graft_rate = float(config.peer_graft_rate)
        self.answer_rate = float(config.peer_answer_rate)
        self.answer_burst = max(self.answer_rate, float(config.catch_up_max))
        self.cap = max(int(config.catch_up_max), missing_max)
        self.requested: OrderedDict[tuple[int, int], float] = OrderedDict()
        self.answers: OrderedDict[tuple[int, int, str], Any] = OrderedDict()

    def budget(self, peer: str) -> _Budget:
        """``peer``'s shares and budgets (made full on first use; callers check that the
        peer is active, so there is one per neighbour at most)."""
        b = self.budgets.get(peer)
        if b is None:
            b = _Budget(self.graft_rate, self.answer_burst, self.pt.now)
            self.budgets[peer] = b
        return b

    def grant(self, peer: str, now: float) -> bool:
        """Spend one of ``peer``'s request tokens (a Graft or Want of a missing message
        to it); False when its budget is spent (counted: the next announcer is asked)."""
        b = self.budget(peer)
        t = b.grants + (now - b.grant_at) * self.graft_rate
        b.grant_at = now
        if t > self.graft_rate:
            t = self.graft_rate
        if t < 1.0 or b.asked >= self.peer_missing_max:
            b.grants = t
            self.pt.grafts_withheld += 1
            return False
        b.grants = t - 1.0
        return True

    def answer_tokens(self, peer: str) -> _Budget:
        """``peer``'s budget with its answer tokens refilled up to now (once per Graft or
        Want it sent; each payload asked for then spends one)."""
        b = self.budget(peer)
        now = self.pt.now
        t = b.resends + (now - b.resend_at) * self.answer_rate
        b.resend_at = now
        b.resends = t if t < self.answer_burst else self.answer_burst
        return b

    def remember(self, o: int, s: int, peer: str, now: float) -> None:
        """Note that we asked ``peer`` for (o, s): its arrival counts as a recovery, and a
        late copy from ``peer`` as an answer rather than a redundant push (bounded)."""
        req = self.requested
        if len(req) >= self.cap:
            req.popitem(last=False)
        req[(o, s)] = now
        ans = self.answers
        key = (o, s, peer)
        if key not in ans:
            if len(ans) >= self.cap:
                _forget(ans.popitem(last=False)[1])
            ans[key] = now

    def grafted(self, o: int, s: int, peer: str, now: float) -> None:
        """:meth:`remember` a Graft/Want of a missing message, counted in ``peer``'s
        unanswered requests (its budget ``asked``)."""
        self.remember(o, s, peer, now)
        k = (o, s, peer)
        a = self.answers.get(k)
        if a is not None and type(a) is not tuple:
            b = self.budgets[peer]
            self.answers[k] = (b, now)
            b.asked += 1

    def take_answer(self, o: int, s: int, peer: str) -> bool:
        """A copy of (o, s) from ``peer``: True if it answers a request of ours (whose
        record is then dropped, and the peer's count of unanswered requests with it)."""
        a = self.answers.pop((o, s, peer), None)
        if a is None:
            return False
        if type(a) is tuple:
            a[0].asked -= 1
        return True

    def expire(self, now: float) -> None:
        """Forget requests older than ``ttl``: their peers may be asked again."""
        req = self.requested
        limit = now - self.ttl
        while req:
            key = next(iter(req))
            if req[key] > limit:
                break
            del req[key]
        if not req:
            self.answers.clear()
            for b in self.budgets.values():
                b.asked = 0
            return
        # request records past the same age, oldest first
        ans = self.answers
        while ans:
            k = next(iter(ans))
            a = ans[k]
            if (a[1] if type(a) is tuple else a) > limit:
                break
            _forget(ans.pop(k))


def _forget(a: Any) -> None:
    """A request record left ``answers`` unanswered: its peer may be asked again."""
    if type(a) is tuple:
        a[0].asked -= 1
