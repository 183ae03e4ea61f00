"""Admission control: which inbound connections the transport accepts, which addresses
it may dial.

Sans-IO: every decision takes ``now``; the transport passes ``loop.time()``. Refusals are
counted in the transport's counters and logged once per cause (``log_once``).

- Inbound: ``max_connections`` and ``max_handshaking`` (bounded memory against
  connection floods), ``max_connections_per_host`` and ``accept_rate`` (one address may
  not take every slot, nor churn links faster than the rate).
- Outbound: ``dial_rate`` for addresses never reached; an address whose dial got a valid
  ``Hello`` of our cluster is known good (``MAX_KNOWN_GOOD``, ``KNOWN_GOOD_TTL``) and
  dialled freely. Sizing: docs/internals.md, "The transport".
"""

from __future__ import annotations

from collections.abc import Callable

from .config import Config

#: Remote hosts whose accept-rate buckets are kept (idle ones are forgotten beyond it).
MAX_HOSTS = 65536
#: Addresses dialled without charge to ``Config.dial_rate`` (a node of our cluster
#: answered a dial to them), at most this many, least recently reached forgotten first;
#: and for how long after that answer.
MAX_KNOWN_GOOD = 4096
KNOWN_GOOD_TTL = 3600.0


class Admission:
    """Inbound and outbound connection limits of one transport.

    ``counters`` is the transport's counter dict (``connections_refused``,
    ``host_refusals``, ``dials_limited``); ``log_once(cause, msg, *args)`` logs the first
    refusal of each cause as a warning.
    """

    def __init__(
        self,
        config: Config,
        now: float,
        counters: dict[str, int],
        log_once: Callable[..., None],
    ) -> None:
        self.config = config
        self._c = counters
        self._log_once = log_once
        #: Inbound connections open per remote IP, and each IP's accept bucket
        #: (tokens, when last refilled).
        self.per_host: dict[str, int] = {}
        self.accept: dict[str, tuple[float, float]] = {}
        #: Known-good addresses -> when they last answered a dial; the dial_rate bucket
        #: for the others.
        self.good: dict[str, float] = {}
        self._dial_tokens = max(1.0, config.dial_rate)
        self._dial_at = now

    # -- inbound -----------------------------------------------------------------------
    def admit(self, host: str, opened: int, unready: int, now: float) -> str | None:
        """Why a new inbound connection from ``host`` is refused (counted and logged
        here), or None: then it is charged to the host's accept bucket.

        ``opened`` counts open connections and TLS handshakes under way, ``unready``
        the inbound ones without a ``Hello`` yet (TLS handshakes included).
        """
        cfg = self.config
        if unready >= cfg.max_handshaking or opened >= cfg.max_connections:
            self._c["connections_refused"] += 1
            self._log_once(
                "conn-limit",
                "refusing a connection: %d open, %d in handshake (limits %d, %d)",
                opened,
                unready,
                cfg.max_connections,
                cfg.max_handshaking,
            )
            return "limit"
        why = self.host_refusal(host, now)
        if why is not None:
            self._c["connections_refused"] += 1
            self._c["host_refusals"] += 1
            self._log_once("host-" + why, "refusing a connection from %s: %s", host, why)
        return why

    def host_refusal(self, host: str, now: float) -> str | None:
        """Why a new inbound connection from ``host`` is refused, or None (then charged)."""
        cfg = self.config
        if self.per_host.get(host, 0) >= cfg.max_connections_per_host:
            return f"{cfg.max_connections_per_host} connections open (max_connections_per_host)"
        rate = cfg.accept_rate
        cap = max(1.0, rate)
        accept = self.accept
        tokens, at = accept.get(host, (cap, now))
        tokens = min(cap, tokens + (now - at) * rate)
        if tokens < 1.0:
            accept[host] = (tokens, now)
            return f"over accept_rate={rate:g} connections/s"
        if len(accept) >= MAX_HOSTS and host not in accept:
            # Bounded memory: forget hosts whose bucket has refilled (they lose nothing).
            for h, (t, a) in list(accept.items()):
                if t + (now - a) * rate >= cap:
                    del accept[h]
            if len(accept) >= MAX_HOSTS:
                accept.clear()
        accept[host] = (tokens - 1.0, now)
        return None

    def host_opened(self, host: str) -> None:
        """An admitted connection from ``host`` is open (counts to its per-host limit)."""
        self.per_host[host] = self.per_host.get(host, 0) + 1

    def host_closed(self, host: str) -> None:
        """A connection counted by :meth:`host_opened` is gone."""
        n = self.per_host.get(host, 0) - 1
        if n > 0:
            self.per_host[host] = n
        else:
            self.per_host.pop(host, None)

    # -- outbound ----------------------------------------------------------------------
    def dial_allowed(self, peer: str, now: float) -> bool:
        """True if ``peer`` may be dialled now: a known-good address, or a token of the
        ``dial_rate`` bucket for addresses never reached (taken here). A refusal is
        counted (``dials_limited``) and logged once."""
        seen = self.good.get(peer)
        if seen is not None and now - seen < KNOWN_GOOD_TTL:
            return True
        rate = self.config.dial_rate
        burst = max(1.0, rate)
        tokens = min(burst, self._dial_tokens + (now - self._dial_at) * rate)
        self._dial_at = now
        if tokens < 1.0:
            self._dial_tokens = tokens
            self._c["dials_limited"] += 1
            self._log_once(
                "dial-rate", "not dialling %s: over dial_rate=%g new addresses/s", peer, rate
            )
            return False
        self._dial_tokens = tokens - 1.0
        return True

    def mark_good(self, peer: str, now: float) -> None:
        """``peer`` answered our dial with a valid Hello: dial it freely from now on."""
        good = self.good
        good.pop(peer, None)
        good[peer] = now
        if len(good) > MAX_KNOWN_GOOD:
            del good[next(iter(good))]  # least recently reached


__all__ = ["KNOWN_GOOD_TTL", "MAX_HOSTS", "MAX_KNOWN_GOOD", "Admission"]
