"""The TLS listener: our own accept loop, so that TLS handshakes count against the
admission limits (``max_handshaking`` and ``max_connections`` count handshakes under
way) and their failures are counted and logged; the TLS servers of asyncio and uvloop run
the handshake before the protocol exists and drop failures silently."""

from __future__ import annotations

import asyncio
import socket
import ssl as _ssl
from typing import TYPE_CHECKING, Any

from ._connection import Connection, format_address

if TYPE_CHECKING:
    from .transport import Transport


class TlsListener:
    """A listening socket bound at construction; :meth:`start` accepts on it, admits
    each socket (``Transport._admit``) and hands it to ``loop.connect_accepted_socket``
    with the server's TLS context."""

    def __init__(self, owner: Transport, ssl: _ssl.SSLContext, host: str, port: int) -> None:
        self.owner = owner
        self.ssl = ssl
        #: TLS handshakes under way (admitted sockets without a Connection yet).
        self.handshaking = 0
        self.task: asyncio.Task[None] | None = None
        family, kind, proto, _name, addr = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(511)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.port = int(sock.getsockname()[1])

    def start(self) -> None:
        """Start accepting (the task is one of the owner's, cancelled when it closes)."""
        self.task = self.owner._spawn(self._accept_loop())

    def close(self) -> None:
        """Close the socket if the accept loop never started (else the loop closes it)."""
        if self.task is None:
            self.sock.close()

    async def _accept_loop(self) -> None:
        owner = self.owner
        loop = owner.loop
        try:
            while not owner.closed:
                try:
                    sock, addr = await loop.sock_accept(self.sock)
                except OSError as e:  # out of descriptors and the like: retry shortly
                    owner._log_once("accept", "accepting a connection failed: %s", e)
                    await asyncio.sleep(0.1)
                    continue
                host = str(addr[0])
                if not owner._admit(host):
                    sock.close()
                    continue
                self.handshaking += 1
                owner._spawn(self._tls_accept(sock, host, addr))
        finally:
            self.sock.close()

    async def _tls_accept(self, sock: socket.socket, host: str, addr: Any) -> None:
        owner = self.owner
        made: list[Connection] = []

        def factory() -> Connection:
            c = Connection(owner, False, None)
            c.host = host  # admitted, and counted per host, by _accept_loop
            made.append(c)
            return c

        try:
            await owner.loop.connect_accepted_socket(
                factory,
                sock,
                ssl=self.ssl,
                ssl_handshake_timeout=owner.config.connect_timeout,
            )
        except asyncio.CancelledError:
            if not any(c.tr is not None for c in made):
                owner.admission.host_closed(host)
            raise
        except Exception as e:  # whatever the peer's bytes made the TLS layer raise
            # (the loop's transport owns the socket now and closes it)
            if not any(c.tr is not None for c in made):
                owner.admission.host_closed(host)
            if not owner.closed:
                owner._tls_failed("tls-in", format_address(host, int(addr[1])), e)
        finally:
            self.handshaking -= 1


__all__ = ["TlsListener"]
