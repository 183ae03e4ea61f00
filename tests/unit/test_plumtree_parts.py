"""Plumtree's parts (``_requests``, ``_announce``, ``_intake``, ``_graftprune``), driven
through a lone Plumtree (whichever build is loaded)."""

from __future__ import annotations

from typing import Any

from gossipfast._intake import _run_ids
from gossipfast._outputs import Outputs
from gossipfast._plumtree import Plumtree
from gossipfast._timers import TimerWheel
from gossipfast.config import Config
from gossipfast.wire import Graft, IHave, Prune, Want

ME = 1
A = "10.1.0.1:7000"
B = "10.1.0.2:7000"
X = 77


def plumtree(**fields: Any) -> Plumtree:
    pt = Plumtree(ME, Config(**fields), TimerWheel(), Outputs())
    for p in (A, B):
        pt.neighbor_up(p, 0.0)
    pt.out.take()
    return pt


def sent(pt: Plumtree) -> dict[str, list]:
    return pt.out.take()[0]


# -- Requests ---------------------------------------------------------------------------


def test_grants_are_a_token_bucket_refilled_with_time() -> None:
    pt = plumtree(peer_graft_rate=2.0)
    rq = pt.requests
    assert rq.grant(A, 0.0) and rq.grant(A, 0.0)  # the burst: one second's worth
    assert not rq.grant(A, 0.0) and pt.grafts_withheld == 1
    assert rq.grant(A, 0.5)  # one token back after half a second
    assert rq.grant(B, 0.5)  # each peer has its own bucket


def test_a_peer_that_never_answers_is_asked_nothing_more() -> None:
    pt = plumtree(peer_missing_max=2, peer_graft_rate=100.0)
    rq = pt.requests
    rq.budget(A)
    rq.grafted(X, 1, A, 0.0)
    rq.grafted(X, 2, A, 0.0)
    assert rq.budgets[A].asked == 2
    assert not rq.grant(A, 0.0)  # its unanswered requests are at the bound
    assert rq.take_answer(X, 1, A) and rq.budgets[A].asked == 1
    assert not rq.take_answer(X, 1, A)  # answered once
    assert rq.grant(A, 0.0)


def test_requests_are_forgotten_after_their_ttl() -> None:
    pt = plumtree()
    rq = pt.requests
    rq.budget(A)
    rq.grafted(X, 1, A, 0.0)
    rq.remember(X, 2, B, 20.0)
    assert set(pt.requests.requested) == {(X, 1), (X, 2)}
    rq.expire(31.0)  # the first is past 30 s: its record goes, and A's count with it
    assert set(pt.requests.requested) == {(X, 2)} and rq.budgets[A].asked == 0
    assert (X, 1, A) not in rq.answers and (X, 2, B) in rq.answers
    rq.expire(60.0)
    assert not pt.requests.requested and not rq.answers


def test_answer_tokens_refill_up_to_the_burst() -> None:
    pt = plumtree(peer_answer_rate=10.0, catch_up_max=50)
    b = pt.requests.answer_tokens(A)
    assert b.resends == 50.0
    b.resends = 0.0
    pt.now = 2.0
    assert pt.requests.answer_tokens(A).resends == 20.0
    pt.now = 100.0
    assert pt.requests.answer_tokens(A).resends == 50.0


# -- IHaveQueues ------------------------------------------------------------------------


def test_announcements_extend_runs_and_leave_as_one_ihave_per_peer() -> None:
    pt = plumtree(ihave_interval=0.1)
    q = pt.ihaves
    for s in (1, 2, 3):
        q.announce(A, X, s, 2, 0.0)
    q.announce(A, 9, 1, 1, 0.0)  # another origin interleaves
    q.announce(A, X, 4, 2, 0.0)  # extends X's run
    q.announce(A, X, 6, 2, 0.0)  # a gap: a new run
    q.announce(B, X, 1, 3, 0.0)
    assert sent(pt) == {}  # waits for the interval
    q.flush()
    assert sent(pt) == {A: [IHave([X, 1, 4, 2, 9, 1, 1, 1, X, 6, 6, 2])], B: [IHave([X, 1, 1, 3])]}
    assert pt.s_ihave == 2 and not q.queues


def test_a_full_batch_leaves_at_once() -> None:
    pt = plumtree(ihave_batch_max=3)
    for s in (1, 2, 3):
        pt.ihaves.announce(A, X, s, 0, 0.0)
    assert sent(pt) == {A: [IHave([X, 1, 3, 0])]} and A not in pt.ihaves.queues


# -- IHaveIntake ------------------------------------------------------------------------


def test_run_ids_counts_the_ids_of_well_formed_runs() -> None:
    assert _run_ids([X, 1, 3, 0, X, 5, 5, 0]) == 4
    assert _run_ids([X, 3, 1, 0, X, "a", 2, 0]) == 0
    assert _run_ids([X, 1]) == 0


def test_an_unseen_announced_id_grafts_its_announcer_after_the_delay() -> None:
    pt = plumtree(graft_timeout_1=0.1)
    pt.intake.on_ihave(A, [X, 1, 2, 1], 0.0)
    assert set(pt.missing) == {(X, 1), (X, 2)} and pt.requests.budgets[A].missing == 2
    for item in pt.timers.expire(0.2):
        item[0](item, 0.2)
    pt.control.flush_grafts()
    assert sent(pt) == {A: [Graft([X, 1, X, 2])]}
    assert pt.grafts == 2 and set(pt.requests.requested) == {(X, 1), (X, 2)}


def test_a_big_announcement_is_held_for_half_the_delay() -> None:
    pt = plumtree(graft_timeout_1=0.1)
    pt.intake.on_ihave(A, [X, 1, 40, 1], 0.0)
    assert not pt.missing and pt.intake.ids == 40 and len(pt.intake.held) == 1
    pt.intake.release_held(0.05)
    assert len(pt.missing) == 40 and pt.intake.ids == 0


# -- GraftPrune -------------------------------------------------------------------------


def test_batches_leave_as_one_message_per_peer_and_kind() -> None:
    pt = plumtree()
    c = pt.control
    c.queue_prune(A, X)
    c.queue_prune(A, X)  # once per origin
    c.queue_prune(A, 9)
    c.queue_graft(B, X, 3)
    c.queue_graft(B, 9, 0)
    c.queue_want(B, X, 5)
    c.flush_prunes()
    c.flush_grafts()
    assert sent(pt) == {A: [Prune([X, 9])], B: [Graft([X, 3, 9, 0]), Want([X, 5, 5])]}
    assert (pt.s_prune, pt.s_graft, pt.s_want) == (1, 1, 1)


def test_a_graft_resends_stored_payloads_within_the_answer_budget() -> None:
    pt = plumtree(peer_answer_rate=1.0, catch_up_max=1)
    pt.store.put(X, 1, 2, b"a", 0.0)
    pt.store.put(X, 2, 2, b"b", 0.0)
    pt.control.on_prune(A, [X])
    assert A in pt.tree_of(X)[1]
    pt.control.on_graft(A, [X, 1, X, 2])
    assert [m.seq for m in sent(pt)[A]] == [1]  # one answer token: the second is refused
    assert pt.answers_refused == 1 and A in pt.tree_of(X)[0]
