"""The ``gossipfast`` console script (also ``python -m gossipfast``).

Subcommands live in their own modules and are imported only when used, so that
``gossipfast run`` starts fast and a missing optional dependency of one command does
not break the others. Other distributions add commands through the entry points of
group ``gossipfast.commands`` (``gossipfast-bench``, in the repository's ``bench/``,
adds ``bench``).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

# name -> (module, attribute holding a click.Command)
_COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("gossipfast._cli_node", "run_command"),
    "cluster": ("gossipfast._cli_node", "cluster_command"),
    "sim": ("gossipfast._cli_sim", "sim_command"),
    "demo": ("gossipfast._cli_demo", "demo_command"),
}

#: Entry-point group of the commands other distributions add.
PLUGIN_GROUP = "gossipfast.commands"
#: Commands of distributions kept apart, and how to install each (from a checkout).
_ELSEWHERE: dict[str, str] = {
    "bench": "gossipfast bench is not installed (it is the gossipfast-bench distribution): "
    "in a gossipfast checkout, run .venv/bin/pip install -e ./bench",
}


def _entry_points() -> Any:
    # Imported here: reading the installed distributions' metadata costs tens of ms that
    # the built-in commands (``gossipfast run`` above all) need not pay.
    from importlib.metadata import entry_points

    return entry_points(group=PLUGIN_GROUP)


def _plugin(name: str) -> click.Command | None:
    """The command ``name`` an installed distribution adds, or None."""
    for ep in _entry_points():
        if ep.name == name:
            cmd = ep.load()
            assert isinstance(cmd, click.Command)
            return cmd
    return None


def _not_installed(name: str, how: str) -> click.Command:
    """A stand-in for a missing command: whatever its arguments, it says how to get it."""

    @click.command(
        name,
        short_help="(not installed: see `gossipfast " + name + "`)",
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    def missing() -> None:
        raise click.ClickException(how)

    return missing


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        plugins = {ep.name for ep in _entry_points()}
        return sorted(set(_COMMANDS) | set(_ELSEWHERE) | plugins | set(super().list_commands(ctx)))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _COMMANDS:
            module, attr = _COMMANDS[cmd_name]
            cmd = getattr(importlib.import_module(module), attr)
            assert isinstance(cmd, click.Command)
            return cmd
        found = super().get_command(ctx, cmd_name) or _plugin(cmd_name)
        if found is None and cmd_name in _ELSEWHERE:
            return _not_installed(cmd_name, _ELSEWHERE[cmd_name])
        return found


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gossipfast")
def cli() -> None:
    """gossipfast: reliable high-rate broadcast (HyParView + Plumtree)."""


def main() -> None:
    """Entry point of the console script."""
    cli()


__all__ = ["PLUGIN_GROUP", "cli", "main"]
