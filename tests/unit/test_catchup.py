"""Catch-up (``gossipfast._catchup``): digests, Want, Gone, the fresh-join baseline and
anti-entropy, driven through a lone Plumtree (whichever build is loaded)."""

from __future__ import annotations

from typing import Any

from gossipfast._outputs import Outputs
from gossipfast._plumtree import Plumtree
from gossipfast._timers import TimerWheel
from gossipfast.config import Config
from gossipfast.wire import Digest, Gone, Gossip, Want

ME = 1
A = "10.1.0.1:7000"
B = "10.1.0.2:7000"
C = "10.1.0.3:7000"
X = 77


def plumtree(**fields: Any) -> Plumtree:
    return Plumtree(ME, Config(**fields), TimerWheel(), Outputs())


def take(pt: Plumtree) -> dict[str, list]:
    return pt.out.take()[0]


def test_a_new_neighbour_gets_our_digest_and_the_first_opens_the_baseline() -> None:
    pt = plumtree()
    pt.dedup.check_and_insert(X, 1)
    pt.neighbor_up(A, 5.0)
    pt.neighbor_up(B, 6.0)
    c = pt.catchup
    assert c.first_up == 5.0 and c.baseline_open and c.known_before == {X}
    out = take(pt)
    assert out[A] == [Digest([X, 1])] and out[B] == [Digest([X, 1])]
    assert pt.s_digest == 2


def test_the_first_digest_skips_unknown_history_and_no_gone_answers_it() -> None:
    pt = plumtree()
    pt.neighbor_up(A, 0.0)
    take(pt)
    pt.catchup.on_digest(A, [X, 50], 0.5)
    assert take(pt) == {}  # nothing pulled: a new node starts at the present
    assert pt.catchup.skipped == {X: 50} and not pt.catchup.baseline_open
    pt.catchup.on_want(A, [X, 1, 50])
    assert take(pt) == {}  # skipped ids were never seen here: no Gone


def test_a_later_digest_pulls_what_we_miss_as_ranges_and_books_the_requests() -> None:
    pt = plumtree()
    pt.neighbor_up(A, 0.0)
    pt.catchup.on_digest(A, [], 0.1)  # closes the baseline
    take(pt)
    for s in (1, 2, 5):
        pt.dedup.check_and_insert(X, s)
    pt.catchup.on_digest(A, [X, 7, ME, 9], 1.0)  # our own origin is never asked for
    assert take(pt) == {A: [Want([X, 3, 4, X, 6, 7])]}
    assert pt.catch_up_requested == 4 and pt.s_want == 1
    assert set(pt.requests.requested) == {(X, 3), (X, 4), (X, 6), (X, 7)}
    # asked within the last anti-entropy interval: not asked again
    pt.catchup.on_digest(A, [X, 7], 1.5)
    assert take(pt) == {}
    pt.catchup.on_digest(A, [X, 7], 2.5)
    assert take(pt) == {A: [Want([X, 3, 4, X, 6, 7])]}


def test_a_want_is_answered_from_the_store_and_with_gone_for_what_left_it() -> None:
    pt = plumtree()
    pt.neighbor_up(A, 0.0)
    take(pt)
    for s in (1, 2, 3):
        pt.dedup.check_and_insert(X, s)
    pt.store.put(X, 2, 4, b"two", 0.0)
    pt.catchup.on_want(A, [X, 1, 4])  # 4 was never seen: no answer for it
    assert take(pt) == {A: [Gossip(X, 2, 4, b"two"), Gone([X, 1, 1, X, 3, 3])]}
    assert (pt.s_gossip, pt.s_gone) == (1, 1)


def test_a_want_of_a_stranger_or_a_bad_range_is_not_answered() -> None:
    pt = plumtree()
    pt.neighbor_up(A, 0.0)
    take(pt)
    pt.store.put(X, 1, 1, b"one", 0.0)
    pt.catchup.on_want(B, [X, 1, 1])  # not a neighbour
    pt.catchup.on_want(A, [X, 2, 1, X])  # last < first, and a broken triple
    assert take(pt) == {} and pt.bad == 2


def test_gone_records_the_ids_as_lost_and_passes_the_news_on() -> None:
    pt = plumtree(fifo=True)
    for p in (A, B, C):
        pt.neighbor_up(p, 0.0)
    take(pt)
    pt.dedup.check_and_insert(X, 1)
    pt.dedup.check_and_insert(X, 4)
    pt.catchup.on_gone(A, [X, 2, 3])
    assert pt.lost == 2 and pt.gaps == [(X, 2)]
    assert pt.dedup.contains(X, 2) and pt.dedup.contains(X, 3)
    out = take(pt)
    assert out == {B: [Gone([X, 2, 3])], C: [Gone([X, 2, 3])]}
    pt.catchup.on_gone(B, [X, 2, 3])  # known already: nothing new, nothing passed on
    assert take(pt) == {} and pt.lost == 2


def test_anti_entropy_sends_the_previous_snapshot_to_each_neighbour_in_turn() -> None:
    pt = plumtree()
    pt.neighbor_up(A, 0.0)
    pt.neighbor_up(B, 0.0)
    take(pt)
    pt.dedup.now = 1.0
    pt.dedup.check_and_insert(X, 3)
    c = pt.catchup
    c.anti_entropy(1.0)  # first snapshot: nothing sent yet
    assert take(pt) == {} and c.ae_snapshot == [X, 3]
    pt.dedup.check_and_insert(X, 4)
    c.anti_entropy(2.0)
    c.anti_entropy(3.0)
    out = take(pt)
    assert sorted(out) == [A, B]  # one each, in turn
    assert out[pt.active[1]] == [Digest([X, 3])] and out[pt.active[0]] == [Digest([X, 4])]
