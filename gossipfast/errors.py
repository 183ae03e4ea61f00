"""The library's exceptions, all rooted at :class:`GossipError`."""

from __future__ import annotations


class GossipError(Exception):
    """Base class of every error gossipfast raises on purpose."""


class ConfigError(GossipError, ValueError):
    """A :class:`~gossipfast.Config` field holds a value outside its allowed range."""


class JoinError(GossipError):
    """No seed answered a join request in time."""


class SeedError(JoinError):
    """No seed to dial: no ``dns:`` name resolved, or every seed is this node itself."""


class PayloadTooLarge(GossipError, ValueError):
    """A broadcast payload is larger than ``Config.max_payload_size``."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"payload of {size} bytes exceeds max_payload_size={limit} bytes")
        self.size = size
        self.limit = limit


class NodeClosed(GossipError):
    """The node is not running (not started yet, or already closed)."""


class ProtocolError(GossipError):
    """A peer broke the wire protocol (bad frame, wrong handshake)."""


__all__ = [
    "ConfigError",
    "GossipError",
    "JoinError",
    "NodeClosed",
    "PayloadTooLarge",
    "ProtocolError",
    "SeedError",
]
