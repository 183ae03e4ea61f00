"""Public asyncio API (placeholder until the transport lands)."""

from __future__ import annotations


class Node:
    """A gossipfast node (not implemented yet)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError("gossipfast.Node is not implemented yet")
