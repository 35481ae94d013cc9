"""LeakyReLU and ELU layers with PyTorch's semantics."""
import numpy as np

import nkernels as nk
from nkernels.compiled import CompiledOp
from nkernels.kernel_registry import kernel


class _Parametrized(nk.layers.Layer):
    """An activation ``<op>_forward(x, constant, out)`` / ``<op>_backward(x, dy, constant, dx)``."""

    op = ""

    def _constant(self) -> float:
        raise NotImplementedError

    def forward(self, x, training=False):
        x = self.prepare_input(x)
        out = np.empty_like(x)
        kernel(self.op + "_forward")(x.reshape(-1), self._constant(), out.reshape(-1))
        if training:
            self.save_for_backward(x=x)
        return out

    def backward(self, dy):
        x = self.saved_for_backward()["x"]
        dy = self.prepare_grad_output(dy, x.shape)
        dx = np.empty_like(x)
        kernel(self.op + "_backward")(x.reshape(-1), dy.reshape(-1), self._constant(), dx.reshape(-1))
        return dx

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def compiled_op(self, input_shape, dtype):
        c = repr(self._constant())
        return CompiledOp(forward=f"{self.op}_forward({{x_flat}}, {c}, {{y_flat}})",
                          backward=f"{self.op}_backward({{x_flat}}, {{dy_flat}}, {c}, {{dx_flat}})",
                          ops=(self.op + "_forward", self.op + "_backward"))


def _check_number(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise TypeError(f"{name} must be a finite number, got {value!r}")
    return float(value)


class LeakyReLU(_Parametrized):
    """``max(0, x) + negative_slope * min(0, x)``, as ``torch.nn.LeakyReLU``."""

    op = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = _check_number(negative_slope, "negative_slope")

    def _constant(self):
        return self.negative_slope


class ELU(_Parametrized):
    """``x if x > 0 else alpha * (exp(x) - 1)``, as ``torch.nn.ELU``."""

    op = "elu"

    def __init__(self, alpha: float = 1.0):
        self.alpha = _check_number(alpha, "alpha")

    def _constant(self):
        return self.alpha
