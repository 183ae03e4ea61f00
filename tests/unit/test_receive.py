"""The node's receive side (``gossipfast._receive``): observers, the hook or the queue,
the validate hook, and what happens when application code raises."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from gossipfast._inbox import Inbox
from gossipfast._receive import Receiver
from gossipfast.config import Config
from gossipfast.types import Message

BATCH = [(7, 1, 2, b"a"), (7, 2, 2, b"b")]


def receiver(check: Any = lambda m: True) -> Receiver:
    r: Receiver
    r = Receiver(Inbox(Config()), check=check, remove=lambda obs: r.observers.remove(obs))
    return r


def test_without_a_hook_the_batch_is_queued_after_the_observers_saw_it() -> None:
    r = receiver()
    seen: list[Any] = []
    r.observers.append(seen.append)
    r.deliver(BATCH, None)
    assert seen == [BATCH]
    assert [m.payload for m in r.inbox.messages_in.items] == [b"a", b"b"]


def test_a_raising_observer_is_removed_and_a_raising_hook_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r = receiver()

    def bad_observer(batch: Any) -> None:
        raise RuntimeError("observer")

    def bad_hook(m: Message) -> None:
        raise RuntimeError("hook")

    r.observers.append(bad_observer)
    r.deliver(BATCH, bad_hook)
    r.deliver(BATCH, bad_hook)
    assert r.observers == [] and r.hook_errors == 4
    errors = [rec.getMessage() for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert len(errors) == 2 and errors[1] == "handle_broadcast raised (further errors not logged)"
    assert not r.inbox.messages_in.items  # a hook takes the place of the queue


def test_validate_sees_the_sender_and_an_exception_refuses() -> None:
    seen: list[Message] = []
    r = receiver(lambda m: seen.append(m) or m.payload != b"no")
    r.senders[7] = "node-7"
    assert r.validate(7, 1, 3, b"ok") and not r.validate(7, 2, 3, b"no")
    assert (seen[0].sender, seen[0].hops, seen[0].payload) == ("node-7", 3, b"ok")
    r.check = lambda m: 1 / 0 > 0
    assert not r.validate(7, 3, 3, b"x") and r.validate_errors == 1
