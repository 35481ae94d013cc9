"""Time ratios against PyTorch CPU and JAX (CPU, ``jax.jit``): nkernels
time / peer time per training step, so that lower is better, as asv reads every value (a slower
nkernels shows as a rising ratio, flagged by ``asv continuous`` and ``asv compare``).

Same architecture, initial weights, data, batch size and optimizer (Adam) on both sides (see
``nkernels bench``, which prints the same measurement as "x faster"); ``torch.set_num_threads``
equals Numba's thread count, and JAX sizes its pool from the process's CPU affinity, so on the
2-core benchmark machine every side uses 2 threads. Each side is timed in a fresh process of its own
(``bench.speedups``; commits before that ran the peer first in the benchmark's process: a peer
measured after nkernels' thread pools have started runs slower).
"""
from .common import bench, require_peer

MODELS = list(bench().CASES)


class TimeRatioVsPeer:
    """One training step of each benchmark model against the peer of a subclass."""

    peer = ""  # the peer's module, a key of common.PEERS and of nkernels' bench.PEERS
    params = MODELS
    param_names = ["model"]
    timeout = 600

    def setup(self, model):
        require_peer(self.peer)
        if model not in bench().CASES:  # asv runs this suite against older commits too
            raise NotImplementedError(f"this commit's nkernels bench has no {model} case")
        if self.peer == "jax" and not getattr(bench().CASES[model], "jax", True):
            raise NotImplementedError(f"the {model} case has no JAX twin (nkernels.cli.bench_jax)")

    def ratio(self, model):
        """nkernels' step time over the peer's, from the microseconds every version of
        ``bench.speedups`` reports (asv runs this suite against older commits too)."""
        (row,) = bench().speedups([model], n_steps=10, repeat=7, peers=(self.peer,))
        return row["nkernels_us"] / row[f"{self.peer}_us"]


class TimeRatioVsPyTorch(TimeRatioVsPeer):
    """PyTorch eager on the CPU, ``torch.set_num_threads`` equal to Numba's thread count."""

    peer = "torch"

    def track_time_ratio(self, model):
        return self.ratio(model)

    track_time_ratio.unit = "nkernels time / PyTorch time per step (lower is better)"


class TimeRatioVsJAX(TimeRatioVsPeer):
    """JAX on the CPU: one ``jax.jit`` training step (``nkernels bench``'s JAX twin of each model)."""

    peer = "jax"

    def track_time_ratio(self, model):
        return self.ratio(model)

    track_time_ratio.unit = "nkernels time / JAX time per step (lower is better)"
