"""The bench's broker competitors against real servers on loopback (skipped when the
server binary or the Python client is missing)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from support.benchkit import import_bench

_bench = import_bench("gossipfast_bench.bench")
BrokerServer, server_binary = _bench.BrokerServer, _bench.server_binary

pytestmark = [pytest.mark.network]

_CLIENT = {"redis": ("redis", "hiredis"), "nats": ("nats",)}
_HDR = struct.Struct(">qII")


def _missing(impl: str) -> str | None:
    """Why ``impl`` cannot run here, or None."""
    if server_binary(impl) is None:
        name = {"redis": "redis-server", "nats": "nats-server"}[impl]
        return f"no {name} binary (apt-get install {name})"
    for mod in _CLIENT[impl]:
        if importlib.util.find_spec(mod) is None:
            return f"Python module {mod} not installed ({_bench.INSTALL_BROKERS})"
    return None


def _need(impl: str) -> None:
    why = _missing(impl)
    if why:
        pytest.skip(why)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("impl", ["redis", "nats"])
def test_server_starts_on_a_free_port_and_stops_by_pid(impl: str, tmp_path: Path) -> None:
    _need(impl)
    binary = server_binary(impl)
    assert binary is not None
    srv = BrokerServer(impl, binary, str(tmp_path))
    try:
        socket.create_connection(("127.0.0.1", srv.port), timeout=5).close()
        assert srv.cpu() >= 0.0
    finally:
        srv.stop()
    assert srv.proc.returncode is not None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()


@pytest.mark.timeout(150)
@pytest.mark.parametrize("impl", ["redis", "nats"])
def test_broker_cell_in_the_bench(impl: str) -> None:
    """A tiny cell of gossipfast and the broker: rows, ratio, CPU per delivery."""
    _need(impl)
    cmd = [sys.executable, "-m", "gossipfast", "bench", "--nodes", "3", "--runs", "1"]
    cmd += ["--duration", "0.3", "--modes", "one", "--payloads", "100", "--rates", "1000"]
    cmd += ["--impls", f"gossipfast,{impl}", "--quiet", "0.5", "--late", "0", "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=140)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    rows = {row["impl"]: row for row in out["rows"]}
    assert set(rows) == {"gossipfast", impl}, out["messages"]
    row = rows[impl]
    assert row["published"] > 0
    assert row["complete"] == 1.0
    assert row["incomplete_runs"] == 0 and row["disconnects"] == 0
    assert row["slow_consumer_drops"] == 0
    assert row["bytes_per_s"] == pytest.approx(row["throughput"] * 100)
    # Every node gets every message of node 0: 2 deliveries per broadcast.
    assert row["deliveries"] == 2 * row["published"]
    assert row["server_cpu_s"] > 0  # the server's work is counted
    assert row["cpu_per_100k"] == pytest.approx(row["cpu_total_s"] / row["deliveries"] * 100_000)
    assert [x["versus"] for x in out["ratios"]] == [impl]


@pytest.mark.timeout(60)
def test_redis_slow_subscriber_disconnect_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server cuts off a subscriber that does not read: counted, not hidden."""
    _need("redis")
    import redis
    from gossipfast_bench.worker import _CHANNEL, RedisImpl

    binary = server_binary("redis")
    assert binary is not None
    srv = BrokerServer("redis", binary, str(tmp_path))
    monkeypatch.setenv("GOSSIPFAST_BENCH_BROKER", srv.address)
    admin = redis.Redis(host="127.0.0.1", port=srv.port)
    sent = 2000

    async def scenario() -> None:
        impl = RedisImpl(1)
        await impl.start()
        try:
            impl.recorder.reset(2)
            admin.config_set("client-output-buffer-limit", "pubsub 256kb 128kb 1")
            payload = _HDR.pack(0, 0, 0) + bytes(16384)
            pipe = admin.pipeline(transaction=False)
            for _ in range(sent):
                pipe.publish(_CHANNEL, payload)
            # Blocking call: the subscriber's loop reads nothing while 32 MB go out.
            pipe.execute()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while impl.disconnects == 0:
                assert loop.time() < deadline, "the disconnect was not noticed"
                await asyncio.sleep(0.05)
            assert impl.stats()["disconnects"] >= 1
            assert impl.recorder.count < sent  # the cut-off copies are missing
        finally:
            impl.reader.cancel()
            await impl.pub.aclose()
            await impl.sub.aclose()

    try:
        asyncio.run(scenario())
    finally:
        admin.close()
        srv.stop()


@pytest.mark.timeout(60)
def test_a_missing_server_binary_is_one_skip_line() -> None:
    """With no redis-server to be found, the bench says so in one line and goes on."""
    path = str(Path(sys.executable).parent)  # the venv's bin
    if shutil.which("redis-server", path=path + ":/usr/local/sbin:/usr/sbin:/sbin"):
        pytest.skip("redis-server sits where the bench looks besides PATH")
    cmd = [sys.executable, "-m", "gossipfast", "bench", "--nodes", "2", "--runs", "1"]
    cmd += ["--impls", "redis", "--modes", "one", "--payloads", "100", "--rates", "100"]
    r = subprocess.run(
        [*cmd, "--json"],
        capture_output=True,
        text=True,
        timeout=50,
        env={**os.environ, "PATH": path},
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["rows"] == []
    assert out["messages"] == [
        "skipped redis: no redis-server on PATH (apt-get install redis-server)"
    ]


def _children(pid: int, comm: str) -> list[int]:
    """Processes named ``comm`` whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == pid and name == comm:
            out.append(int(entry.name))
    return out


@pytest.mark.timeout(90)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_server_is_stopped_when_the_bench_is_interrupted(sig: signal.Signals) -> None:
    _need("redis")
    cmd = [sys.executable, "-m", "gossipfast", "bench", "--nodes", "2", "--runs", "1"]
    cmd += ["--impls", "redis", "--modes", "one", "--payloads", "100", "--rates", "50"]
    cmd += ["--duration", "60"]
    # A shell starts background jobs with SIGINT ignored, and the bench would inherit
    # that from the test run: give it the disposition of a terminal's foreground job.
    p = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    servers: list[int] = []
    try:
        assert p.stderr is not None
        for line in p.stderr:  # ends at the bench's exit at the latest
            if "one/100B/50/s" in line or "starting 2 redis nodes" in line:
                break
        servers = _children(p.pid, "redis-server")
        assert len(servers) == 1, "the bench did not start its redis-server"
        p.send_signal(sig)
        p.wait(timeout=60)
        assert p.returncode != 0
        # Stopped and reaped by the bench: an orphan would live on under init.
        assert not Path(f"/proc/{servers[0]}").exists()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for pid in servers:
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
