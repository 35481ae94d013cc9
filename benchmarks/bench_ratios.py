"""Speed ratios against PyTorch CPU and JAX (CPU, ``jax.jit``), each measured in one process: peer time /
nkernels time (higher is better).

Same architecture, initial weights, data, batch size and optimizer (Adam) on both sides (see
:mod:`nkernels.cli.bench` and :mod:`nkernels.cli.bench_jax`); ``torch.set_num_threads`` equals Numba's thread
count, and JAX sizes its pool from the process's CPU affinity, so on the 2-core benchmark machine every
side uses 2 threads. The peer runs first: a peer measured after nkernels' thread pools have started runs
slower. A regression shows as a falling ratio (asv's regression detection is switched off for these in
asv.conf.json, since it treats every value as lower-is-better).
"""
from nkernels.cli import bench

from .common import jax, torch


class SpeedupVsPeer:
    """One training step of each benchmark model against the peer of a subclass."""

    peer, name, install = "", "", ""  # the peer in bench.PEERS, as it is called, how to install it
    peer_module = None
    params = list(bench.CASES)
    param_names = ["model"]
    timeout = 600
    number = 1
    repeat = 1

    def setup(self, model):
        if self.peer_module is None:
            raise NotImplementedError(f"{self.name} is not installed: {self.install}")
        if self.peer == "jax" and not bench.CASES[model].jax:
            raise NotImplementedError(f"the {model} case has no JAX twin (nkernels.cli.bench_jax)")

    def speedup(self, model):
        (row,) = bench.speedups([model], n_steps=10, repeat=7, peers=(self.peer,))
        return row[f"{self.peer}_speedup"]


class SpeedupVsPyTorch(SpeedupVsPeer):
    """PyTorch eager on the CPU, ``torch.set_num_threads`` equal to Numba's thread count."""

    peer, name, install, peer_module = "torch", "PyTorch", "pip install 'nkernels[bench]'", torch

    def track_speedup(self, model):
        return self.speedup(model)

    track_speedup.unit = "x faster than PyTorch"


class SpeedupVsJAX(SpeedupVsPeer):
    """JAX on the CPU: one ``jax.jit`` training step (:mod:`nkernels.cli.bench_jax`)."""

    peer, name, install, peer_module = "jax", "JAX", "pip install 'jax[cpu]'", jax

    def track_speedup(self, model):
        return self.speedup(model)

    track_speedup.unit = "x faster than JAX"
