"""Dense (fully connected) kernels: ``y = x @ weight.T + bias`` in PyTorch's layout.

Every product is one BLAS call (:func:`.blas.gemm`): the transposed operands go by flag, never copied,
and the forward accumulates onto the bias rows written first (``beta = 1``), so no pass adds it after.
"""
from numba import njit

from .blas import gemm


@njit(cache=True, error_model="numpy")
def dense_forward(x, weight, bias, out):
    """Write ``x @ weight.T + bias`` into ``out``.

    x (N, in), weight (out, in), bias (out,) or a 0-length array for no bias, out (N, out).
    """
    if bias.shape[0] > 0:
        n, m = out.shape
        for i in range(n):
            for j in range(m):
                out[i, j] = bias[j]
        gemm(False, True, 1.0, x, weight, 1.0, out)
    else:
        gemm(False, True, 1.0, x, weight, 0.0, out)


@njit(cache=True, error_model="numpy")
def dense_backward(x, dy, weight, need_dx, dx, dweight, dbias):
    """Gradients of :func:`dense_forward`, overwriting ``dx``, ``dweight`` and ``dbias``.

    x (N, in), dy (N, out), weight (out, in); dx (N, in) is written only when ``need_dx``;
    dweight (out, in); dbias (out,) or 0-length when the layer has no bias.
    """
    gemm(True, False, 1.0, dy, x, 0.0, dweight)
    if dbias.shape[0] > 0:
        n, m = dy.shape
        for j in range(m):
            dbias[j] = 0.0
        for i in range(n):
            for j in range(m):
                dbias[j] += dy[i, j]
    if need_dx:
        gemm(False, False, 1.0, dy, weight, 0.0, dx)
