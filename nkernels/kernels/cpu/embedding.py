"""Embedding kernels: rows of a table looked up by integer index, and a learned table of positions
added to a sequence.

``embedding_*`` take the indices flat (M,) int64 and the rows as (M, D): the layer passes the
(N, T) indices and the (N, T, D) output as those views. The layer checks the indices before any
kernel runs; the kernels guard anyway, so that no index is ever read out of bounds: an index
outside ``[0, V)`` gives a row of NaN forward (visible in the loss, never a read of another row)
and adds nothing to the table's gradient.

``positional_embedding_*`` take (N, T, D) sequences and a (L, D) table, T <= L (the layer checks
it; a longer sequence would give NaN). The table's gradient sums over the batch in batch
order, in the arrays' dtype; the CUDA twins add in the same order, so the two agree bit for bit.
"""
import numpy as np
from numba import njit, prange


@njit(cache=True, error_model="numpy", parallel=True)
def embedding_forward(indices, weight, out):
    """``out[m] = weight[indices[m]]``: indices (M,) int64, weight (V, D), out (M, D).

    An index outside ``[0, V)`` gives a row of NaN (it is never read)."""
    v, d = weight.shape
    for m in prange(indices.shape[0]):
        k = indices[m]
        if 0 <= k < v:
            for j in range(d):
                out[m, j] = weight[k, j]
        else:
            for j in range(d):
                out[m, j] = np.nan


@njit(cache=True, error_model="numpy")
def embedding_backward(indices, dy, padding_idx, need_dx, dx, dweight):
    """The table's gradient: ``dweight[k] = sum of dy[m] over the m with indices[m] == k``, in the
    order of m, overwriting ``dweight`` (V, D). The row ``padding_idx`` gets no gradient
    (PyTorch's rule; -1 for none), nor does an index outside ``[0, V)``. Indices have no
    gradient: ``dx`` (M,) is zeroed when ``need_dx``."""
    v, d = dweight.shape
    for k in range(v):
        for j in range(d):
            dweight[k, j] = 0.0
    for m in range(indices.shape[0]):
        k = indices[m]
        if 0 <= k < v and k != padding_idx:
            for j in range(d):
                dweight[k, j] += dy[m, j]
    if need_dx:
        for m in range(dx.shape[0]):
            dx[m] = 0.0


@njit(cache=True, error_model="numpy", parallel=True)
def positional_embedding_forward(x, weight, out):
    """``out[n, t] = x[n, t] + weight[t]``: x and out (N, T, D), weight (L, D) with T <= L (a
    longer sequence gives NaN everywhere, never a read past the table)."""
    n, t_size, d = x.shape
    if t_size > weight.shape[0]:
        out[...] = np.nan
        return
    for b in prange(n):
        for t in range(t_size):
            for j in range(d):
                out[b, t, j] = x[b, t, j] + weight[t, j]


@njit(cache=True, error_model="numpy")
def positional_embedding_backward(dy, need_dx, dx, dweight):
    """``dweight[t] = sum over n of dy[n, t]`` (in the order of n) for t < T, zero for the rows
    past T; ``dx = dy`` when ``need_dx``. dy and dx (N, T, D), dweight (L, D)."""
    n, t_size, d = dy.shape
    length = dweight.shape[0]
    for t in range(length):
        for j in range(d):
            dweight[t, j] = 0.0
    for b in range(n):
        for t in range(min(t_size, length)):
            for j in range(d):
                dweight[t, j] += dy[b, t, j]
    if need_dx:
        for b in range(n):
            for t in range(t_size):
                for j in range(d):
                    dx[b, t, j] = dy[b, t, j]
