"""Speed ratios against PyTorch CPU, measured in one process: PyTorch time / nkernels time (higher is better).

Same architecture, batch size and optimizer (Adam); ``torch.set_num_threads`` equals Numba's
thread count. A regression shows as a falling ratio (asv's regression detection is switched
off for these in asv.conf.json, since it treats every value as lower-is-better).
"""
from nkernels import bench

from .common import torch


class SpeedupVsPyTorch:
    """One training step of each benchmark model."""

    params = list(bench.CASES)
    param_names = ["model"]
    timeout = 600
    number = 1
    repeat = 1

    def setup(self, model):
        if torch is None:
            raise NotImplementedError("PyTorch is not installed: pip install 'nkernels[bench]'")

    def track_speedup(self, model):
        (row,) = bench.speedups([model], n_steps=10, repeat=7)
        return row["speedup"]

    track_speedup.unit = "x faster than PyTorch"
