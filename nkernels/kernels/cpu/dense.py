"""Dense (fully connected) kernels: ``y = x @ weight.T + bias`` in PyTorch's layout.

Every product is one BLAS call (:func:`.blas.gemm`): the transposed operands go by flag, never copied,
and the forward accumulates onto the bias rows written first (``beta = 1``), so no pass adds it after.

When the calling thread has two or more Numba threads (:func:`.threads.thread_count`), products of
at least :data:`.blas.SPLIT_MULTIPLY_ADDS` multiply-adds run on two of them, each a single-threaded
BLAS call (BLAS keeps to one thread in training): the forward as two halves of the output, the
backward as the weight gradient beside the input gradient (the same number of multiply-adds
each), or as two halves of the weight gradient when no input gradient is wanted. Every output
element is still one BLAS dot product over the same operands.
"""
from numba import njit, prange

from .blas import SPLIT_MULTIPLY_ADDS, gemm
from .threads import thread_count


@njit(cache=True, error_model="numpy", parallel=True)
def dense_forward(x, weight, bias, out):
    """Write ``x @ weight.T + bias`` into ``out``.

    x (N, in), weight (out, in), bias (out,) or a 0-length array for no bias, out (N, out).
    """
    n, m = out.shape
    beta = 0.0
    if bias.shape[0] > 0:
        for i in range(n):
            for j in range(m):
                out[i, j] = bias[j]
        beta = 1.0
    if n * m * x.shape[1] < SPLIT_MULTIPLY_ADDS or thread_count() < 2:
        gemm(False, True, 1.0, x, weight, beta, out)
        return
    rows = n >= m  # halve the longer side of the output
    half = ((n if rows else m) + 1) // 2
    for p in prange(2):
        lo = p * half
        if rows:
            gemm(False, True, 1.0, x[lo:lo + half], weight, beta, out[lo:lo + half])
        else:
            gemm(False, True, 1.0, x, weight[lo:lo + half], beta, out[:, lo:lo + half])


@njit(cache=True, error_model="numpy", parallel=True)
def dense_backward(x, dy, weight, need_dx, dx, dweight, dbias):
    """Gradients of :func:`dense_forward`, overwriting ``dx``, ``dweight`` and ``dbias``.

    x (N, in), dy (N, out), weight (out, in); dx (N, in) is written only when ``need_dx``;
    dweight (out, in); dbias (out,) or 0-length when the layer has no bias.
    """
    n, m = dy.shape
    if dbias.shape[0] > 0:
        for j in range(m):
            dbias[j] = 0.0
        for i in range(n):
            for j in range(m):
                dbias[j] += dy[i, j]
    if n * m * x.shape[1] < SPLIT_MULTIPLY_ADDS or thread_count() < 2:
        gemm(True, False, 1.0, dy, x, 0.0, dweight)
        if need_dx:
            gemm(False, False, 1.0, dy, weight, 0.0, dx)
        return
    half = (m + 1) // 2
    for p in prange(2):
        if need_dx:
            if p == 0:
                gemm(True, False, 1.0, dy, x, 0.0, dweight)
            else:
                gemm(False, False, 1.0, dy, weight, 0.0, dx)
        else:
            lo = p * half
            gemm(True, False, 1.0, dy[:, lo:lo + half], x, 0.0, dweight[lo:lo + half])
