"""Dense: a fully connected layer, ``y = x @ weight.T + bias`` (PyTorch's ``nn.Linear``)."""
from __future__ import annotations

import numpy as np

from ..passes import DX, DY, NEED_DX, X, Y, Call, LayerPasses, grad, param, work
from ..validation import check_bool, check_int
from .base import Layer


class Dense(Layer):
    """Fully connected layer: ``weight`` (out, in) and ``bias`` (out), initialized as PyTorch does.

    Like ``torch.nn.Linear`` it takes (N, in) or any (N, ..., in) and acts on the last axis,
    (N, T, in) -> (N, T, out): the kernels run on the (N*T, in) view of the input, no copy.
    """

    supported_devices = ("cpu", "cuda")

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        self.in_features = check_int(in_features, "in_features")
        self.out_features = check_int(out_features, "out_features")
        self.use_bias = check_bool(bias, "bias")
        self.add_parameter("weight", (self.out_features, self.in_features))
        if self.use_bias:
            self.add_parameter("bias", (self.out_features,))
        self.reset_parameters(np.random.default_rng())

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """U(-1/sqrt(in), 1/sqrt(in)) for weight and bias, as ``torch.nn.Linear``."""
        self.fill_uniform(rng, 1.0 / np.sqrt(self.in_features))

    def passes(self, input_shape):
        bias, dbias = (param("bias"), grad("bias")) if self.use_bias else (work("no_bias"), work("no_bias"))
        x, y, dx, dy = (X, Y, DX, DY) if len(input_shape) == 2 else (X.vectors, Y.vectors, DX.vectors, DY.vectors)
        return LayerPasses(
            forward=(Call("dense_forward", x, param("weight"), bias, y),),
            backward=(Call("dense_backward", x, dy, param("weight"), NEED_DX, dx, grad("weight"), dbias),),
            workspaces={} if self.use_bias else {"no_bias": ((0,), None)},
        )

    def output_shape(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] != self.in_features:
            raise ValueError(f"{self!r} expects input of shape (N, {self.in_features}), got {tuple(input_shape)} "
                             f"(any (N, ..., {self.in_features}) fits too: Dense acts on the last axis)")
        return tuple(input_shape[:-1]) + (self.out_features,)
