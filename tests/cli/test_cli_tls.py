"""TLS from the command line: ``gossipfast run`` and ``cluster`` with ``--tls-cert``,
``--tls-key``, ``--tls-ca`` (mutual authentication unless ``--tls-no-client-auth``),
certificates made by the test with ``trustme``; bad files end the command with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.runproc import RunProc, stop_all, wait_for

from gossipfast._procs import READY_PREFIX

trustme = pytest.importorskip("trustme")

pytestmark = [pytest.mark.network, pytest.mark.timeout(120)]

GF = [sys.executable, "-m", "gossipfast"]


def write_pki(ca: Any, d: Path, name: str = "127.0.0.1") -> list[str]:
    """Write ``ca``'s certificate and a certificate and key for ``name`` under ``d``;
    return the ``--tls-*`` options naming them."""
    d.mkdir(parents=True, exist_ok=True)
    cert = ca.issue_cert(name)
    cert.cert_chain_pems[0].write_to_path(str(d / "node.pem"))
    cert.private_key_pem.write_to_path(str(d / "node.key"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    return ["--tls-cert", str(d / "node.pem"), "--tls-key", str(d / "node.key"),
            "--tls-ca", str(d / "ca.pem")]  # fmt: skip


class Node(RunProc):
    def __init__(self, seeds: list[str], tls: list[str]) -> None:
        self.payloads: list[str] = []
        opts = ["--log-level", "WARNING", "--stats-interval", "0.2", *tls]
        super().__init__("127.0.0.1:0", seeds, options=opts)

    def on_delivery(self, d: dict[str, Any]) -> None:
        self.payloads.append(d["payload"])


def errors_of(args: list[str]) -> tuple[int, list[str]]:
    """Exit status and stderr lines (but the ready line) of a command that must end."""
    done = subprocess.run(
        [*GF, *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    lines = [x for x in done.stderr.strip().splitlines() if not x.startswith(READY_PREFIX)]
    return done.returncode, lines


def test_tls_nodes_join_and_a_node_of_another_ca_does_not(tmp_path: Path) -> None:
    ca = trustme.CA()
    tls = write_pki(ca, tmp_path / "a")
    nodes: list[Node] = []
    try:
        a = Node([], tls)
        nodes.append(a)
        a.wait_ready(30)
        b = Node([a.address], write_pki(ca, tmp_path / "b"))
        nodes.append(b)
        b.wait_ready(30)
        assert wait_for(lambda: b.stats.get("active_view") == [a.address], 30), b.stats
        b.send("over tls")
        assert wait_for(lambda: a.payloads == ["over tls"], 30), a.payloads

        foreign = Node([a.address], write_pki(trustme.CA(), tmp_path / "c"))
        nodes.append(foreign)
        foreign.wait_ready(30)
        foreign.send("from outside")
        # it keeps trying (joins are retried) and each try fails the handshake at a
        assert wait_for(lambda: a.stats.get("tls_failures", 0) >= 2, 30), a.stats
        assert not foreign.stats.get("active_view")
        b.send("still inside")
        assert wait_for(lambda: a.payloads == ["over tls", "still inside"], 30), a.payloads
        assert foreign.payloads == []
    finally:
        stop_all(nodes)


def test_no_client_auth_lets_a_node_without_a_trusted_certificate_dial(tmp_path: Path) -> None:
    ca = trustme.CA()
    nodes: list[Node] = []
    try:
        a = Node([], [*write_pki(ca, tmp_path / "a"), "--tls-no-client-auth"])
        nodes.append(a)
        a.wait_ready(30)
        # its own certificate is of another CA, but it trusts a's CA
        other = write_pki(trustme.CA(), tmp_path / "b")
        ca.cert_pem.write_to_path(other[-1])
        b = Node([a.address], [*other, "--tls-no-client-auth"])
        nodes.append(b)
        b.wait_ready(30)
        b.send("one way trust")
        assert wait_for(lambda: a.payloads == ["one way trust"], 30), (a.payloads, a.stats)
    finally:
        stop_all(nodes)


def test_bad_tls_files_end_the_command_with_one_line(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert, key, cafile = write_pki(ca, tmp_path / "a")[1::2]
    other_key = write_pki(ca, tmp_path / "b")[3]
    run = ["run", "--listen", "127.0.0.1:0"]
    missing = str(tmp_path / "missing.pem")
    cases = [
        (["--tls-cert", missing, "--tls-key", key, "--tls-ca", cafile],
         f"Error: --tls-cert {missing}: No such file or directory"),
        (["--tls-cert", cert, "--tls-key", other_key, "--tls-ca", cafile],
         f"Error: --tls-key {other_key} is not the key of --tls-cert {cert}"),
        (["--tls-cert", cert, "--tls-key", key, "--tls-ca", key],
         f"Error: --tls-ca {key}: not a PEM CA certificate (NO_CERTIFICATE_OR_CRL_FOUND)"),
        (["--tls-cert", cert, "--tls-key", key],
         "Error: TLS needs --tls-cert, --tls-key and --tls-ca; missing --tls-ca"),
        (["--tls-no-client-auth"],
         "Error: --tls-no-client-auth needs --tls-cert, --tls-key and --tls-ca"),
    ]  # fmt: skip
    for args, line in cases:
        assert errors_of([*run, *args]) == (1, [line]), args
    assert errors_of(["cluster", "--nodes", "3", "--tls-cert", cert]) == (
        1,
        ["Error: TLS needs --tls-cert, --tls-key and --tls-ca; missing --tls-key, --tls-ca"],
    )


def test_cluster_runs_over_tls(tmp_path: Path) -> None:
    tls = write_pki(trustme.CA(), tmp_path)
    out = subprocess.run(
        [*GF, "cluster", "--nodes", "3", "--rate", "100", "--duration", "1", "--json", *tls],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    s = json.loads(out.stdout.strip().splitlines()[-1])
    assert s["nodes"] == 3 and s["broadcasts"] >= 50
    assert s["deliveries"] == s["expected"] == 2 * s["broadcasts"]
