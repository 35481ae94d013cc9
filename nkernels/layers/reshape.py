"""Flatten: (N, d1, d2, ...) -> (N, d1 * d2 * ...)."""
from __future__ import annotations

import numpy as np

from ..compiled.spec import CompiledOp
from .base import Layer


class Flatten(Layer):
    """Flattens every axis after the batch axis, as ``torch.nn.Flatten()``."""

    supported_devices = ("cpu", "cuda")

    def forward(self, x, training=False):
        x = self.prepare_input(x)
        if training:
            self.save_for_backward(shape=x.shape)
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))

    def backward(self, dy):
        shape = self.saved_for_backward()["shape"]
        dy = self.prepare_grad_output(dy, (shape[0], int(np.prod(shape[1:]))))
        return dy.reshape(*shape)

    def output_shape(self, input_shape):
        return (input_shape[0], int(np.prod(input_shape[1:])))

    def compiled_op(self, input_shape, dtype):
        return CompiledOp(forward="flatten_forward({x_flat}, {y_flat})",
                          backward="flatten_backward({dy_flat}, {dx_flat})",
                          ops=("flatten_forward", "flatten_backward"))
