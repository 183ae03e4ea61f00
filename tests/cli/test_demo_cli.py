"""The ``demo`` command line without starting a UI: options and the missing-extra hint."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from gossipfast.cli import cli


@pytest.mark.parametrize(
    "args",
    [["run"], ["cluster"], ["demo", "bootstrap"], ["demo", "join"]],
)
def test_metrics_port_option_everywhere(args: list[str]) -> None:
    out = CliRunner().invoke(cli, [*args, "--help"])
    assert out.exit_code == 0, out.output
    assert "--metrics-port" in out.output and "--metrics-host" in out.output


def test_demo_help_shows_the_three_terminals() -> None:
    out = CliRunner().invoke(cli, ["demo", "--help"])
    assert out.exit_code == 0
    assert "gossipfast demo join 7002 node2" in out.output


def test_demo_without_textual_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if the `demo` extra were not installed: importing textual fails.
    monkeypatch.setitem(sys.modules, "textual", None)
    monkeypatch.delitem(sys.modules, "gossipfast.demo", raising=False)
    out = CliRunner().invoke(cli, ["demo", "bootstrap", "--port", "0"])
    assert out.exit_code == 1
    assert "pip install 'gossipfast[demo]'" in out.output


def test_demo_rejects_a_bad_config_override() -> None:
    out = CliRunner().invoke(cli, ["demo", "join", "7002", "n2", "--set", "nope=1"])
    assert out.exit_code == 2 and "unknown Config field" in out.output
