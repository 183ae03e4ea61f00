"""The node's deliveries to the application (``gossipfast._deliver``), both builds."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from support.buildkit import builds, pick

from gossipfast.types import Message, MessageId, origin_str

BUILDS = builds("_deliver")


@pytest.fixture(params=["compiled", "pure"])
def mod(request: pytest.FixtureRequest) -> ModuleType:
    return pick(BUILDS, request.param, "_deliver")


def test_messages_in_order_without_our_own(mod: ModuleType) -> None:
    names: dict[int, str] = {}
    batch = [(5, 1, 2, b"a"), (9, 7, 1, b"own"), (5, 2, 3, b"b"), (6, 1, 1, b"c")]
    out = mod.messages(batch, 9, names, {5: "n5@h:1/ab"})
    assert out == [
        Message(MessageId.from_parts(5, 1), origin_str(5), b"a", 2, "n5@h:1/ab"),
        Message(MessageId.from_parts(5, 2), origin_str(5), b"b", 3, "n5@h:1/ab"),
        Message(MessageId.from_parts(6, 1), origin_str(6), b"c", 1, None),  # not known yet
    ]
    assert all(type(m.id) is MessageId for m in out)
    assert names == {5: origin_str(5), 6: origin_str(6)}
    assert mod.message_id(2**64 - 1, 2**63 - 1) == MessageId.from_parts(2**64 - 1, 2**63 - 1)


def test_the_name_cache_is_bounded(mod: ModuleType) -> None:
    names: dict[int, str] = {}
    for o in range(10_000):
        mod.messages([(o, 1, 1, b"x")], -1, names, {})
        assert len(names) <= 4096


def test_a_failing_hook_does_not_stop_the_others(mod: ModuleType) -> None:
    seen: list[bytes] = []

    def hook(m: Any) -> None:
        if m.payload == b"bad":
            raise ValueError("boom")
        seen.append(m.payload)

    batch = [(1, s, 1, p) for s, p in enumerate([b"a", b"bad", b"b", b"bad"], 1)]
    msgs = mod.messages(batch, 0, {}, {})
    failures, first = mod.call_each(hook, msgs)
    assert seen == [b"a", b"b"] and failures == 2
    assert isinstance(first, ValueError)
    assert mod.call_each(seen.append, []) == (0, None)


def test_call_hook_hands_over_every_message_in_order_in_rounds(mod: ModuleType) -> None:
    # More than two rounds, our own messages among them, failures in several rounds.
    n = 197  # three rounds of 64 and five
    batch = [(7 if s % 10 == 0 else 5, s, s % 4, str(s).encode()) for s in range(1, n + 1)]
    got: list[Message] = []

    def hook(m: Message) -> None:
        got.append(m)
        if m.id.seq % 50 == 7:
            raise KeyError(m.id.seq)

    failures, first = mod.call_hook(hook, batch, 7, {}, {})
    assert got == mod.messages(batch, 7, {}, {})
    assert failures == sum(1 for o, s, _, _ in batch if o != 7 and s % 50 == 7) >= 3
    assert isinstance(first, KeyError) and first.args == (7,)
    assert mod.call_hook(hook, [], 7, {}, {}) == (0, None)


def test_call_hook_keeps_the_gc_count_of_a_big_batch_low() -> None:
    # The reason for the rounds: a batch's message ids must not all be alive at once.
    import gc

    mod = BUILDS.get("compiled", BUILDS["pure"])
    batch = [(5, s, 1, b"p") for s in range(1, 2001)]
    peak = 0

    def hook(m: Message) -> None:
        nonlocal peak
        peak = max(peak, gc.get_count()[0] - start)

    was = gc.isenabled()
    gc.disable()
    try:
        gc.collect()
        start = gc.get_count()[0]
        mod.call_hook(hook, batch, 0, {}, {})
    finally:
        if was:
            gc.enable()
    assert peak <= 2 * 64 + 16  # a round's ids (and spare change), not the batch's 2,000
