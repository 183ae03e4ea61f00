"""The cluster benchmark of issue 5, from a checkout: the same as ``gossipfast bench``.

The harness is the ``gossipfast-bench`` distribution in this folder (package
``gossipfast_bench``: coordinator ``bench.py``, one process per node ``worker.py``,
naive flood reference ``flood.py``); ``.venv/bin/pip install -e ./bench`` adds the
``gossipfast bench`` command. This file runs it without installing it::

    python bench/cluster.py --help
    python bench/cluster.py --others-python /tmp/benchvenv/bin/python --plot bench/cluster.png
"""

from __future__ import annotations

from gossipfast_bench.bench import bench_command

if __name__ == "__main__":
    bench_command(prog_name="bench/cluster.py")
