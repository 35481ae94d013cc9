"""Elementwise activation layers: ReLU, Sigmoid, Tanh, SiLU and GELU."""
from __future__ import annotations

from ..passes import DX, DY, X, Y, Call, LayerPasses
from ..validation import check_choice
from .base import Layer


class _Elementwise(Layer):
    """An activation computed by ``<op>_forward(x, out)`` and ``<op>_backward(saved, dy, dx)`` on flat
    views, where ``saved`` is the forward's output ``Y`` (or its input ``X``, for ``backward_reads = X``)."""

    op = ""
    backward_reads = Y
    supported_devices = ("cpu", "cuda")

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def passes(self, input_shape):
        return LayerPasses(forward=(Call(self.op + "_forward", X.flat, Y.flat),),
                           backward=(Call(self.op + "_backward", self.backward_reads.flat, DY.flat, DX.flat),))


class ReLU(_Elementwise):
    """``max(x, 0)``."""

    op = "relu"


class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))``."""

    op = "sigmoid"


class Tanh(_Elementwise):
    """``tanh(x)``."""

    op = "tanh"


class SiLU(_Elementwise):
    """``x * sigmoid(x)``, as ``torch.nn.SiLU`` (also called swish)."""

    op = "silu"
    backward_reads = X


class GELU(_Elementwise):
    """``x * Phi(x)``, Phi the standard normal's CDF, as ``torch.nn.GELU``: ``approximate="none"``
    computes it with ``erf``, ``approximate="tanh"`` with ``0.5 * x * (1 + tanh(sqrt(2/pi) *
    (x + 0.044715 * x**3)))``."""

    backward_reads = X

    def __init__(self, approximate: str = "none"):
        self.approximate = check_choice(approximate, "approximate", ("none", "tanh"))
        self.op = "gelu" if self.approximate == "none" else "gelu_tanh"
