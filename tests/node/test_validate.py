"""Node.validate: refused messages are not delivered or passed on; errors refuse."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from support.nodekit import FAST, until

import gossipfast

pytestmark = [pytest.mark.network, pytest.mark.timeout(60)]


class Checked(gossipfast.Node):
    """Accepts payloads that start with b"ok"; raises on b"boom"."""

    def validate(self, message: gossipfast.Message) -> bool:
        if message.payload.startswith(b"boom"):
            raise ValueError("cannot parse")
        return message.payload.startswith(b"ok")


def test_validate_refuses_and_an_exception_refuses_once_logged(
    arun: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with (
            gossipfast.Node("127.0.0.1:0", config=FAST) as src,
            Checked("127.0.0.1:0", config=FAST) as a,
            Checked("127.0.0.1:0", config=FAST) as b,
        ):
            await a.join([src.address])
            await b.join([a.address])
            await until(lambda: len(b.members()) == 3, what="members")
            for p in (b"ok 1", b"nope", b"boom", b"boom again", b"ok 2"):
                await src.broadcast(p)
            for node in (a, b):
                await until(lambda n=node: n.stats()["rejected"] == 3, what="three refused")
                await until(lambda n=node: n.stats()["delivered"] == 2, what="two accepted")
                it = node.messages()
                got = [(await it.__anext__()).payload for _ in range(2)]
                assert got == [b"ok 1", b"ok 2"]
            assert src.stats()["rejected"] == 0  # the default validate accepts all

    with caplog.at_level(logging.ERROR, logger="gossipfast"):
        arun(main())
    raised = [r for r in caplog.records if "validate raised" in r.getMessage()]
    assert len(raised) == 2  # once per node, though each refused two by raising
