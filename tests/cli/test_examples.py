"""Every program in examples/ runs and does what its docstring says (loopback only)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gossipfast._procs import free_ports

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

pytestmark = pytest.mark.network


def run_example(name: str, *args: str, timeout: float = 60) -> str:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.mark.timeout(90)
def test_cache_invalidation() -> None:
    out = run_example("cache_invalidation.py", "--nodes", "3")
    assert out.count("before: VALUE user:42 Ada") == 3
    assert out.count("after:  VALUE user:42 MISS") == 3
    assert "all 2 other caches invalidated" in out


@pytest.mark.timeout(90)
def test_config_push() -> None:
    out = run_example("config_push.py")
    assert "late joiner got version 2: {'log_level': 'DEBUG', 'feature_x': True}" in out
    assert "all 4 nodes agree" in out


@pytest.mark.timeout(90)
def test_chat_between_three_processes() -> None:
    ports = free_ports(3)
    procs: list[subprocess.Popen[str]] = []
    try:
        for i, (name, port) in enumerate(zip(("alice", "bob", "carol"), ports)):
            cmd = [sys.executable, str(EXAMPLES / "chat.py"), "--name", name]
            cmd += ["--listen", f"127.0.0.1:{port}"]
            if i:
                cmd += ["--join", f"127.0.0.1:{ports[0]}"]
            p = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
            )
            procs.append(p)
            want = "* joined via" if i else "* alice listening on"
            assert want in read_until(p, want)
        alice, bob, carol = procs
        assert "* carol is here" in read_until(alice, "* carol is here")  # the member list
        assert alice.stdin is not None
        alice.stdin.write("hello room\n")
        alice.stdin.flush()
        # the name comes from the sender's member record, not from the payload
        assert "alice> hello room" in read_until(bob, "alice> hello room")
        assert "alice> hello room" in read_until(carol, "alice> hello room")
        bob_in = bob.stdin
        assert bob_in is not None
        # carol's record may reach bob a moment after alice's message (news of members
        # goes out every 50 ms): ask again until it has, within the README's bound
        deadline = time.monotonic() + 10
        while True:
            bob_in.write("/who\n")
            bob_in.flush()
            room = read_until(bob, "* in the room")
            if "carol" in room or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert "* in the room: alice, bob, carol" in room
        for p in procs:
            assert p.stdin is not None
            p.stdin.close()  # end of input: the member leaves
        for p in procs:
            assert p.wait(20) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def read_until(p: subprocess.Popen[str], text: str, timeout: float = 20) -> str:
    assert p.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    for line in p.stdout:  # bounded by the test's timeout marker
        seen.append(line)
        if text in line:
            return line
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"{text!r} not seen; got {json.dumps(seen)}")
