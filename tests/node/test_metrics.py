"""Observability: typed ``Node.stats()``, the Prometheus exporter, ``--metrics-port``."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

import pytest
from support.nodekit import until
from support.wait import wait_for

import gossipfast
from gossipfast import Stats
from gossipfast._procs import free_ports

pytestmark = pytest.mark.network

FAST = gossipfast.Config(heartbeat_interval=0.2, heartbeat_timeout=1.0, join_timeout=3.0)


def test_stats_is_typed_and_a_mapping() -> None:
    s = Stats.from_counters({"delivered": 3, "dups": 1, "sent_ihave": 7, "active": 2})
    assert s.delivered == 3 and s["delivered"] == 3
    assert s["sent_ihave"] == 7 and s.details == {"sent_ihave": 7}
    assert "sent_ihave" in s and "nope" not in s
    assert s.get("nope", 5) == 5
    d = dict(s)
    assert d["active"] == 2 and d["sent_ihave"] == 7 and len(d) == len(s)
    json.dumps(s.as_dict())  # JSON-friendly
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.delivered = 4  # type: ignore[misc]
    with pytest.raises(KeyError):
        s["nope"]


@pytest.mark.timeout(60)
def test_node_stats_and_metrics(arun: Any, caplog: pytest.LogCaptureFixture) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from gossipfast.metrics import NodeMetrics, start_http_server

    caplog.set_level(logging.INFO, logger="gossipfast")

    async def main() -> tuple[str, str, str]:
        async with (
            gossipfast.Node("127.0.0.1:0", config=FAST) as a,
            gossipfast.Node("127.0.0.1:0", config=FAST) as b,
        ):
            reg = CollectorRegistry()
            m = NodeMetrics(b, reg)
            ma = NodeMetrics(a, reg)  # two nodes, one registry: series differ by label
            await b.join([a.address])
            for i in range(5):
                await a.broadcast(b"m%d" % i)
            await until(lambda: b.stats().delivered == 5)
            st = b.stats()
            assert isinstance(st, Stats)
            assert st["delivered"] == st.delivered == 5 and st.active == 1
            assert st.details["received_gossip"] >= 5
            port = start_http_server(0, registry=reg)
            loop = asyncio.get_running_loop()

            def fetch() -> str:
                url = f"http://127.0.0.1:{port}/metrics"
                with urllib.request.urlopen(url, timeout=5) as r:
                    return str(r.read().decode())

            # The scrape runs in another thread and hops into this loop for the figures.
            scraped = await loop.run_in_executor(None, fetch)
            text = generate_latest(reg).decode()
            m.close()
            ma.close()
            assert generate_latest(reg).decode() == ""  # detached: nothing left
            return text, scraped, b.address

    text, scraped, b_addr = arun(main())
    assert text.count("# HELP gossipfast_deliveries_total ") == 1
    assert text.count("gossipfast_deliveries_total{") == 2
    text = "\n".join(x for x in text.splitlines() if f'node="{b_addr}"' in x)
    for want in (
        "gossipfast_deliveries_total{",
        "gossipfast_delivery_hops_bucket{",
        'gossipfast_view_size{node="127.0.0.1:',
        'reason="slow_peer"',
        "gossipfast_rmr{",
        'gossipfast_messages_sent_total{kind="',
    ):
        assert want in text, want
    line = next(x for x in text.splitlines() if x.startswith("gossipfast_deliveries_total"))
    assert line.endswith(" 5.0")
    hops = next(x for x in text.splitlines() if x.startswith("gossipfast_delivery_hops_count"))
    assert hops.endswith(" 5.0")  # own broadcasts are not counted
    inf = next(x for x in text.splitlines() if 'le="+Inf"' in x)
    assert inf.endswith(" 5.0")
    assert "gossipfast_deliveries_total{" in scraped
    msgs = [r.getMessage() for r in caplog.records]
    assert any("joined" in x for x in msgs) and any("neighbour" in x for x in msgs)


@pytest.mark.timeout(60)
def test_run_metrics_port() -> None:
    pytest.importorskip("prometheus_client")
    listen, metrics = free_ports(2)
    cmd = [sys.executable, "-m", "gossipfast", "run", "--listen", f"127.0.0.1:{listen}"]
    cmd += ["--metrics-port", str(metrics), "--log-level", "WARNING"]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        got: list[str] = []  # the first body the endpoint serves
        wait_for(lambda: _scrape(metrics, got), 20, poll=0.1)
        body = got[0] if got else ""
        assert f'gossipfast_view_size{{node="127.0.0.1:{listen}",view="active"}} 0.0' in body
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err.decode()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_cluster_metrics_port_gives_each_node_an_endpoint() -> None:
    pytest.importorskip("prometheus_client")
    # node i serves on base + i: find two consecutive free ports
    base = next(p for p in (free_ports(1)[0] for _ in range(50)) if _ports_free(p, 2))
    cmd = [sys.executable, "-m", "gossipfast", "cluster", "--nodes", "2", "--rate", "5"]
    cmd += ["--duration", "3", "--json", "--metrics-port", str(base)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    bodies: dict[int, str] = {}

    def both_scraped() -> bool:  # (or the cluster ended: the asserts below say why)
        for port in (base, base + 1):
            got: list[str] = []
            if port not in bodies and _scrape(port, got):
                bodies[port] = got[0]
        return len(bodies) == 2 or proc.poll() is not None

    try:
        wait_for(both_scraped, 60, poll=0.2)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["nodes"] == 2
    assert set(bodies) == {base, base + 1}, err
    assert all("gossipfast_deliveries_total{" in b for b in bodies.values())


def _scrape(port: int, into: list[str]) -> bool:
    """Fetch ``/metrics`` from ``port`` into ``into``; False while nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            into.append(r.read().decode())
    except OSError:
        return False
    return True


def _ports_free(first: int, n: int) -> bool:
    socks: list[socket.socket] = []
    try:
        for p in range(first, first + n):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def test_membership_churn_does_not_flood_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gossipfast")
    node = gossipfast.Node("127.0.0.1:0")
    downs = [gossipfast.NeighborDown(f"10.0.0.{i}:7000", "failed") for i in range(50)]
    ups = [gossipfast.NeighborUp(f"10.0.0.{i}:7000") for i in range(50)]
    node._on_events(downs + ups)
    levels = collections.Counter((r.levelno, "up" in r.getMessage()) for r in caplog.records)
    assert levels[(logging.WARNING, False)] == 1  # failures: one warning a minute
    assert levels[(logging.INFO, True)] == 10  # ups: ten infos a minute
    assert levels[(logging.DEBUG, False)] == 49 and levels[(logging.DEBUG, True)] == 40
    assert node.stats()["neighbor_down_failed"] == 50
    # a minute later the next warning says how many were demoted meanwhile
    caplog.clear()
    node._eventlog.limited("down:failed", logging.WARNING, time.monotonic() + 61, "x %s", "y")
    assert caplog.records[-1].getMessage() == "x y (49 similar at DEBUG before)"
