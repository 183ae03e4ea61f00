"""The build that was asked for is the build that loaded."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

import gossipfast
from gossipfast import _hot


def _present() -> list[str]:
    return [m for m in _hot.HOT_MODULES if importlib.util.find_spec(f"gossipfast.{m}")]


def test_requested_build_is_loaded() -> None:
    mods = _present()
    assert mods, "no hot module found in the package"
    loaded = {m: _hot.is_compiled(importlib.import_module(f"gossipfast.{m}")) for m in mods}
    if _hot.extensions_disabled():
        assert gossipfast.COMPILED is False
        assert not any(loaded.values()), f"pure build asked for, compiled loaded: {loaded}"
    else:
        # The default asks for the compiled build: a missing extension is a failure,
        # not a silent fallback (build with a compiler, or set GOSSIPFAST_NO_EXTENSIONS=1).
        assert gossipfast.COMPILED is True, f"compiled build asked for but not loaded: {loaded}"
        assert all(loaded.values()), loaded


def test_pure_switch_in_a_fresh_interpreter() -> None:
    code = (
        "import gossipfast, importlib;"
        "from gossipfast import _hot;"
        "mods=[importlib.import_module('gossipfast.'+m) for m in _hot.HOT_MODULES "
        "if importlib.util.find_spec('gossipfast.'+m)];"
        "assert not gossipfast.COMPILED;"
        "assert all(m.__file__.endswith('.py') for m in mods), [m.__file__ for m in mods]"
    )
    env = dict(os.environ, GOSSIPFAST_NO_EXTENSIONS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_switch_values(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOSSIPFAST_NO_EXTENSIONS", value)
    assert _hot.extensions_disabled()


def test_switch_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOSSIPFAST_NO_EXTENSIONS", raising=False)
    assert not _hot.extensions_disabled()


def run_fresh(code: str) -> None:
    """Run ``code`` in a fresh interpreter (same environment, so the same build); its
    asserts must hold."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_import_loads_neither_the_simulator_nor_the_cli() -> None:
    # COMPILED is read from the import specs: a service that imports gossipfast does
    # not carry the simulator and click in its memory (and in every full GC).
    run_fresh(
        "import sys, gossipfast;"
        "assert gossipfast.COMPILED in (True, False);"
        "bad = [m for m in ('gossipfast.sim', 'click', 'rich') if m in sys.modules];"
        "assert not bad, bad"
    )


SIM_MODULES = [
    "gossipfast.sim",
    "gossipfast.sim.core",
    "gossipfast.sim.figures",
    "gossipfast.sim.graph",
    "gossipfast.sim.scenarios",
]


@pytest.mark.parametrize("module", ["gossipfast.engine", *SIM_MODULES])
def test_engine_and_simulator_load_no_io(module: str) -> None:
    # The engine is sans-IO and the simulator drives it alone: importing either (in
    # the build this run tests) loads no event loop, TLS, transport or node; the node
    # comes in with the first use of gossipfast.Node.
    run_fresh(
        f"import sys, {module}, gossipfast;"
        "io = ('asyncio', 'ssl', 'gossipfast.transport', 'gossipfast.node');"
        "bad = [m for m in io if m in sys.modules];"
        "assert not bad, bad;"
        "assert gossipfast.Node.__module__ == 'gossipfast.node';"
        "assert 'asyncio' in sys.modules"
    )


@pytest.mark.parametrize("module", SIM_MODULES)
def test_simulator_loads_no_cli(module: str) -> None:
    # The simulator is a library; its console command (click, rich, matplotlib) is
    # gossipfast._cli_sim, loaded by `gossipfast sim` or a use of sim.sim_command.
    run_fresh(
        f"import sys, {module}, gossipfast.sim;"
        "cli = ('click', 'rich', 'matplotlib', 'gossipfast._cli_sim');"
        "bad = [m for m in cli if m in sys.modules];"
        "assert not bad, bad;"
        "from gossipfast._cli_sim import sim_command;"
        "assert gossipfast.sim.sim_command is sim_command"
    )


def test_simulator_core_is_a_hot_module() -> None:
    # the event loop is compiled with the other hot modules, in the build asked for
    from gossipfast.sim import core

    assert "sim.core" in _hot.HOT_MODULES
    assert _hot.is_compiled(core) is (not _hot.extensions_disabled())
    assert _hot.will_load_compiled("sim.core") is _hot.is_compiled(core)
