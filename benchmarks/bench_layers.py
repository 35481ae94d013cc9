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
    "silu": {"digits": (lambda: L.SiLU(), (64, 128)), "mnist": (lambda: L.SiLU(), (128, 32, 24, 24))},
    "gelu": {"digits": (lambda: L.GELU(), (64, 128)), "mnist": (lambda: L.GELU(), (128, 32, 24, 24))},
    "batchnorm1d": {"digits": (lambda: L.BatchNorm1D(128), (64, 128)),
                    "mnist": (lambda: L.BatchNorm1D(32), (128, 32, 196))},
    "batchnorm2d": {"digits": (lambda: L.BatchNorm2D(16), (64, 16, 8, 8)),
                    "mnist": (lambda: L.BatchNorm2D(32), (128, 32, 24, 24))},
    "layernorm": {"digits": (lambda: L.LayerNorm(32), (64, 8, 32)), "mnist": (lambda: L.LayerNorm(128), (128, 28, 128))},
    "convtranspose2d": {"digits": (lambda: L.ConvTranspose2D(16, 8, 2, stride=2), (64, 16, 4, 4)),
                        "mnist": (lambda: L.ConvTranspose2D(32, 16, 2, stride=2), (128, 32, 12, 12))},
    "upsample2d": {"digits": (lambda: L.Upsample2D(2), (64, 16, 4, 4)),
                   "mnist": (lambda: L.Upsample2D(2), (128, 32, 12, 12))},
    "globalavgpool2d": {"digits": (lambda: L.GlobalAvgPool2D(), (64, 16, 8, 8)),
                        "mnist": (lambda: L.GlobalAvgPool2D(), (128, 32, 24, 24))},
    "globalavgpool1d": {"digits": (lambda: L.GlobalAvgPool1D(), (64, 8, 32)),
                        "mnist": (lambda: L.GlobalAvgPool1D(), (128, 28, 128))},
    "multiheadattention": {"digits": (lambda: L.MultiHeadAttention(32, 4), (64, 8, 32)),
                           "mnist": (lambda: L.MultiHeadAttention(128, 4), (128, 28, 128))},
    "positionalembedding": {"digits": (lambda: L.PositionalEmbedding(8, 32), (64, 8, 32)),
                            "mnist": (lambda: L.PositionalEmbedding(28, 128), (128, 28, 128))},
    # token ids in, (N, T, D) out
    "embedding": {"digits": (lambda: L.Embedding(16, 32), (64, 8)), "mnist": (lambda: L.Embedding(256, 128), (128, 28))},
}


class _Layer:
    """One layer at one size, with its input and output gradient, compiled in ``setup`` (a first
    forward and backward), with BLAS on one thread as every compiled loop of nkernels runs it."""

    params = (list(SHAPES), ["digits", "mnist"])
    param_names = ["layer", "size"]
    timeout = 300  # a fresh environment compiles each layer's kernels once

    def setup(self, layer, size):
        make, shape = SHAPES[layer][size]
        try:
            self.layer = make()
        except AttributeError as exc:  # asv runs this suite against older commits too
            raise NotImplementedError(f"this commit's nkernels has no such layer: {exc}") from None
        rng = np.random.default_rng(0)
        if getattr(self.layer, "num_embeddings", None) is not None:  # an embedding takes token ids
            self.x = rng.integers(0, self.layer.num_embeddings, shape)
        else:
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
