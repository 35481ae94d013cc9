"""Dense (fully connected) kernels: ``y = x @ weight.T + bias`` in PyTorch's layout."""
import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def dense_forward(x, weight, bias, out):
    """Write ``x @ weight.T + bias`` into ``out``.

    x (N, in), weight (out, in), bias (out,) or a 0-length array for no bias, out (N, out).
    """
    np.dot(x, weight.T, out)
    if bias.shape[0] > 0:
        n, m = out.shape
        for i in range(n):
            for j in range(m):
                out[i, j] += bias[j]


@njit(cache=True, error_model="numpy")
def dense_backward(x, dy, weight, need_dx, dx, dweight, dbias):
    """Gradients of :func:`dense_forward`, overwriting ``dx``, ``dweight`` and ``dbias``.

    x (N, in), dy (N, out), weight (out, in); dx (N, in) is written only when ``need_dx``;
    dweight (out, in); dbias (out,) or 0-length when the layer has no bias.
    """
    np.dot(dy.T, x, dweight)
    if dbias.shape[0] > 0:
        n, m = dy.shape
        for j in range(m):
            dbias[j] = 0.0
        for i in range(n):
            for j in range(m):
                dbias[j] += dy[i, j]
    if need_dx:
        np.dot(dy, weight, dx)
