"""Elementwise activations on flat (1-D) device views: CUDA twins of :mod:`nkernels.kernels.cpu.activation`.

Same names and signatures as the CPU kernels; arrays are device arrays, outputs are written in
place. Most backward kernels take the forward *output* ``y``; SiLU's and GELU's take the input ``x``.

Every kernel comes from :func:`~nkernels.kernels.cuda.elementwise.elementwise`: one grid-stride
pass, four elements per thread per iteration, each input read once and each output written once.
The arithmetic runs in the arrays' dtype (``exp`` of a float32 is ``expf``), so results may differ
from the CPU kernels, which round through float64 in places, in the last bit or two.
"""
from .elementwise import elementwise

__all__ = ["relu_forward", "relu_backward", "sigmoid_forward", "sigmoid_backward", "tanh_forward", "tanh_backward",
           "silu_forward", "silu_backward", "gelu_forward", "gelu_backward", "gelu_tanh_forward",
           "gelu_tanh_backward"]

#: ``s = sigmoid(x)`` without overflow for large ``|x|`` (``exp`` of a non-positive number only)
SIGMOID = """
e = exp(-abs(x))
s = 1 / (1 + e) if x >= 0 else e / (1 + e)
"""

relu_forward = elementwise("relu_forward(x, out)", "out = x if x > 0 else 0",
                           "``out = max(x, 0)``; x and out are 1-D device arrays of equal length.")
relu_backward = elementwise("relu_backward(y, dy, dx)", "dx = dy if y > 0 else 0",
                            "``dx = dy * (y > 0)``; all 1-D device arrays of equal length.")
sigmoid_forward = elementwise("sigmoid_forward(x, out)", SIGMOID + "out = s",
                              "``out = 1 / (1 + exp(-x))``, computed without overflow for large ``|x|``.")
sigmoid_backward = elementwise("sigmoid_backward(y, dy, dx)", "dx = dy * y * (1 - y)",
                               "``dx = dy * y * (1 - y)`` with y the sigmoid output.")
tanh_forward = elementwise("tanh_forward(x, out)", "out = tanh(x)", "``out = tanh(x)``.")
tanh_backward = elementwise("tanh_backward(y, dy, dx)", "dx = dy * (1 - y * y)",
                            "``dx = dy * (1 - y**2)`` with y the tanh output.")
silu_forward = elementwise("silu_forward(x, out)", SIGMOID + "out = x * s", "``out = x * sigmoid(x)``.")
silu_backward = elementwise("silu_backward(x, dy, dx)", SIGMOID + "dx = dy * s * (1 + x * (1 - s))",
                            "``dx = dy * s * (1 + x * (1 - s))`` with ``s = sigmoid(x)``, x the forward's input.")

#: ``t = tanh(sqrt(2/pi) * (x + 0.044715 x**3))``, GELU's tanh approximation
GELU_TANH = """
t = tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))
"""
gelu_forward = elementwise("gelu_forward(x, out)", "out = 0.5 * x * (1 + erf(x * 0.7071067811865476))",
                           "``out = 0.5 * x * (1 + erf(x / sqrt(2)))`` (exact GELU).")
gelu_backward = elementwise(
    "gelu_backward(x, dy, dx)",
    "dx = dy * (0.5 * (1 + erf(x * 0.7071067811865476)) + x * 0.3989422804014327 * exp(-0.5 * x * x))",
    "``dx = dy * (Phi(x) + x * phi(x))``, x the forward's input.")
gelu_tanh_forward = elementwise("gelu_tanh_forward(x, out)", GELU_TANH + "out = 0.5 * x * (1 + t)",
                                "``out = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x**3)))``.")
gelu_tanh_backward = elementwise(
    "gelu_tanh_backward(x, dy, dx)",
    GELU_TANH + "dx = dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * 0.7978845608028654 * (1 + 0.134145 * x * x))",
    "The tanh-approximate GELU's derivative times ``dy``, x the forward's input.")
