# cython: annotation_typing=False
"""Deliveries to the application: the engine's tuples made into public messages.

Hot module (compiled by Cython with ``_deliver.pxd``; nothing here imports Cython). At
full rate a node hands tens of thousands of messages a second to the application; in
the interpreter, the loop that built each :class:`~gossipfast.types.Message` and called
the hook cost about a fifth more than these compiled loops (321 vs 256 ns per delivery
to a hook, one-off script).
"""

from __future__ import annotations

import struct
from typing import Any

from .types import Message, MessageId, origin_str

__all__ = ["call_each", "call_hook", "message_id", "messages"]

_pack = struct.Struct(">QQ").pack
_new_bytes = bytes.__new__
#: Origins whose hex name is cached (the cache is cleared beyond it).
_NAMES_MAX = 4096
#: Messages :func:`call_hook` makes before handing them over (see there).
_ROUND = 64


def message_id(origin: int, seq: int) -> MessageId:
    """The 16-byte id of ``(origin, seq)`` (without the length check of the
    constructor: 16 bytes by construction)."""
    return _new_bytes(MessageId, _pack(origin, seq))


def messages(deliveries: list, own: int, names: dict, senders: dict) -> list:
    """The :class:`Message` of each ``(origin, seq, hops, payload)`` delivery, in order,
    but those of origin ``own``; ``names`` caches origins' hex names (bounded),
    ``senders`` maps origins to node ids (the member list's)."""
    out = []
    for d in deliveries:
        origin = d[0]
        if origin == own:
            continue
        name = names.get(origin)
        if name is None:
            if len(names) >= _NAMES_MAX:
                names.clear()
            name = origin_str(origin)
            names[origin] = name
        out.append(Message(message_id(origin, d[1]), name, d[3], d[2], senders.get(origin)))
    return out


def call_hook(hook: Any, deliveries: list, own: int, names: dict, senders: dict) -> tuple:
    """Call ``hook(m)`` for the :class:`Message` of each delivery, as :func:`messages`
    makes them, in rounds of ``_ROUND``: make a round's messages, then hand them over.

    One socket read can hold hundreds of deliveries. Made all at once, their message
    ids (objects of a Python class, so counted by the cyclic GC) pushed the young
    generation past its threshold every thousand or so deliveries, and each collection
    moved the live batch to an older generation, which set off full collections. A
    round the hook does not keep is freed before the next is made. One message at a
    time keeps the count as low but measured slower than rounds (about 150 ns more
    per delivery with the bench's hook). One failing call does not stop the others.

    Returns ``(failures, first exception or None)``.
    """
    failures = 0
    first = None
    n = len(deliveries)
    i = 0
    while i < n:
        f, exc = call_each(hook, messages(deliveries[i : i + _ROUND], own, names, senders))
        i += _ROUND
        if f:
            failures += f
            if first is None:
                first = exc
    return (failures, first)


def call_each(hook: Any, msgs: list) -> tuple:
    """Call ``hook(m)`` for each message; one failing call does not stop the others.

    Returns ``(failures, first exception or None)``.
    """
    failures = 0
    first = None
    for m in msgs:
        try:
            hook(m)
        except Exception as exc:
            failures += 1
            if first is None:
                first = exc
    return (failures, first)
