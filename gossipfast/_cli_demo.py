"""``gossipfast demo bootstrap`` and ``gossipfast demo join PORT NAME``.

The terminal UI lives in :mod:`gossipfast.demo` and needs textual (the ``demo``
extra); this module has no such import so that ``gossipfast --help`` and the other
commands work without it, and a missing extra gets a one-line hint.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from ._cli_node import _config, metrics_options
from ._run import run

DEFAULT_PORT = 7001


def _run_app(
    listen: str,
    name: str,
    seeds: tuple[str, ...],
    cluster: str | None,
    overrides: tuple[str, ...],
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    config = _config(cluster, overrides)
    try:
        from .demo import DemoApp
    except ImportError as e:
        raise click.ClickException(
            f"the demo needs textual ({e}): pip install 'gossipfast[demo]'"
        ) from None
    if metrics_port is not None:
        try:
            import gossipfast.metrics  # noqa: F401  (fail before the UI takes the screen)
        except ImportError as e:
            raise click.ClickException(str(e)) from None
    # The UI owns the terminal: the app shows library warnings in its log; nothing else
    # may print (no INFO records reach Python's last-resort stderr handler).
    logging.getLogger("gossipfast").setLevel(logging.WARNING)
    app = DemoApp(
        listen,
        name=name,
        seeds=seeds,
        config=config,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
    )
    run(app.run_async())
    sys.exit(app.return_code or 0)


def _common(f: Any) -> Any:
    f = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="FIELD=VALUE",
        help="Override a Config field (repeatable).",
    )(f)
    f = click.option("--cluster", default=None, help="Cluster name.")(f)
    f = click.option(
        "--host", default="127.0.0.1", show_default=True, help="Address to listen on."
    )(f)
    return metrics_options(f)


@click.group("demo")
def demo_command() -> None:
    """Interactive terminal demo: one node per terminal, type to broadcast.

    \b
    terminal 1:  gossipfast demo bootstrap
    terminal 2:  gossipfast demo join 7002 node2
    terminal 3:  gossipfast demo join 7003 node3
    """


@demo_command.command("bootstrap")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--name", default="node1", show_default=True, help="Readable node name.")
@_common
def bootstrap_command(
    port: int,
    name: str,
    host: str,
    cluster: str | None,
    overrides: tuple[str, ...],
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Start the first node (the seed the others join)."""
    _run_app(f"{host}:{port}", name, (), cluster, overrides, metrics_port, metrics_host)


@demo_command.command("join")
@click.argument("port", type=click.IntRange(0, 65535))
@click.argument("name")
@click.option(
    "--seed",
    "seeds",
    multiple=True,
    metavar="HOST:PORT",
    help=f"Node to join (repeatable; default 127.0.0.1:{DEFAULT_PORT}).",
)
@_common
def join_command(
    port: int,
    name: str,
    seeds: tuple[str, ...],
    host: str,
    cluster: str | None,
    overrides: tuple[str, ...],
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Start a node named NAME on PORT and join the bootstrap node."""
    seeds = seeds or (f"127.0.0.1:{DEFAULT_PORT}",)
    _run_app(f"{host}:{port}", name, seeds, cluster, overrides, metrics_port, metrics_host)


__all__ = ["DEFAULT_PORT", "demo_command"]
