"""The member list through the public API: members(), MemberUp/MemberDown, meta,
set_meta and Message.sender, on real nodes over loopback (both event loops)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from support.nodekit import FAST, until

import gossipfast

pytestmark = [pytest.mark.network, pytest.mark.timeout(90)]


async def _cluster(n: int, **kw: Any) -> list[gossipfast.Node]:
    nodes = [
        gossipfast.Node("127.0.0.1:0", config=FAST, meta={"i": str(i)}, **kw) for i in range(n)
    ]
    for node in nodes:
        await node.start()
    for node in nodes[1:]:
        await node.join([nodes[0].address])
    return nodes


def _ids(nodes: list[gossipfast.Node]) -> set[str]:
    return {n.id for n in nodes}


def test_members_sender_meta_and_member_events(arun: Callable[..., Any]) -> None:
    async def main() -> None:
        nodes = await _cluster(5)
        try:
            everyone = _ids(nodes)
            await until(
                lambda: all(set(n.members()) == everyone for n in nodes), what="member lists"
            )
            first = nodes[0].members()
            assert {m.id: m.meta for m in first.values()} == {
                n.id: {"i": str(i)} for i, n in enumerate(nodes)
            }
            assert first[nodes[3].id].address == nodes[3].address
            # sender: every delivery names the node that broadcast it
            await nodes[2].broadcast(b"from two")
            got = []
            it = nodes[4].messages()
            m = await it.__anext__()
            got.append(m)
            assert m.payload == b"from two" and m.sender == nodes[2].id
            # set_meta converges everywhere
            nodes[1].set_meta({"zone": "eu-1", "role": "cache"})
            assert nodes[1].meta == {"zone": "eu-1", "role": "cache"}
            await until(
                lambda: all(
                    n.members()[nodes[1].id].meta == {"zone": "eu-1", "role": "cache"}
                    for n in nodes
                ),
                what="new meta everywhere",
            )
            # a leaver: MemberDown(left) at the others, gone from their lists
            leaver = nodes.pop()
            await leaver.leave()
            await until(
                lambda: all(leaver.id not in n.members() for n in nodes), what="leaver gone"
            )
            events = []
            ev_it = nodes[0].events()
            while True:
                ev = await ev_it.__anext__()
                events.append(ev)
                if type(ev) is gossipfast.MemberDown:
                    break
            assert ev == gossipfast.MemberDown(ev.member, "left") and ev.member.id == leaver.id
            ups = {e.member.id for e in events if type(e) is gossipfast.MemberUp}
            assert ups == everyone - {nodes[0].id}
        finally:
            for n in nodes:
                await n.leave()

    arun(main())


def test_a_crashed_node_is_member_down_failed(arun: Callable[..., Any]) -> None:
    async def main() -> None:
        nodes = await _cluster(4)
        try:
            await until(lambda: all(set(n.members()) == _ids(nodes) for n in nodes), what="lists")
            victim = nodes.pop(2)
            victim._abort()  # no goodbye: the neighbours' heartbeats must notice
            await until(
                lambda: all(victim.id not in n.members() for n in nodes),
                timeout=20,
                what="crash noticed everywhere",
            )
            it = nodes[0].events()
            while True:
                ev = await it.__anext__()
                if type(ev) is gossipfast.MemberDown:
                    break
            assert ev.member.id == victim.id and ev.reason == "failed"
        finally:
            for n in nodes:
                await n.leave()

    arun(main())


@pytest.mark.parametrize(
    ("meta", "error", "match"),
    [
        ({"k": 1}, TypeError, "meta maps str to str"),
        ({1: "v"}, TypeError, "meta maps str to str"),
        (["k"], TypeError, "meta is a mapping"),
        ({"k": "v" * 600}, gossipfast.ConfigError, "member_meta_max"),
    ],
)
def test_bad_meta_is_a_clear_error(
    arun: Callable[..., Any], meta: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        gossipfast.Node("127.0.0.1:0", meta=meta)

    async def main() -> None:
        async with gossipfast.Node("127.0.0.1:0", meta={"a": "b"}) as a:
            with pytest.raises(error, match=match):
                a.set_meta(meta)
            assert a.meta == {"a": "b"}  # unchanged
            assert a.members()[a.id].meta == {"a": "b"}

    arun(main())


def test_members_before_start_is_empty() -> None:
    assert dict(gossipfast.Node("127.0.0.1:0").members()) == {}
