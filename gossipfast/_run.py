"""``gossipfast.run``: run a coroutine on uvloop when it is installed, else on asyncio.

asyncio is imported inside the function so that ``import gossipfast`` stays free of it
(the sans-IO engine and the simulator load without an event loop).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

from .errors import ConfigError

T = TypeVar("T")

#: Accepted values of ``run(..., loop=...)`` and of the CLI's ``--loop``.
LOOPS = ("auto", "uvloop", "asyncio")


def run(
    main: Coroutine[Any, Any, T],
    *,
    loop: Literal["auto", "uvloop", "asyncio"] = "auto",
    debug: bool | None = None,
) -> T:
    """Run ``main`` to completion on a new event loop and return its result.

    ``loop="auto"`` (the default) uses uvloop when it can be imported and asyncio's own
    loop otherwise; ``"uvloop"`` requires it (``ConfigError`` when missing) and
    ``"asyncio"`` never uses it. Like :func:`asyncio.run`, it must not be called from a
    running event loop: code that already runs a loop simply creates its
    :class:`~gossipfast.Node` there, on whatever loop that is.

    No event-loop policy is installed or changed: uvloop's loop is handed to
    ``asyncio.Runner`` as its factory (``uvloop.run``), asyncio's is ``asyncio.run``.
    """
    import asyncio

    if loop not in LOOPS:
        main.close()  # never awaited: closing it avoids a "never awaited" warning
        raise ConfigError(f"loop must be one of {', '.join(LOOPS)}, not {loop!r}")
    uvloop_run = None
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                main.close()
                raise ConfigError("loop='uvloop': uvloop is not installed") from None
        else:
            uvloop_run = uvloop.run
    if uvloop_run is not None:
        return uvloop_run(main, debug=debug)
    return asyncio.run(main, debug=debug)
