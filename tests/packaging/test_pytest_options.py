"""``pytest --benchmark`` selects the micro-benchmarks only; plain ``pytest`` skips them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(120)


def _collect(*args: str) -> list[str]:
    """Node ids pytest would run from the repository root with ``args``."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if "::" in line]


def test_benchmark_option_selects_only_the_micro_benchmarks() -> None:
    ids = _collect(
        "--benchmark", "tests/benchmarks/test_bench_codec.py", "tests/unit/test_codec.py"
    )
    assert ids, "no benchmark collected"
    assert all(i.startswith("tests/benchmarks/") for i in ids), ids


def test_plain_pytest_skips_the_micro_benchmarks() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rs",
            "tests/benchmarks/test_bench_codec.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    ).stdout
    assert " passed" not in out.splitlines()[-1], out[-500:]
    assert "skipped" in out.splitlines()[-1], out[-500:]
