"""What the wheel holds, and the wheel and sdist check of ``scripts/check_wheels.sh``.

The wheel holds the library only: a pure-Python wheel built from the checkout's files
(seconds) is checked on every run. The full check (slow: opt in with
``GOSSIPFAST_CHECK_WHEELS=1``) builds with ``python -m build``, repairs with
``auditwheel``, installs into fresh venvs with no compiler reachable (minutes of CPU and
network access to the package index) and checks the compiled wheel's file list too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Imports of third-party libraries the library must not ship code for (the bench's
#: competitors and their event loops live in the gossipfast-bench distribution).
_COMPETITORS = re.compile(r"^\s*(?:import|from)\s+(aiogossip|libp2p|redis|nats|trio)\b", re.M)


def _library_sources() -> set[str]:
    """The library's files a wheel ships: ``gossipfast/**/*.py``, ``*.pxd``, ``py.typed``."""
    return {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "gossipfast").rglob("*")
        if (p.suffix in (".py", ".pxd") or p.name == "py.typed") and "__pycache__" not in p.parts
    }


def not_the_library(wheel: Path) -> list[str]:
    """What in ``wheel`` is not the library (empty: the library only, all of it)."""
    sources = _library_sources()
    bad: list[str] = []
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        for name in names:
            top = name.split("/", 1)[0]
            if top.endswith(".dist-info") or top == "gossipfast.libs":  # metadata, auditwheel
                continue
            if name.endswith("/"):
                continue  # a directory entry (some builders write them for subpackages)
            if name.endswith(".so"):  # a compiled hot module: its source is in the package
                ok = name.split(".", 1)[0] + ".py" in sources
            else:
                ok = name in sources
            if not ok:
                bad.append(name)
            elif name.endswith(".py") and _COMPETITORS.search(z.read(name).decode()):
                bad.append(f"{name} (imports a competitor library)")
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        for line in z.read(meta).decode().splitlines():
            if line.startswith(("Provides-Extra:", "Requires-Dist:")) and _COMPETITORS.search(
                "import " + line.split(":", 1)[1].strip().split(";")[0]
            ):
                bad.append(f"METADATA {line}")
    missing = {s for s in sources if s.endswith(".py")} - set(names)
    return bad + [f"missing {m}" for m in sorted(missing)]


def test_wheel_holds_the_library_only(tmp_path: Path) -> None:
    """No bench harness, no tests, no competitor adapters: gossipfast/ and its metadata."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the files to build are those git tracks")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    src = tmp_path / "src"
    for rel in filter(None, listed.decode().split("\0")):
        if (ROOT / rel).is_file():  # not a file deleted but not yet committed
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    # The checkout's files only: no in-place compiled module, no build/ left behind.
    env = dict(os.environ, GOSSIPFAST_NO_EXTENSIONS="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("GOSSIPFAST_REQUIRE_EXTENSIONS", None)
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    out = subprocess.run(
        [*cmd, "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("gossipfast-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert "gossipfast/_procs.py" in names and "gossipfast/py.typed" in names
    assert not [n for n in names if "bench" in n or n.startswith(("tests/", "bench/"))], names
    assert not_the_library(wheel) == []


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("GOSSIPFAST_CHECK_WHEELS", "") not in ("1", "true", "yes"),
    reason="slow: set GOSSIPFAST_CHECK_WHEELS=1 to build and check the wheels",
)
@pytest.mark.timeout(1800)
def test_wheel_is_compiled_and_sdist_is_pure_without_a_compiler(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("GOSSIPFAST_NO_EXTENSIONS", None)  # the wheel must be built compiled
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "check_wheels.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1700,
    )
    report = out.stdout + out.stderr
    assert out.returncode == 0, report[-4000:]
    assert "wheel installs without a compiler, COMPILED=True:  yes" in report
    assert "sdist installs without a compiler, COMPILED=False: yes" in report
    repaired = list((tmp_path / "wheelhouse").glob("gossipfast-*manylinux*.whl"))
    assert repaired, report[-2000:]
    assert not_the_library(repaired[0]) == []
