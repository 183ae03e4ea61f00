"""Network namespaces for multi-process tests: whether the machine allows them, and `ip`.

The tests that split a cluster with real network stacks (root and iproute2) share these;
elsewhere they skip with the reason :func:`netns_unavailable` gives.
"""

from __future__ import annotations

import os
import shutil
import subprocess


def ip(*args: str) -> None:
    """Run ``ip ARGS`` (raises on failure)."""
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def tc(*args: str) -> None:
    """Run ``tc ARGS`` (raises on failure)."""
    subprocess.run(["tc", *args], check=True, capture_output=True, timeout=10)


def netns_unavailable(*tools: str) -> str | None:
    """Why namespaces cannot be used here (``ip`` and ``tools`` missing, not permitted),
    or None when a probe namespace could be made and removed."""
    for tool in ("ip", *tools):
        if shutil.which(tool) is None:
            return f"the {tool} command is missing"
    probe = f"gfprobe{os.getpid()}"
    try:
        ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError) as e:
        return f"`ip netns add` is not permitted here: {getattr(e, 'stderr', e)!r}"
    ip("netns", "del", probe)
    return None
