"""Seeds: fixed ``host:port`` addresses and ``dns:NAME:PORT`` names resolved to many.

Every A and AAAA record of a ``dns:`` seed's name is a seed (the convention of a
Kubernetes headless service), resolved through the system resolver at the first join
and again whenever the node is isolated, so a fleet whose members all restarted with
new addresses still finds itself.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .errors import ConfigError
from .transport import format_address, parse_address

log = logging.getLogger("gossipfast.seeds")

#: Prefix of a seed whose name is resolved to one seed per address record.
DNS_PREFIX = "dns:"
#: Longest wait between two resolutions of an isolated node's names that keep failing.
RETRY_MAX = 30.0


@dataclass(frozen=True)
class DnsSeed:
    """A ``dns:NAME:PORT`` seed: every address ``NAME`` resolves to, at ``port``."""

    name: str
    port: int

    def __str__(self) -> str:
        return f"{DNS_PREFIX}{self.name}:{self.port}"


def parse_seed(seed: str) -> str | DnsSeed:
    """Check one seed: a ``host:port`` string comes back as it is, ``dns:NAME:PORT`` as a
    :class:`DnsSeed`. ``ConfigError`` names the seed and what is wrong with it."""
    if not isinstance(seed, str):
        raise ConfigError(f"a seed is a 'host:port' or 'dns:NAME:PORT' string, not {seed!r}")
    if seed.startswith(DNS_PREFIX):
        name, sep, port_s = seed[len(DNS_PREFIX) :].rpartition(":")
        if not sep or not name or not port_s.isdigit() or not 0 < int(port_s) <= 65535:
            raise ConfigError(f"seed {seed!r}: expected dns:NAME:PORT (a port is required)")
        return DnsSeed(name, int(port_s))
    try:
        _, port = parse_address(seed)
    except ValueError:
        raise ConfigError(
            f"seed {seed!r}: expected host:port, [v6]:port or dns:NAME:PORT"
        ) from None
    if port == 0:
        raise ConfigError(f"seed {seed!r}: port 0 is not an address to dial")
    return seed


async def resolve(seed: DnsSeed, timeout: float) -> list[str]:
    """The addresses ``seed``'s name resolves to (A and AAAA, in the resolver's order,
    without repeats) as ``host:port`` strings. ``OSError`` when the name does not
    resolve, ``TimeoutError`` when the resolver does not answer within ``timeout``."""
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.getaddrinfo(seed.name, seed.port, type=socket.SOCK_STREAM), timeout
    )
    out: list[str] = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        addr = format_address(str(sockaddr[0]), seed.port)
        if addr not in out:
            out.append(addr)
    return out


def is_self(address: str, own: str, listen_host: str, listen_port: int) -> bool:
    """True if dialling ``address`` would reach this node: it is our advertised address,
    or a local address on our listening port that our listener is bound to (every local
    address for a wildcard listen host)."""
    if address == own:
        return True
    try:
        host, port = parse_address(address)
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if port != listen_port:
        return False
    if listen_host not in ("", "0.0.0.0", "::"):
        try:
            return ip == ipaddress.ip_address(listen_host)
        except ValueError:
            return False
    if listen_host == "0.0.0.0" and ip.version == 6:
        return False  # an IPv4 wildcard listener does not answer on IPv6
    # a wildcard listener: any address of this host is us (binding to it succeeds)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((str(ip), 0))
    except OSError:
        return False
    return True


async def resolve_all(names: Iterable[DnsSeed], timeout: float) -> tuple[list[str], list[str]]:
    """Resolve ``names`` together: the addresses found (without repeats) and one line
    per name that did not resolve, saying why."""
    names = list(names)
    results = await asyncio.gather(*(resolve(n, timeout) for n in names), return_exceptions=True)
    found: list[str] = []
    problems: list[str] = []
    for name, r in zip(names, results):
        if isinstance(r, asyncio.TimeoutError):
            problems.append(f"{name}: no answer from the resolver within {timeout:g} s")
        elif isinstance(r, OSError):
            problems.append(f"{name} does not resolve ({r.strerror or r})")
        elif isinstance(r, BaseException):
            raise r
        elif not r:
            problems.append(f"{name} has no A or AAAA records")
        else:
            found += [a for a in r if a not in found]
    return found, problems


class DnsRefresher:
    """Resolves a node's ``dns:`` seeds again while it is isolated and hands the fresh
    addresses to ``join``: every ``interval`` seconds while ``isolated()`` says so,
    backing off (doubling, up to :data:`RETRY_MAX`) while resolution fails, logging
    once per run of failures. Never raises: a node that joined once keeps going."""

    def __init__(
        self,
        isolated: Callable[[], bool],
        join: Callable[[list[str]], None],
        is_self: Callable[[str], bool],
        interval: float,
    ) -> None:
        self.names: list[DnsSeed] = []
        self._isolated = isolated
        self._join = join
        self._is_self = is_self
        self._interval = max(interval, 0.05)
        self.failures = 0  # resolutions while isolated where some name did not resolve

    def add(self, names: Iterable[DnsSeed]) -> None:
        """Remember more names (each once)."""
        for n in names:
            if n not in self.names:
                self.names.append(n)

    async def run(self) -> None:
        """Run until cancelled."""
        delay = self._interval
        failing = False
        while True:
            await asyncio.sleep(delay)
            if not self._isolated():
                delay = self._interval
                continue
            found, problems = await resolve_all(self.names, max(self._interval, 1.0))
            if problems:
                self.failures += 1
                if not failing:
                    log.warning("isolated, and seeds do not resolve: %s", "; ".join(problems))
                failing = True
                delay = min(delay * 2.0, RETRY_MAX)
            else:
                if failing:
                    log.info("seeds resolve again: %s", ", ".join(map(str, self.names)))
                failing = False
                delay = self._interval
            fresh = [a for a in found if not self._is_self(a)]
            if fresh:
                self._join(fresh)


__all__ = [
    "DNS_PREFIX",
    "DnsRefresher",
    "DnsSeed",
    "is_self",
    "parse_seed",
    "resolve",
    "resolve_all",
]
