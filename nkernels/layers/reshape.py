"""Flatten: (N, d1, d2, ...) -> (N, d1 * d2 * ...)."""
from __future__ import annotations

import numpy as np

from ..passes import VIEW, LayerPasses
from .base import Layer


class Flatten(Layer):
    """Flattens every axis after the batch axis, as ``torch.nn.Flatten()``."""

    supported_devices = ("cpu", "cuda")

    def output_shape(self, input_shape):
        return (input_shape[0], int(np.prod(input_shape[1:])))

    def passes(self, input_shape):
        """A view both ways: the output is the input reshaped, and the input's gradient the output's."""
        return LayerPasses(forward=VIEW, backward=VIEW)
