"""Dropout: inverted dropout with a counter-based random mask."""
from __future__ import annotations

import numpy as np

from ..compiled.spec import CompiledOp
from .base import Layer


class Dropout(Layer):
    """Zeroes each element with probability ``p`` in training and scales the rest by ``1 / (1 - p)``.

    Evaluation mode is the identity. The mask of element ``i`` in a call is a pure function of
    ``(seed, counter + i)``; the counter (a buffer, saved with checkpoints) advances by the
    number of elements each training call, so runs are reproducible and the CPU and CUDA
    kernels draw the same masks. ``seed`` defaults to one drawn when the model is seeded.
    """

    def __init__(self, p: float = 0.5, seed: int | None = None):
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0 <= p <= 1:
            raise ValueError(f"dropout probability p must be a number in [0, 1], got {p!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        self.p = float(p)
        self.seed = int(seed) if seed is not None else int(np.random.default_rng().integers(2**62))
        self.buffers["counter"] = np.zeros(1, np.int64)

    supported_devices = ("cpu", "cuda")

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """Draw the mask seed from ``rng`` (so a seeded model drops the same units) and restart the counter."""
        if self._init_arguments is None or self._init_arguments.get("seed") is None:
            self.seed = int(rng.integers(2**62))
        self.buffers["counter"][0] = 0

    def forward(self, x, training=False):
        x = self.prepare_input(x)
        if not training:
            return x
        mask, out = self.empty(x.shape, x.dtype), self.empty(x.shape, x.dtype)
        counter = self.buffers["counter"]
        self.kernel_of("dropout_forward")(x.reshape(-1), self.p, self.seed, int(counter[0]), mask.reshape(-1),
                                  out.reshape(-1))
        counter[0] += x.size
        self.save_for_backward(mask=mask)
        return out

    def backward(self, dy):
        mask = self.saved_for_backward()["mask"]
        dy = self.prepare_grad_output(dy, mask.shape)
        dx = self.empty(mask.shape, mask.dtype)
        self.kernel_of("dropout_backward")(dy.reshape(-1), mask.reshape(-1), dx.reshape(-1))
        return dx

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def compiled_op(self, input_shape, dtype):
        size = int(np.prod(input_shape))
        return CompiledOp(
            forward=(f"dropout_forward({{x_flat}}, {self.p!r}, {self.seed}, {{s[counter]}}[0], {{w[mask]}}, "
                     f"{{y_flat}})\n{{s[counter]}}[0] += {{x_flat}}.shape[0]"),
            backward="dropout_backward({dy_flat}, {w[mask]}, {dx_flat})",
            ops=("dropout_forward", "dropout_backward"),
            workspaces={"mask": ((size,), None)},
            state={"counter": self.buffers["counter"]},
        )
