"""Admission control (gossipfast._admission) driven without sockets: time is passed in."""

from __future__ import annotations

from typing import Any

from gossipfast._admission import KNOWN_GOOD_TTL, MAX_HOSTS, MAX_KNOWN_GOOD, Admission
from gossipfast.config import Config
from gossipfast.transport import COUNTER_NAMES


def make(**kw: Any) -> tuple[Admission, dict[str, int], list[str]]:
    counters = dict.fromkeys(COUNTER_NAMES, 0)
    logged: list[str] = []
    adm = Admission(Config(**kw), 0.0, counters, lambda cause, *_: logged.append(cause))
    return adm, counters, logged


def test_connection_and_handshake_limits() -> None:
    adm, c, logged = make(max_connections=10, max_handshaking=3)
    assert adm.admit("10.0.0.1", opened=9, unready=2, now=0.0) is None
    assert adm.admit("10.0.0.1", opened=10, unready=0, now=0.0) == "limit"
    assert adm.admit("10.0.0.1", opened=0, unready=3, now=0.0) == "limit"
    assert c["connections_refused"] == 2
    assert c["host_refusals"] == 0
    assert logged == ["conn-limit", "conn-limit"]


def test_per_host_limit_counts_open_connections() -> None:
    adm, c, _ = make(max_connections_per_host=2, accept_rate=1000.0)
    for _ in range(2):
        assert adm.admit("10.0.0.1", 0, 0, 0.0) is None
        adm.host_opened("10.0.0.1")
    why = adm.admit("10.0.0.1", 0, 0, 0.0)
    assert why is not None and "max_connections_per_host" in why
    assert adm.admit("10.0.0.2", 0, 0, 0.0) is None  # another host is not held
    adm.host_closed("10.0.0.1")
    assert adm.admit("10.0.0.1", 0, 0, 0.0) is None
    assert c["connections_refused"] == c["host_refusals"] == 1
    adm.host_closed("10.0.0.1")
    adm.host_closed("10.0.0.1")
    assert "10.0.0.1" not in adm.per_host  # no zero entries kept


def test_accept_rate_bucket_refills_with_time() -> None:
    adm, c, logged = make(accept_rate=2.0, max_connections_per_host=1000)
    assert adm.admit("h", 0, 0, 0.0) is None
    assert adm.admit("h", 0, 0, 0.0) is None
    why = adm.admit("h", 0, 0, 0.0)
    assert why == "over accept_rate=2 connections/s"
    assert adm.admit("h", 0, 0, 0.25) is not None  # half a token back: not yet
    assert adm.admit("h", 0, 0, 0.5) is None  # one token back
    assert c["host_refusals"] >= 2
    assert logged[0] == "host-" + why


def test_accept_buckets_are_bounded() -> None:
    adm, _, _ = make(accept_rate=1.0, max_connections_per_host=1000)
    for i in range(MAX_HOSTS):
        adm.accept[f"h{i}"] = (0.0, 0.0)  # every bucket empty at t=0
    assert adm.admit("new", 0, 0, 10.0) is None  # all refilled by now: forgotten
    assert len(adm.accept) == 1
    for i in range(MAX_HOSTS):
        adm.accept[f"h{i}"] = (0.0, 10.0)  # none refilled yet
    assert adm.admit("newer", 0, 0, 10.0) is None
    assert len(adm.accept) == 1  # cleared rather than grown


def test_dial_rate_spares_known_good_addresses() -> None:
    adm, c, logged = make(dial_rate=2.0)
    assert adm.dial_allowed("a:1", 0.0)
    assert adm.dial_allowed("b:1", 0.0)
    assert not adm.dial_allowed("c:1", 0.0)
    assert c["dials_limited"] == 1 and logged == ["dial-rate"]
    adm.mark_good("c:1", 0.0)
    assert adm.dial_allowed("c:1", 0.0)  # reached once: dialled freely
    assert not adm.dial_allowed("d:1", 0.1)
    assert adm.dial_allowed("d:1", 0.5)  # refilled
    t = KNOWN_GOOD_TTL + 1.0  # stale: c:1 takes tokens again
    assert adm.dial_allowed("c:1", t) and adm.dial_allowed("c:1", t)
    assert not adm.dial_allowed("c:1", t)
    assert c["dials_limited"] == 3


def test_known_good_addresses_are_bounded() -> None:
    adm, _, _ = make()
    for i in range(MAX_KNOWN_GOOD + 100):
        adm.mark_good(f"10.0.{i >> 8}.{i & 255}:1", float(i))
    assert len(adm.good) == MAX_KNOWN_GOOD
    assert "10.0.0.0:1" not in adm.good  # the least recently reached went first
    assert f"10.0.{(MAX_KNOWN_GOOD + 99) >> 8}.{(MAX_KNOWN_GOOD + 99) & 255}:1" in adm.good
    adm.mark_good("10.0.0.200:1", 1e6)  # reached again: most recent now
    assert list(adm.good)[-1] == "10.0.0.200:1"
