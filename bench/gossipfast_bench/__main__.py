"""``python -m gossipfast_bench``: the same as ``gossipfast bench``."""

from __future__ import annotations

from gossipfast_bench.bench import bench_command

if __name__ == "__main__":
    bench_command(prog_name="gossipfast bench")
