"""Dropout: inverted dropout with a counter-based random mask."""
from __future__ import annotations

import numpy as np

from ..passes import DX, DY, VIEW, X, Y, Call, LayerPasses, Scalar, buffer, work
from ..validation import check_number, check_seed
from .base import Layer


class Dropout(Layer):
    """Zeroes each element with probability ``p`` in training and scales the rest by ``1 / (1 - p)``.

    Evaluation mode is the identity. The mask of element ``i`` in a call is a pure function of
    ``(seed, counter + i)``; the counter advances by the number of elements each training call,
    so runs are reproducible and the CPU and CUDA kernels draw the same masks. ``seed`` and
    ``counter`` are buffers, saved with the model and with checkpoints; ``seed`` defaults to one
    drawn when the model is seeded (or at random), and the drawn seed is saved too.
    """

    supported_devices = ("cpu", "cuda")

    def __init__(self, p: float = 0.5, seed: int | None = None):
        self.p = check_number(p, "p", low=0, high=1)
        seed = check_seed(seed)
        drawn = seed if seed is not None else np.random.default_rng().integers(2**62)
        self.add_buffer("seed", np.array([drawn], np.int64))
        self.add_buffer("counter", np.zeros(1, np.int64))

    @property
    def seed(self) -> int:
        """The seed of the masks (a buffer, so saves and checkpoints keep it)."""
        return int(self.buffers["seed"][0])

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """Draw the mask seed from ``rng`` (so a seeded model drops the same units) and restart the counter."""
        if self._init_arguments is None or self._init_arguments.get("seed") is None:
            self.buffers["seed"][0] = rng.integers(2**62)
        self.buffers["counter"][0] = 0

    def scalars(self):
        return {"p": self.p}

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def passes(self, input_shape):
        return LayerPasses(
            forward=(Call("dropout_forward", X.flat, Scalar("p"), buffer("seed"), buffer("counter"), work("mask"),
                          Y.flat),),
            backward=(Call("dropout_backward", DY.flat, work("mask"), DX.flat),),
            inference=VIEW,
            workspaces={"mask": ((int(np.prod(input_shape)),), None)},
        )
