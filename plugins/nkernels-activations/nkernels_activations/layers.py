"""LeakyReLU and ELU layers with PyTorch's semantics."""
import nkernels as nk
from nkernels.passes import DX, DY, X, Y, Call, LayerPasses, Scalar
from nkernels.validation import check_number


class _Parametrized(nk.layers.Layer):
    """An activation ``<op>_forward(x, constant, out)`` / ``<op>_backward(x, dy, constant, dx)`` on
    flat views, its constant a :class:`~nkernels.passes.Scalar` (an argument of the compiled step,
    so another value compiles nothing new)."""

    op = ""
    constant = ""

    def scalars(self):
        return {self.constant: getattr(self, self.constant)}

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def passes(self, input_shape):
        return LayerPasses(forward=(Call(self.op + "_forward", X.flat, Scalar(self.constant), Y.flat),),
                           backward=(Call(self.op + "_backward", X.flat, DY.flat, Scalar(self.constant), DX.flat),))


class LeakyReLU(_Parametrized):
    """``max(0, x) + negative_slope * min(0, x)``, as ``torch.nn.LeakyReLU``."""

    op = "leaky_relu"
    constant = "negative_slope"

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = check_number(negative_slope, "negative_slope")


class ELU(_Parametrized):
    """``x if x > 0 else alpha * (exp(x) - 1)``, as ``torch.nn.ELU``."""

    op = "elu"
    constant = "alpha"

    def __init__(self, alpha: float = 1.0):
        self.alpha = check_number(alpha, "alpha")
