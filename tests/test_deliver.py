"""The node's deliveries to the application (``gossipfast._deliver``), both builds."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from gossipfast import _deliver as loaded
from gossipfast import _hot
from gossipfast.types import Message, MessageId, origin_str


def _load_pure() -> ModuleType:
    path = Path(loaded.__file__).with_name("_deliver.py")
    spec = importlib.util.spec_from_file_location("gossipfast._deliver_pure", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


BUILDS = {"pure": _load_pure()}
if _hot.is_compiled(loaded):
    BUILDS["compiled"] = loaded


@pytest.fixture(params=["compiled", "pure"])
def mod(request: pytest.FixtureRequest) -> ModuleType:
    if request.param not in BUILDS:
        pytest.skip("compiled _deliver not loaded (pure build requested or not built)")
    return BUILDS[request.param]


def test_messages_in_order_without_our_own(mod: ModuleType) -> None:
    names: dict[int, str] = {}
    out = mod.messages([(5, 1, 2, b"a"), (9, 7, 1, b"own"), (5, 2, 3, b"b")], 9, names)
    assert out == [
        Message(MessageId.from_parts(5, 1), origin_str(5), b"a", 2),
        Message(MessageId.from_parts(5, 2), origin_str(5), b"b", 3),
    ]
    assert all(type(m.id) is MessageId for m in out)
    assert names == {5: origin_str(5)}
    assert mod.message_id(2**64 - 1, 2**63 - 1) == MessageId.from_parts(2**64 - 1, 2**63 - 1)


def test_the_name_cache_is_bounded(mod: ModuleType) -> None:
    names: dict[int, str] = {}
    for o in range(10_000):
        mod.messages([(o, 1, 1, b"x")], -1, names)
        assert len(names) <= 4096


def test_a_failing_hook_does_not_stop_the_others(mod: ModuleType) -> None:
    seen: list[bytes] = []

    def hook(m: Any) -> None:
        if m.payload == b"bad":
            raise ValueError("boom")
        seen.append(m.payload)

    batch = [(1, s, 1, p) for s, p in enumerate([b"a", b"bad", b"b", b"bad"], 1)]
    msgs = mod.messages(batch, 0, {})
    failures, first = mod.call_each(hook, msgs)
    assert seen == [b"a", b"b"] and failures == 2
    assert isinstance(first, ValueError)
    assert mod.call_each(seen.append, []) == (0, None)
