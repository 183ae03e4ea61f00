"""Build script: cythonizes the hot modules when a compiler is there.

The hot modules are plain ``.py`` files with a sibling ``.pxd`` (the python-zeroconf
pattern), so the compiled and the pure-Python builds share one source.

Environment switches:
  GOSSIPFAST_NO_EXTENSIONS=1       build a pure-Python package (no Cython, no compiler);
  GOSSIPFAST_REQUIRE_EXTENSIONS=1  fail the build if the extensions cannot be built
                                   (used for wheels, so a wheel is never silently pure).
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
# The list lives in gossipfast/_hot.py (stdlib only, so it loads without the package's
# dependencies); every name there has a .py and a .pxd.
HOT_MODULES = list(runpy.run_path(str(HERE / "gossipfast" / "_hot.py"))["HOT_MODULES"])


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


NO_EXT = _flag("GOSSIPFAST_NO_EXTENSIONS")
REQUIRE_EXT = _flag("GOSSIPFAST_REQUIRE_EXTENSIONS")


class OptionalBuildExt(build_ext):
    """build_ext that degrades to pure Python unless extensions are required."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # any compiler failure
            if REQUIRE_EXT:
                raise
            print(f"gossipfast: extensions not built ({exc}); using pure Python", file=sys.stderr)

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:
            if REQUIRE_EXT:
                raise
            print(f"gossipfast: {ext.name} not built ({exc})", file=sys.stderr)


def _extensions() -> list:
    if NO_EXT:
        return []
    # "sim.core" is gossipfast/sim/core.py: cythonize names it from the folders' __init__.py
    paths = [HERE.joinpath("gossipfast", *m.split(".")) for m in HOT_MODULES]
    sources = [
        str(p.with_suffix(".py").relative_to(HERE))
        for p in paths
        if p.with_suffix(".py").exists() and p.with_suffix(".pxd").exists()
    ]
    try:
        from Cython.Build import cythonize
    except ImportError:
        if REQUIRE_EXT:
            raise
        print("gossipfast: Cython not available; using pure Python", file=sys.stderr)
        return []
    return cythonize(
        sources,
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
        quiet=True,
    )


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
