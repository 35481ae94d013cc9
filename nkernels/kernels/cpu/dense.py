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

from ..calls import by_address
from .blas import SPLIT_MULTIPLY_ADDS, gemm, gemm_transposed_tiles, runtime_flag
from .threads import thread_count


@by_address  # so that code compiling the dense kernels in does not compile this parallel region again
@njit(cache=True, error_model="numpy", parallel=True)
def _gemm_pair(transa0, transb0, a0, b0, c0, transa1, transb1, a1, b1, c1, beta):
    """``c0 = op(a0) @ op(b0) + beta c0`` and the same for the second triple, side by side on two
    threads. Every view is 2-D sliced on both axes, so all calls share one compiled signature a dtype."""
    for p in prange(2):
        if p == 0:
            gemm(transa0, transb0, 1.0, a0, b0, beta, c0)
        else:
            gemm(transa1, transb1, 1.0, a1, b1, beta, c1)


@njit(cache=True, error_model="numpy")
def _shares(n, m, k):
    """Whether a product of (n, k) by (k, m) runs as two halves on two threads."""
    return n * m * k >= SPLIT_MULTIPLY_ADDS and thread_count() >= 2


@njit(cache=True, error_model="numpy")
def dense_forward(x, weight, bias, out):
    """Write ``x @ weight.T + bias`` into ``out``.

    x (N, in), weight (out, in), bias (out,) or a 0-length array for no bias, out (N, out).
    """
    n, m = out.shape
    k = x.shape[1]
    beta = 0.0
    if bias.shape[0] > 0:
        for i in range(n):
            for j in range(m):
                out[i, j] = bias[j]
        beta = 1.0
    if not _shares(n, m, k):
        gemm_transposed_tiles(1.0, x, weight, beta, out)
        return
    no, yes = runtime_flag(False), runtime_flag(True)  # one compiled _gemm_pair for every call
    if n >= m:  # halve the longer side of the output
        h = (n + 1) // 2
        _gemm_pair(no, yes, x[:h, :k], weight[:m, :k], out[:h, :m], no, yes, x[h:, :k], weight[:m, :k], out[h:, :m],
                   beta)
    else:
        h = (m + 1) // 2
        _gemm_pair(no, yes, x[:n, :k], weight[:h, :k], out[:n, :h], no, yes, x[:n, :k], weight[h:, :k], out[:n, h:],
                   beta)


@njit(cache=True, error_model="numpy")
def dense_backward(x, dy, weight, need_dx, dx, dweight, dbias):
    """Gradients of :func:`dense_forward`, overwriting ``dx``, ``dweight`` and ``dbias``.

    x (N, in), dy (N, out), weight (out, in); dx (N, in) is written only when ``need_dx``;
    dweight (out, in); dbias (out,) or 0-length when the layer has no bias.
    """
    n, m = dy.shape
    k = x.shape[1]
    if dbias.shape[0] > 0:
        for j in range(m):
            dbias[j] = 0.0
        for i in range(n):
            for j in range(m):
                dbias[j] += dy[i, j]
    if not _shares(n, m, k):
        gemm(True, False, 1.0, dy, x, 0.0, dweight)
        if need_dx:
            gemm(False, False, 1.0, dy, weight, 0.0, dx)
        return
    no, yes = runtime_flag(False), runtime_flag(True)  # one compiled _gemm_pair for every call
    if need_dx:
        _gemm_pair(yes, no, dy[:n, :m], x[:n, :k], dweight[:m, :k], no, no, dy[:n, :m], weight[:m, :k], dx[:n, :k],
                   0.0)
    else:
        h = (m + 1) // 2
        _gemm_pair(yes, no, dy[:n, :h], x[:n, :k], dweight[:h, :k], yes, no, dy[:n, h:], x[:n, :k], dweight[h:, :k],
                   0.0)
