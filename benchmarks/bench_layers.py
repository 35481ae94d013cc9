"""Forward+backward of every layer, at digits sizes and at an MNIST-sized batch of 128 (28x28): its
time, and what it allocates."""
from contextlib import ExitStack

import numpy as np

import nkernels as nk

from .common import allocations, blas_single_threaded

L = nk.layers

SHAPES = {
    "dense": {"digits": (lambda: L.Dense(64, 128), (64, 64)), "mnist": (lambda: L.Dense(784, 128), (128, 784))},
    "conv2d": {"digits": (lambda: L.Conv2D(1, 16, 3, padding=1), (64, 1, 8, 8)),
               "mnist": (lambda: L.Conv2D(1, 32, 5), (128, 1, 28, 28))},
    "conv1d": {"digits": (lambda: L.Conv1D(8, 16, 3, padding=1), (64, 8, 8)),
               "mnist": (lambda: L.Conv1D(28, 32, 5), (128, 28, 28))},
    "maxpool2d": {"digits": (lambda: L.MaxPool2D(2), (64, 16, 8, 8)),
                  "mnist": (lambda: L.MaxPool2D(2), (128, 32, 24, 24))},
    "maxpool1d": {"digits": (lambda: L.MaxPool1D(2), (64, 16, 8)), "mnist": (lambda: L.MaxPool1D(2), (128, 32, 24))},
    "avgpool2d": {"digits": (lambda: L.AvgPool2D(2), (64, 16, 8, 8)),
                  "mnist": (lambda: L.AvgPool2D(2), (128, 32, 24, 24))},
    "relu": {"digits": (L.ReLU, (64, 128)), "mnist": (L.ReLU, (128, 32, 24, 24))},
    "sigmoid": {"digits": (L.Sigmoid, (64, 128)), "mnist": (L.Sigmoid, (128, 32, 24, 24))},
    "tanh": {"digits": (L.Tanh, (64, 128)), "mnist": (L.Tanh, (128, 32, 24, 24))},
    "dropout": {"digits": (lambda: L.Dropout(0.5), (64, 128)), "mnist": (lambda: L.Dropout(0.5), (128, 32, 24, 24))},
    "flatten": {"digits": (L.Flatten, (64, 16, 4, 4)), "mnist": (L.Flatten, (128, 64, 4, 4))},
    "lstm": {"digits": (lambda: L.LSTM(8, 64), (64, 8, 8)), "mnist": (lambda: L.LSTM(28, 128), (128, 28, 28))},
    "gru": {"digits": (lambda: L.GRU(8, 64), (64, 8, 8)), "mnist": (lambda: L.GRU(28, 128), (128, 28, 28))},
}


class _Layer:
    """One layer at one size, with its input and output gradient, compiled in ``setup`` (a first
    forward and backward), with BLAS on one thread as every compiled loop of nkernels runs it."""

    params = (list(SHAPES), ["digits", "mnist"])
    param_names = ["layer", "size"]
    timeout = 300  # a fresh environment compiles each layer's kernels once

    def setup(self, layer, size):
        make, shape = SHAPES[layer][size]
        self.layer = make()
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal(shape).astype(np.float32)
        self.dy = rng.standard_normal(self.layer.output_shape(shape)).astype(np.float32)
        self.blas = ExitStack()
        self.blas.enter_context(blas_single_threaded())
        self.forward_backward()  # compile outside the measurement

    def teardown(self, layer, size):
        if hasattr(self, "blas"):
            self.blas.close()

    def forward_backward(self):
        self.layer.forward(self.x, training=True)
        self.layer.backward(self.dy)


class LayerForwardBackward(_Layer):
    """Time of one training-mode forward and backward pass."""

    def time_forward_backward(self, layer, size):
        self.forward_backward()


class LayerMemory(_Layer):
    """What one training-mode forward and backward pass allocates (:func:`benchmarks.common.allocations`).

    ``track_peak_bytes`` is the peak of the memory allocated during the pass and still held, by
    Python, NumPy and Numba's runtime alike (tracemalloc); the interpreter's and Numba's own
    baseline stays out of it, so a layer that doubles its workspace shows as a doubled figure.
    ``track_numba_allocations`` counts the allocations Numba's runtime made during the pass.
    Both are deterministic: one run says it.
    """

    def track_peak_bytes(self, layer, size):
        return allocations(self.forward_backward)[0]

    track_peak_bytes.unit = "bytes"

    def track_numba_allocations(self, layer, size):
        return allocations(self.forward_backward)[1]

    track_numba_allocations.unit = "allocations by Numba's runtime"
