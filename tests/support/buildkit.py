"""Both builds of a hot module side by side in one process (tests and benchmarks).

The installed ``gossipfast.<name>`` is whichever build loaded; :func:`pure_twin` loads
its ``.py`` source again as a separate module, so a test can run both builds at once.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from gossipfast import _hot


def pure_twin(name: str) -> ModuleType:
    """``gossipfast/<name>.py`` loaded as its own module (relative imports resolve in
    ``gossipfast``), whatever build ``gossipfast.<name>`` is."""
    source = Path(_hot.__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"gossipfast_pure{name}", source)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "gossipfast"
    spec.loader.exec_module(mod)
    return mod


def compiled(name: str) -> ModuleType | None:
    """The installed ``gossipfast.<name>`` when it is the compiled build, else None."""
    mod = importlib.import_module(f"gossipfast.{name}")
    return mod if _hot.is_compiled(mod) else None


def builds(name: str) -> dict[str, ModuleType]:
    """``{"pure": its pure twin}``, plus ``"compiled"`` when that build loaded."""
    out = {"pure": pure_twin(name)}
    comp = compiled(name)
    if comp is not None:
        out["compiled"] = comp
    return out


def pick(found: dict[str, ModuleType], which: str, name: str) -> ModuleType:
    """``found[which]``, or skip the test when that build did not load."""
    if which not in found:
        pytest.skip(f"compiled {name} not loaded (pure build requested or not built)")
    return found[which]
