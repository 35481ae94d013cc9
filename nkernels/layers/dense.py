"""Dense: a fully connected layer, ``y = x @ weight.T + bias`` (PyTorch's ``nn.Linear``)."""
from __future__ import annotations

import numpy as np

from ..compiled.spec import CompiledOp
from .base import Layer, check_bool, check_positive_int


class Dense(Layer):
    """Fully connected layer: ``weight`` (out, in) and ``bias`` (out), initialized as PyTorch does."""

    supported_devices = ("cpu", "cuda")

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        self.use_bias = check_bool(bias, "bias")
        self.params["weight"] = np.empty((self.out_features, self.in_features), np.float32)
        if self.use_bias:
            self.params["bias"] = np.empty(self.out_features, np.float32)
        self.reset_parameters(np.random.default_rng())

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """U(-1/sqrt(in), 1/sqrt(in)) for weight and bias, as ``torch.nn.Linear``."""
        self.fill_uniform(rng, 1.0 / np.sqrt(self.in_features))

    def _bias(self, table: dict) -> np.ndarray:
        return table["bias"] if self.use_bias else self.empty((0,))

    def forward(self, x, training=False):
        x = self.prepare_input(x, (self.in_features,))
        out = self.empty((x.shape[0], self.out_features))
        self.kernel_of("dense_forward")(x, self.params["weight"], self._bias(self.params), out)
        if training:
            self.save_for_backward(x=x)
        return out

    def backward(self, dy):
        x = self.saved_for_backward()["x"]
        dy = self.prepare_grad_output(dy, (x.shape[0], self.out_features))
        dx = self.empty(x.shape)
        self.kernel_of("dense_backward")(x, dy, self.params["weight"], True, dx, self.grads["weight"],
                                 self._bias(self.grads))
        return dx

    def output_shape(self, input_shape):
        if len(input_shape) != 2 or input_shape[1] != self.in_features:
            raise ValueError(f"{self!r} expects input of shape (N, {self.in_features}), got {tuple(input_shape)}")
        return (input_shape[0], self.out_features)

    def compiled_op(self, input_shape, dtype):
        bias = "{p[bias]}" if self.use_bias else "{w[no_bias]}"
        dbias = "{g[bias]}" if self.use_bias else "{w[no_bias]}"
        return CompiledOp(
            forward=f"dense_forward({{x}}, {{p[weight]}}, {bias}, {{y}})",
            backward=f"dense_backward({{x}}, {{dy}}, {{p[weight]}}, {{need_dx}}, {{dx}}, {{g[weight]}}, {dbias})",
            ops=("dense_forward", "dense_backward"),
            workspaces={} if self.use_bias else {"no_bias": ((0,), None)},
        )
