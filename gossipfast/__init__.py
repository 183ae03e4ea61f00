"""gossipfast: reliable, high-rate broadcast among the processes of a cluster.

HyParView keeps a small, connected overlay; Plumtree pushes each broadcast along a
spanning tree with lazy backups; a compiled hot path (Cython, with a pure-Python
fallback from the same source) keeps it fast. See the README for the API in ten lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _hot

_hot.install()  # must run before any hot module is imported

from ._run import run  # noqa: E402
from ._version import __version__  # noqa: E402
from .config import Config  # noqa: E402
from .errors import (  # noqa: E402
    ConfigError,
    GossipError,
    JoinError,
    NodeClosed,
    PayloadTooLarge,
    ProtocolError,
    SeedError,
)
from .stats import Stats  # noqa: E402
from .types import (  # noqa: E402
    Gap,
    Lagged,
    Member,
    MemberDown,
    MemberUp,
    Message,
    MessageId,
    NeighborDown,
    NeighborUp,
)

#: True when the compiled (Cython) hot path is loaded, False for the pure-Python build.
#: Read from the import specs: importing the hot modules here would load the simulator.
COMPILED: bool = _hot.all_compiled()

if TYPE_CHECKING:
    from .node import Node


def __getattr__(name: str) -> Any:
    # Node (and with it asyncio, ssl and the transport) loads on first use, so the
    # sans-IO engine and the simulator import without them.
    if name == "Node":
        from .node import Node

        return Node
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"Node"})


__all__ = [
    "COMPILED",
    "Config",
    "ConfigError",
    "Gap",
    "GossipError",
    "JoinError",
    "Lagged",
    "Member",
    "MemberDown",
    "MemberUp",
    "Message",
    "MessageId",
    "NeighborDown",
    "NeighborUp",
    "Node",
    "NodeClosed",
    "PayloadTooLarge",
    "ProtocolError",
    "SeedError",
    "Stats",
    "__version__",
    "run",
]
