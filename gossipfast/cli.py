"""The ``gossipfast`` console script (also ``python -m gossipfast``).

Subcommands live in their own modules and are imported only when used, so that
``gossipfast run`` starts fast and a missing optional dependency of one command does
not break the others.
"""

from __future__ import annotations

import importlib

import click

# name -> (module, attribute holding a click.Command)
_COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("gossipfast._cli_node", "run_command"),
    "cluster": ("gossipfast._cli_node", "cluster_command"),
    "sim": ("gossipfast._cli_sim", "sim_command"),
    "demo": ("gossipfast._cli_demo", "demo_command"),
    "bench": ("gossipfast._bench", "bench_command"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(_COMMANDS) | set(super().list_commands(ctx)))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _COMMANDS:
            module, attr = _COMMANDS[cmd_name]
            cmd = getattr(importlib.import_module(module), attr)
            assert isinstance(cmd, click.Command)
            return cmd
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gossipfast")
def cli() -> None:
    """gossipfast: reliable high-rate broadcast (HyParView + Plumtree)."""


def main() -> None:
    """Entry point of the console script."""
    cli()


__all__ = ["cli", "main"]
