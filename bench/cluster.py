"""The cluster benchmark of issue 5, from a checkout: same as ``gossipfast bench``.

The harness lives in the package (``gossipfast/_bench.py``, worker
``gossipfast/_bench_worker.py``, naive flood reference ``gossipfast/_bench_flood.py``)
so that ``gossipfast bench`` works on a fresh ``pip install``; this file only runs it::

    python bench/cluster.py --help
    python bench/cluster.py --others-python /tmp/benchvenv/bin/python --plot bench/cluster.png
"""

from __future__ import annotations

from gossipfast._bench import bench_command

if __name__ == "__main__":
    bench_command(prog_name="bench/cluster.py")
