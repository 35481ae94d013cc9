"""Elementwise activation layers: ReLU, Sigmoid and Tanh."""
from __future__ import annotations

from ..compiled.spec import CompiledOp
from .base import Layer


class _Elementwise(Layer):
    """An activation computed by ``<op>_forward(x, out)`` and ``<op>_backward(y, dy, dx)`` on flat views."""

    op = ""
    supported_devices = ("cpu", "cuda")

    def forward(self, x, training=False):
        x = self.prepare_input(x)
        out = self.empty(x.shape, x.dtype)
        self.kernel_of(self.op + "_forward")(x.reshape(-1), out.reshape(-1))
        if training:
            self.save_for_backward(y=out)
        return out

    def backward(self, dy):
        y = self.saved_for_backward()["y"]
        dy = self.prepare_grad_output(dy, y.shape)
        dx = self.empty(y.shape, y.dtype)
        self.kernel_of(self.op + "_backward")(y.reshape(-1), dy.reshape(-1), dx.reshape(-1))
        return dx

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def compiled_op(self, input_shape, dtype):
        return CompiledOp(
            forward=f"{self.op}_forward({{x_flat}}, {{y_flat}})",
            backward=f"{self.op}_backward({{y_flat}}, {{dy_flat}}, {{dx_flat}})",
            ops=(self.op + "_forward", self.op + "_backward"),
        )


class ReLU(_Elementwise):
    """``max(x, 0)``."""

    op = "relu"


class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))``."""

    op = "sigmoid"


class Tanh(_Elementwise):
    """``tanh(x)``."""

    op = "tanh"
