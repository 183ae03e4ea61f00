"""The transport's open connections: the set, the ``connections`` gauge, what each
inbound one holds of its host's admission, and waiting for all of them to go at close.

It knows no socket: a connection here is anything with ``outbound``, ``ready``,
``host``, ``remote_host()`` and ``close(reason, abort=)`` (tests/transport/test_conns.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ._admission import Admission

if TYPE_CHECKING:
    from ._connection import Connection


class OpenConnections:
    """Connections whose socket is up, from :meth:`add` until :meth:`remove`.

    ``counters`` is the transport's counter dict (``connections``,
    ``connections_opened``, ``connections_accepted``); ``admission`` decides and counts
    inbound refusals.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, admission: Admission, counters: dict[str, int]
    ) -> None:
        self._loop = loop
        self._admission = admission
        self._c = counters
        #: The open connections (back-pressure reads this set too).
        self.all: set[Connection] = set()
        #: Set while :meth:`close` waits for the last one to go.
        self._all_gone: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self.all)

    def __iter__(self) -> Iterator[Connection]:
        """A snapshot: closing a connection while iterating is fine."""
        return iter(list(self.all))

    def admit(self, host: str, handshaking: int, now: float) -> bool:
        """True if a new inbound connection from ``host`` is admitted: then it counts
        against the host's limits until :meth:`remove` (or ``Admission.host_closed``).
        ``handshaking``: TLS handshakes under way (open sockets not here yet)."""
        unready = handshaking + sum(1 for x in self.all if not x.ready and not x.outbound)
        if self._admission.admit(host, len(self.all) + handshaking, unready, now) is not None:
            return False
        self._admission.host_opened(host)
        return True

    def add(self, c: Connection, handshaking: int, now: float) -> bool:
        """``c``'s socket is up: count it open, after admitting it if it is inbound
        and was not admitted at accept (behind TLS). False: refused, the caller closes
        it."""
        if not c.outbound and c.host is None:
            host = c.remote_host()
            if not self.admit(host, handshaking, now):
                return False
            c.host = host
        self.all.add(c)
        self._c["connections"] += 1
        self._c["connections_opened"] += 1
        if not c.outbound:
            self._c["connections_accepted"] += 1
        return True

    def remove(self, c: Connection) -> None:
        """``c`` is gone (open or not): free its host's admission, count it closed, and
        end :meth:`close`'s wait if it was the last."""
        if c.host is not None:
            self._admission.host_closed(c.host)
            c.host = None
        if c not in self.all:
            return
        self.all.discard(c)
        self._c["connections"] -= 1
        gone = self._all_gone
        if not self.all and gone is not None and not gone.done():
            gone.set_result(None)

    async def close(self, grace: float) -> None:
        """Close every connection, wait up to ``grace`` seconds for them to go, then
        abort those left."""
        for c in self:
            c.close("shutdown")
        if self.all:
            self._all_gone = self._loop.create_future()
            try:
                await asyncio.wait_for(self._all_gone, grace)
            except asyncio.TimeoutError:
                pass
        self.abort()

    def abort(self) -> None:
        """Drop every connection at once."""
        for c in self:
            c.close("shutdown", abort=True)
