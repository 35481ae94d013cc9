"""Embedding kernels on the GPU: CUDA twins of :mod:`nkernels.kernels.cpu.embedding`.

Same names, signatures and guards: an index outside ``[0, V)`` gives a row of NaN forward and no
gradient, and is never read through.

* ``embedding_forward``: one thread per output element, a gather (bit for bit the CPU's).
* ``embedding_backward``: the table's gradient is zeroed, then one thread per element of ``dy``
  adds it to its row with an atomic add. A row looked up several times in a batch sums its terms
  in an order that may vary from run to run, and so may its last bit (as max pooling's
  overlapping windows); rows looked up once are exact.
* ``positional_embedding_forward``: elementwise, each element reads its position's row.
* ``positional_embedding_backward``: one thread per element of the table, summing the batch in
  the CPU's order and dtype (bit for bit the CPU's, no atomics); ``dx = dy`` is a copy.
"""
import math

from numba import cuda

from .elementwise import elementwise
from .launch import as_device_array, flat_view, grid_stride
from .reshape import copy_flat

__all__ = ["embedding_forward", "embedding_backward", "positional_embedding_forward",
           "positional_embedding_backward"]


def _launch(kern, total, *args):
    if total == 0:
        return
    blocks, threads = grid_stride(total, per_thread=1)
    kern[blocks, threads](*args)


@cuda.jit(cache=True)
def _embedding_forward(indices, wf, v, d, outf):
    for q in range(cuda.grid(1), outf.shape[0], cuda.gridsize(1)):
        m = q // d
        k = indices[m]
        if k >= 0 and k < v:
            outf[q] = wf[k * d + q - m * d]
        else:
            outf[q] = math.nan


@cuda.jit(cache=True)
def _embedding_scatter(indices, gf, v, d, padding_idx, dwf):
    for q in range(cuda.grid(1), gf.shape[0], cuda.gridsize(1)):
        m = q // d
        k = indices[m]
        if k >= 0 and k < v and k != padding_idx:
            cuda.atomic.add(dwf, k * d + q - m * d, gf[q])


_fill = elementwise("embedding_fill(a, value: scalar)", "a = value", "``a = value`` on a 1-D device array.")


def embedding_forward(indices, weight, out):
    """``out[m] = weight[indices[m]]``: indices (M,) int64, weight (V, D), out (M, D); an index
    outside ``[0, V)`` gives a row of NaN."""
    indices, weight, out = as_device_array(indices), as_device_array(weight), as_device_array(out)
    v, d = weight.shape
    _launch(_embedding_forward, out.size, indices, flat_view(weight), v, d, flat_view(out))


def embedding_backward(indices, dy, padding_idx, need_dx, dx, dweight):
    """The table's gradient (V, D), overwritten: the sum of the ``dy`` rows of each index, none for
    ``padding_idx`` (-1 for none) or an index outside ``[0, V)``; ``dx`` (M,) zeroed when ``need_dx``."""
    indices, dy, dweight = as_device_array(indices), as_device_array(dy), as_device_array(dweight)
    v, d = dweight.shape
    if dweight.size:
        _fill(flat_view(dweight), 0.0)
    _launch(_embedding_scatter, dy.size, indices, flat_view(dy), v, d, int(padding_idx), flat_view(dweight))
    if need_dx:
        dx = as_device_array(dx)
        if dx.size:
            _fill(flat_view(dx), 0.0)


_positional_forward = elementwise("positional_embedding_forward(x, weight, td: int64, out)",
                                  "out = x + weight[i % td]")


@cuda.jit(cache=True)
def _positional_backward(gf, n, td, rows, dwf):
    """One thread per table element q: the sum over the batch of dy[b].flat[q] for the ``rows``
    first elements (the positions the sequence has), zero past them."""
    for q in range(cuda.grid(1), dwf.shape[0], cuda.gridsize(1)):
        s = dwf.dtype.type(0)
        if q < rows:
            for b in range(n):
                s = dwf.dtype.type(s + gf[b * td + q])
        dwf[q] = s


def positional_embedding_forward(x, weight, out):
    """``out[n, t] = x[n, t] + weight[t]``: x and out (N, T, D), weight (L, D) with T <= L (the
    layer checks it; a longer sequence gives NaN everywhere, never a read out of bounds)."""
    x, weight, out = as_device_array(x), as_device_array(weight), as_device_array(out)
    _, t, d = x.shape
    if out.size == 0:
        return
    if t > weight.shape[0]:
        _fill(flat_view(out), math.nan)
        return
    _positional_forward(flat_view(x), flat_view(weight), t * d, flat_view(out))


def positional_embedding_backward(dy, need_dx, dx, dweight):
    """``dweight[t] = sum over n of dy[n, t]`` for t < T, zero past T; ``dx = dy`` when ``need_dx``."""
    dy, dweight = as_device_array(dy), as_device_array(dweight)
    n, t, d = dy.shape
    _launch(_positional_backward, dweight.size, flat_view(dy), n, t * d, min(t, dweight.shape[0]) * d,
            flat_view(dweight))
    if need_dx and dy.size:
        copy_flat(flat_view(dy), flat_view(as_device_array(dx)))
