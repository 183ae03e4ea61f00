"""gossipfast-bench: the loopback cluster benchmark of gossipfast, a distribution apart.

It runs N processes per implementation on one host and puts gossipfast beside the naive
flood floor, the host's ceiling (``star``), two brokers (Redis and NATS pub/sub) and two
gossip libraries (aiogossip, py-libp2p gossipsub). Kept out of the library's wheel so
that a change in a competitor's API breaks nothing a user installs. From a checkout::

    .venv/bin/pip install -e ./bench            # adds the ``gossipfast bench`` command
    .venv/bin/gossipfast bench --help           # or: python -m gossipfast_bench --help

Modules: :mod:`gossipfast_bench.bench` (the coordinator and its click command),
:mod:`gossipfast_bench.worker` (one node per process) and :mod:`gossipfast_bench.flood`
(the naive flood and the star).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
