"""The ``gossipfast-bench`` distribution (the repository's ``bench/``) for its tests.

The tests of the cluster benchmark skip, with the install command as the reason, when
it is not installed; with ``GOSSIPFAST_REQUIRE_BENCH=1`` (``.ci/run`` sets it) they fail
instead, so that CI never passes without running them.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

import pytest

#: The README's install command for it (with the brokers' clients its tests use).
INSTALL = ".venv/bin/pip install -e './bench[brokers]'"
REQUIRED = os.environ.get("GOSSIPFAST_REQUIRE_BENCH", "").lower() in ("1", "true", "yes")


def bench_missing() -> str | None:
    """Why the bench's tests cannot run here, or None."""
    if importlib.util.find_spec("gossipfast_bench") is None:
        return f"needs the gossipfast-bench distribution: {INSTALL}"
    return None


def need_bench() -> None:
    """In a test: skip it (fail under GOSSIPFAST_REQUIRE_BENCH=1) without the bench."""
    why = bench_missing()
    if why:
        if REQUIRED:
            pytest.fail(f"{why} (GOSSIPFAST_REQUIRE_BENCH=1)")
        pytest.skip(why)


def import_bench(name: str) -> ModuleType:
    """At a test module's top: ``gossipfast_bench``'s module ``name``, or skip the module
    (under GOSSIPFAST_REQUIRE_BENCH=1 the import error fails the collection)."""
    why = bench_missing()
    if why and not REQUIRED:
        pytest.skip(why, allow_module_level=True)
    return importlib.import_module(name)
