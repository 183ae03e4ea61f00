"""The wheel workflow (.github/workflows/wheels.yml), checked as far as this machine can.

It cannot run GitHub's runners; it checks that the workflow is valid (GitHub's schema,
as vendored by check-jsonschema, offline), that it names only existing jobs and files,
and that its runners together build exactly the wheels cibuildwheel.toml asks for
(``cibuildwheel --print-build-identifiers`` per runner against all of them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "wheels.yml"

pytestmark = pytest.mark.timeout(120)


def _workflow() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


def _identifiers(platform: str, archs: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIBW_")}
    if archs is not None:
        env["CIBW_ARCHS"] = archs
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cibuildwheel",
            "--print-build-identifiers",
            "--platform",
            platform,
            "--config-file",
            str(ROOT / "cibuildwheel.toml"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return out.split()


def test_workflow_is_valid_for_github() -> None:
    pytest.importorskip("check_jsonschema")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(WORKFLOW),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_jobs_and_files_it_names_exist() -> None:
    jobs = _workflow()["jobs"]
    assert set(jobs) == {"wheels", "sdist"}
    for job in jobs.values():
        needs = job.get("needs", [])
        for need in [needs] if isinstance(needs, str) else needs:
            assert need in jobs
    runs = " ".join(s.get("run", "") for s in jobs["wheels"]["steps"])
    assert "--config-file cibuildwheel.toml" in runs
    assert (ROOT / "cibuildwheel.toml").is_file()
    sdist = " ".join(s.get("run", "") for s in jobs["sdist"]["steps"])
    assert "python -m build --sdist" in sdist
    assert "pytest" in sdist and '"$GITHUB_WORKSPACE/tests"' in sdist
    assert (ROOT / "tests").is_dir()


def test_runners_build_every_wheel_of_cibuildwheel_toml_once() -> None:
    pytest.importorskip("cibuildwheel")
    matrix = _workflow()["jobs"]["wheels"]["strategy"]["matrix"]["include"]
    built: list[str] = []
    for entry in matrix:
        ids = _identifiers(entry["platform"], entry["archs"])
        assert ids, f"{entry} builds nothing"
        built += ids
    wanted = [i for p in ("linux", "macos", "windows") for i in _identifiers(p, None)]
    assert sorted(built) == sorted(wanted)
    assert len(set(built)) == len(built)
    for version in ("cp310", "cp314"):
        assert any(i.startswith(version + "-") for i in built)
