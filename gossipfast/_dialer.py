"""Dialling: one outbound TCP (or TLS) connection per dial of a link, within
``Config.dial_rate`` and ``connect_timeout``.

The :class:`Dialer` knows nothing of the transport that owns it: it is given the loop, the
admission limits, the counters and a few callbacks. What to do once a dial failed (dial
again, forget the link, tell the engine) is the owner's, through ``failed``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as _ssl
from collections.abc import Callable, Coroutine
from typing import Any

from ._admission import Admission
from ._connection import Connection, parse_address
from ._links import Link
from .config import Config

log = logging.getLogger("gossipfast")

#: Exceptions of a dial that mean the TCP connection was up and TLS failed (a handshake
#: refused, reset or timed out by the peer).
TLS_ERRORS = (_ssl.SSLError, ConnectionResetError, ConnectionAbortedError, BrokenPipeError)


class Dialer:
    """Opens the connections of links (``dial``), and ends those of a dial that failed or
    was cancelled.

    ``connection(peer)`` makes the outbound protocol of one dial; ``spawn(coro)`` runs a
    task the owner cancels when it closes; ``lost(c, exc)`` is the owner's
    ``connection_lost`` for a connection the dial ends itself; ``tls_failed(cause, who,
    exc)`` counts and logs a failed TLS handshake; ``failed(link, up)`` hears of a dial
    that failed or was refused by ``dial_rate``, ``up`` when its connection had come up
    (and ``lost`` was told). ``counters`` gets ``dials`` and ``dial_failures``.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        config: Config,
        client_ssl: _ssl.SSLContext | None,
        admission: Admission,
        counters: dict[str, int],
        *,
        connection: Callable[[str], Connection],
        spawn: Callable[[Coroutine[Any, Any, None]], object],
        lost: Callable[[Connection, Exception | None], None],
        tls_failed: Callable[[str, str, BaseException], None],
        failed: Callable[[Link, bool], None],
    ) -> None:
        self.loop = loop
        self.config = config
        self.client_ssl = client_ssl
        self.admission = admission
        self._c = counters
        self._connection = connection
        self._spawn = spawn
        self._lost = lost
        self._tls_failed = tls_failed
        self._failed = failed

    def dial(self, link: Link) -> None:
        """Dial ``link.peer`` (``link.dialing`` until the dial is over)."""
        link.dialing = True
        if not self.admission.dial_allowed(link.peer, self.loop.time()):
            # Over dial_rate for addresses never reached: fail at once, as an unreachable
            # peer would (the engine moves on), without a socket or a task.
            self.loop.call_soon(self._refused, link)
            return
        self._c["dials"] += 1
        self._spawn(self._dial_task(link))

    def _refused(self, link: Link) -> None:
        link.dialing = False
        self._failed(link, False)

    async def _dial_task(self, link: Link) -> None:
        peer = link.peer
        made: list[Connection] = []

        def factory() -> Connection:
            c = self._connection(peer)
            made.append(c)
            return c

        tls = self.client_ssl
        timeout = self.config.connect_timeout
        error: BaseException | None = None
        try:
            host, port = parse_address(peer)
            await asyncio.wait_for(
                self.loop.create_connection(
                    factory,
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls is not None else None,
                    ssl_handshake_timeout=timeout if tls is not None else None,
                ),
                timeout,
            )
        except asyncio.CancelledError:
            link.dialing = False
            self._abandon(made)
            raise
        except (OSError, ValueError, asyncio.TimeoutError, _ssl.SSLError) as e:
            error = e
        link.dialing = False
        if error is None:
            return
        self._c["dial_failures"] += 1
        log.debug("dial %s failed: %s: %s", peer, type(error).__name__, error)
        if tls is not None and isinstance(error, TLS_ERRORS):
            self._tls_failed("tls-out", peer, error)
        self._failed(link, self._abandon(made))

    def _abandon(self, made: list[Connection]) -> bool:
        """Drop the connections of a dial that failed or was cancelled; True if one of
        them was already up (connection_made ran).

        A connect timeout may cancel ``create_connection`` after ``connection_made``, and
        uvloop then never calls ``connection_lost``: the dial ends such a connection here,
        once (docs/internals.md, "A dial cut by its timeout after connection_made").
        """
        up = False
        for c in made:
            c.abandoned = True
            if c.tr is not None:
                up = True
                if not c.lost:
                    c.close("dial-failed", abort=True)
                    self._lost(c, None)
        return up


__all__ = ["TLS_ERRORS", "Dialer"]
