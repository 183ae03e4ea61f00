"""A long partition of real processes heals into one overlay, with every message.

Six ``gossipfast run`` processes, each in a network namespace of its own with its own
address, the namespaces' veth ends on one bridge in a further namespace (the "switch").
The halves are cut apart with blackhole routes for longer than every failure timeout
the nodes' Config sets (heartbeat, connect, neighbour, repair) and than the old
failed-peer probing gave up after; then the routes go and the test waits for one overlay
and every message of before, during and after the split at every node, exactly once.

Needs root and ``ip netns`` (skipped with the reason elsewhere); talks only to the
addresses of the namespaces it creates.
"""

from __future__ import annotations

import os
import time

import pytest
from support.netns import HostNode, Hosts, components, netns_unavailable
from support.runproc import FAST, wait_for

pytestmark = [pytest.mark.network, pytest.mark.slow]

N = 6
#: Split length: longer than every timeout below and than the old probing's give-up
#: (10 probes, delays doubling from shuffle_interval to 8x it: 31.5 s at 0.5 s).
SPLIT_SECONDS = float(os.environ.get("GOSSIPFAST_REMERGE_SPLIT", "45"))
SETTINGS = [*FAST, "shuffle_interval=0.5", "reconnect_interval=1.0"]


@pytest.mark.timeout(int(SPLIT_SECONDS) + 240)
def test_a_split_longer_than_every_timeout_heals_into_one_overlay() -> None:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    hosts = Hosts(N)
    nodes: list[HostNode] = []
    try:
        for i in range(N):
            seeds = [] if i == 0 else [f"{hosts.ips[0]}:7000"]
            nodes.append(HostNode(i, f"{hosts.ips[i]}:7000", seeds, hosts.prefix(i), SETTINGS))
            if i == 0:  # the seed listens before anyone joins it
                assert wait_for(lambda: bool(nodes[0].stats), 20), nodes[0].errors
        assert wait_for(lambda: all(len(n.stats.get("active_view", [])) >= 2 for n in nodes), 30)
        left, right = list(range(N // 2)), list(range(N // 2, N))
        sent: dict[str, int] = {}  # payload -> sender

        def emit(phase: str, k: int) -> None:
            for j in range(k):
                i = j % N
                text = f"{phase} {j} from {i}"
                sent[text] = i
                nodes[i].send(text)

        def has_all(n: HostNode, phase: str | None = None) -> bool:
            got = n.got()
            return all(
                t in got
                for t, s in sent.items()
                if s != n.index and (phase is None or t[:3] == phase)
            )

        emit("pre", 30)
        assert wait_for(lambda: all(has_all(n) for n in nodes), 30)
        hosts.cut(left, right, True)
        t_cut = time.monotonic()
        # each side drops the other's links (heartbeat_timeout) before "mid" is sent
        assert wait_for(lambda: components(nodes) == 2, 20), [
            n.stats.get("active_view") for n in nodes
        ]
        emit("mid", 30)
        # each side goes on on its own
        for i in range(N):
            same = {t for t, s in sent.items() if t[:3] == "mid" and (s < N // 2) == (i < N // 2)}
            assert wait_for(lambda i=i, same=same: same - {t for t in same if sent[t] == i}
                         <= set(nodes[i].got()), 30), i  # fmt: skip
        time.sleep(max(0.0, SPLIT_SECONDS - (time.monotonic() - t_cut)))
        assert components(nodes) == 2  # still apart at the end of the split
        hosts.cut(left, right, False)
        t_heal = time.monotonic()
        merged = wait_for(lambda: components(nodes) == 1, 60)
        merge_time = time.monotonic() - t_heal
        assert merged, [n.stats.get("active_view") for n in nodes]
        emit("end", 30)
        assert wait_for(lambda: all(has_all(n) for n in nodes), 60), {
            n.index: sorted(t for t, s in sent.items() if s != n.index and t not in n.got())[:10]
            for n in nodes
        }
        for n in nodes:
            got = n.got()
            assert max(got.values()) == 1, (n.index, [t for t, c in got.items() if c > 1][:5])
            assert set(got) == {t for t, s in sent.items() if s != n.index}, n.index
            assert not n.errors, n.errors[:5]
        print(f"split {SPLIT_SECONDS:g} s; one overlay {merge_time:.1f} s after the heal")
    finally:
        for n in nodes:
            n.stop()
        hosts.close()
