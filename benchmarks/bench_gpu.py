"""GPU benchmarks: every layer's forward+backward and whole training steps on CUDA.

Each ``setup`` raises NotImplementedError (asv's "skipped") unless a real CUDA GPU is usable, so
the suite runs unchanged on machines without one (and never times the simulator).
"""
import numpy as np

from .bench_layers import SHAPES
from .common import bench, require_peer


def _require_gpu():
    from nkernels import devices

    usable, reason = devices.cuda_status()
    if not usable or "simulator" in reason:
        raise NotImplementedError(f"no CUDA GPU: {reason}")


class GPULayerForwardBackward:
    """``time_`` of one training-mode forward and backward of each layer on the GPU (synchronized)."""

    params = (list(SHAPES), ["digits", "mnist"])
    param_names = ["layer", "size"]

    def setup(self, layer, size):
        _require_gpu()
        from nkernels import devices

        make, shape = SHAPES[layer][size]
        self.layer = make().to("cuda")
        rng = np.random.default_rng(0)
        self.x = devices.to_device(rng.standard_normal(shape).astype(np.float32))
        out = self.layer.forward(self.x, training=True)
        self.dy = devices.to_device(rng.standard_normal(tuple(out.shape)).astype(np.float32))
        self.time_forward_backward(layer, size)  # compile outside the timing

    def time_forward_backward(self, layer, size):
        from nkernels import devices

        self.layer.forward(self.x, training=True)
        self.layer.backward(self.dy)
        devices.synchronize("cuda")


class GPUTrainingStep:
    """A training step (Adam) of the digits CNN and LeNet on the GPU, and the ratio to PyTorch eager
    on the same GPU (nkernels time / PyTorch time: lower is better)."""

    params = ["cnn", "lenet"]
    param_names = ["model"]

    def setup(self, model):
        _require_gpu()
        self.case = bench().CASES[model]

    def time_step(self, model):
        bench().nkernels_step(self.case, n_steps=10, repeat=3, device="cuda")

    def track_time_ratio_vs_torch_cuda(self, model):
        if not require_peer("torch").cuda.is_available():
            raise NotImplementedError("PyTorch has no CUDA here")
        theirs = bench().torch_step(self.case, 20, 7, device="cuda")
        return bench().nkernels_step(self.case, 20, 7, device="cuda") / theirs

    track_time_ratio_vs_torch_cuda.unit = "nkernels CUDA time / PyTorch CUDA time per step (lower is better)"
