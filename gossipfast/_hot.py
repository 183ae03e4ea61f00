"""Selection between the compiled and the pure-Python build of the hot modules.

The hot modules are ordinary ``.py`` files that ``setup.py`` may also compile with Cython.
When both a compiled extension and the ``.py`` sit in the package, Python imports the
extension. ``GOSSIPFAST_NO_EXTENSIONS=1`` in the environment makes this package import the
``.py`` sources instead, so one installed tree can run both builds (the test suite does).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

#: Modules that setup.py compiles when a compiler is present (dotted: in a subpackage).
HOT_MODULES: tuple[str, ...] = (
    "_outputs",
    "_codec",
    "_cache",
    "_peers",
    "_timers",
    "_graftdelay",
    "_fifo",
    "_catchup",
    "_requests",
    "_announce",
    "_intake",
    "_graftprune",
    "_optimize",
    "_plumtree",
    "_repair",
    "_hyparview",
    "_deliver",
    "sim.core",
)

_PKG_DIR = Path(__file__).resolve().parent


def extensions_disabled() -> bool:
    """True when the environment asks for the pure-Python build."""
    return os.environ.get("GOSSIPFAST_NO_EXTENSIONS", "").strip().lower() in (
        "1",
        "true",
        "yes",
        "on",
    )


class _PureFinder(importlib.abc.MetaPathFinder):
    """Finds ``gossipfast.<hot>`` as its ``.py`` source, bypassing a compiled twin."""

    def find_spec(
        self,
        fullname: str,
        path: object = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        pkg, _, name = fullname.partition(".")
        if pkg != __package__ or name not in HOT_MODULES:
            return None
        source = source_path(name)
        if not source.exists():
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def install() -> None:
    """Put the pure-source finder first when extensions are disabled."""
    if extensions_disabled() and not any(isinstance(f, _PureFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _PureFinder())


def is_compiled(module: ModuleType) -> bool:
    """True when ``module`` was loaded from a compiled extension."""
    return _is_extension(getattr(module, "__file__", None))


def source_path(name: str) -> Path:
    """The ``.py`` source of the hot module ``gossipfast.<name>``."""
    return _PKG_DIR.joinpath(*name.split(".")).with_suffix(".py")


def will_load_compiled(name: str) -> bool | None:
    """For ``gossipfast.<name>``: True when importing it loads a compiled extension,
    False for its ``.py`` source, None when there is no such module.

    Nothing is imported, not even the subpackage of a dotted name (``import gossipfast``
    must not load the simulator): the lookup is the path finder's, in the module's folder.
    """
    source = source_path(name)
    if extensions_disabled() and source.exists():
        return False  # what _PureFinder makes the import load
    spec = importlib.machinery.PathFinder.find_spec(f"{__package__}.{name}", [str(source.parent)])
    return None if spec is None else _is_extension(spec.origin)


def all_compiled() -> bool:
    """True when every hot module present imports as its compiled extension."""
    found = [c for c in map(will_load_compiled, HOT_MODULES) if c is not None]
    return bool(found) and all(found)


def _is_extension(path: object) -> bool:
    return not str(path or "").endswith((".py", ".pyc"))
