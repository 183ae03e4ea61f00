"""TLS for the command line: the ``--tls-*`` options and the contexts they make.

One CA for the cluster and one certificate per node, with the address peers dial as a
subject alternative name. The server context requires a client certificate from the CA
(mutual authentication) unless ``--tls-no-client-auth``; the client context shows the
node's certificate and checks the server's against the CA and the dialled address.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import click

from .errors import ConfigError

F = Callable[..., Any]


def tls_options(f: F) -> F:
    """Add ``--tls-cert``, ``--tls-key``, ``--tls-ca`` and ``--tls-no-client-auth``."""
    f = click.option(
        "--tls-no-client-auth",
        is_flag=True,
        help="Accept peers without a client certificate (the link is still encrypted "
        "and the server still proves itself).",
    )(f)
    f = click.option(
        "--tls-ca",
        metavar="FILE",
        help="CA certificate(s) (PEM) that peers' certificates chain to.",
    )(f)
    f = click.option("--tls-key", metavar="FILE", help="This node's private key (PEM).")(f)
    f = click.option(
        "--tls-cert",
        metavar="FILE",
        help="This node's certificate (PEM, the address peers dial as a subject "
        "alternative name); with --tls-key and --tls-ca, every link is TLS.",
    )(f)
    return f


def _readable(option: str, path: str) -> None:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        raise ConfigError(f"{option} {path}: {e.strerror or e}") from None


def tls_contexts(
    cert: str | None, key: str | None, ca: str | None, *, client_auth: bool = True
) -> tuple[ssl.SSLContext, ssl.SSLContext] | None:
    """The (server, client) contexts for these files, or None when none is given.

    ``ConfigError`` says which file is missing, unreadable or not what it should be, or
    that the key does not belong to the certificate.
    """
    given = {"--tls-cert": cert, "--tls-key": key, "--tls-ca": ca}
    if not any(given.values()):
        if not client_auth:
            raise ConfigError("--tls-no-client-auth needs --tls-cert, --tls-key and --tls-ca")
        return None
    missing = [k for k, v in given.items() if not v]
    if missing:
        raise ConfigError(
            f"TLS needs --tls-cert, --tls-key and --tls-ca; missing {', '.join(missing)}"
        )
    assert cert is not None and key is not None and ca is not None
    for option, path in given.items():
        assert path is not None
        _readable(option, path)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if client_auth:
        server.verify_mode = ssl.CERT_REQUIRED
    for ctx in (server, client):
        try:
            ctx.load_verify_locations(cafile=ca)
        except ssl.SSLError as e:
            raise ConfigError(f"--tls-ca {ca}: not a PEM CA certificate ({e.reason})") from None
        try:
            ctx.load_cert_chain(cert, key)
        except ssl.SSLError as e:
            if e.reason == "KEY_VALUES_MISMATCH":
                raise ConfigError(f"--tls-key {key} is not the key of --tls-cert {cert}") from None
            raise ConfigError(
                f"--tls-cert {cert} / --tls-key {key}: not a PEM certificate and key ({e.reason})"
            ) from None
    return server, client


def tls_args(cert: str | None, key: str | None, ca: str | None, client_auth: bool) -> list[str]:
    """The same options for a child ``gossipfast run``."""
    if not cert:
        return []
    assert key is not None and ca is not None
    args = ["--tls-cert", cert, "--tls-key", key, "--tls-ca", ca]
    return args + ([] if client_auth else ["--tls-no-client-auth"])


__all__ = ["tls_args", "tls_contexts", "tls_options"]
