"""Hypothesis: random event orders on a handful of engines never break the invariants."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.enginekit import Net, addr

from gossipfast.config import Config

N = 6
CONFIG = Config(
    active_view_size=3,
    passive_view_size=5,
    shuffle_interval=0.7,
    shuffle_active=1,
    shuffle_passive=2,
    neighbor_timeout=0.3,
    repair_interval=0.5,
    active_random_walk_length=3,
    passive_random_walk_length=1,
    graft_timeout_1=0.05,
    graft_timeout_2=0.03,
    tree_beacon_interval=0.4,  # the anchored tree forms, fails and re-forms within a run
)

node = st.integers(0, N - 1)
op = st.one_of(
    st.tuples(st.just("join"), node, node),
    st.tuples(st.just("broadcast"), node, st.just(0)),
    st.tuples(st.just("crash"), node, st.just(0)),
    st.tuples(st.just("restart"), node, node),
    st.tuples(st.just("leave"), node, st.just(0)),
    st.tuples(st.just("close"), node, node),
    st.tuples(st.just("run"), st.integers(1, 40), st.just(0)),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=30), st.integers(0, 1000))
def test_random_event_orders_keep_invariants(ops: list[tuple[str, int, int]], seed: int) -> None:
    net = Net(N, CONFIG, seed=seed, latency=0.01, detect=0.2)
    incarnation = dict.fromkeys(net.engines, 1)
    for name, a, b in ops:
        x, y = addr(a), addr(b)
        if name == "join" and x not in net.dead and x != y:
            net.join(x, [y])
        elif name == "broadcast" and x not in net.dead:
            net.broadcast(x, b"%d" % len(net.delivered[x]))
        elif name == "crash" and x not in net.dead:
            net.crash(x)
        elif name == "restart" and x in net.dead and x != y:
            incarnation[x] += 1
            net.add(x, incarnation[x])
            net.join(x, [y])
        elif name == "leave" and x not in net.dead:
            net.call(x, "leave")
            net.dead.add(x)
        elif name == "close" and x not in net.dead and y in net.engines[x].active_view:
            net.call(x, "on_disconnected", y, "closed")
        elif name == "run":
            net.run(a * 0.05)
        net.check_invariants()
    # quiet period: links end symmetric, every view respects its bounds
    net.run(5.0)
    net.check_invariants()
    assert net.symmetric()
    for a in net.live():
        assert net.engines[a].stats()["bad_messages"] == 0
