"""Speed ratios against JAX on the CPU (``jax.jit``), measured in one process: JAX time / nkernels time
(higher is better).

Same architecture, initial weights, data, batch size and optimizer (Adam, written in
``jax.numpy``): see :mod:`nkernels.bench_jax`. JAX runs first, then nkernels: a peer measured
after nkernels' thread pools have started runs slower. JAX sizes its thread pool from the
process's CPU affinity (no thread-count setting), so on the 2-core benchmark machine both sides
use 2 threads. Kept out of asv's regression detection by asv.conf.json's ``track_speedup`` rule.
"""
from nkernels import bench

from .common import jax


class SpeedupVsJAX:
    """One training step of each benchmark model."""

    params = list(bench.CASES)
    param_names = ["model"]
    timeout = 600
    number = 1
    repeat = 1

    def setup(self, model):
        if jax is None:
            raise NotImplementedError("JAX is not installed: pip install 'jax[cpu]'")

    def track_speedup(self, model):
        (row,) = bench.speedups([model], n_steps=10, repeat=7, peers=("jax",))
        return row["jax_speedup"]

    track_speedup.unit = "x faster than JAX"
