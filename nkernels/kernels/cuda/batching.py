"""Mini-batch assembly on the GPU: CUDA twins of :mod:`nkernels.kernels.cpu.batching`.

``order`` is an int64 device array (the epoch's permutation, kept on the device), so a batch is
gathered without any host round trip. Each thread copies elements of whole rows: reads within a
source row and writes are coalesced.
"""
from numba import cuda

from .launch import device_arrays, flat_view, grid_stride

__all__ = ["gather_rows", "gather_labels"]


@cuda.jit(cache=True)
def _gather_rows(src, f, order, start, outf):
    total = outf.shape[0]
    for q in range(cuda.grid(1), total, cuda.gridsize(1)):
        i = q // f
        j = q - i * f
        outf[q] = src[order[start + i] * f + j]


@cuda.jit(cache=True)
def _gather_labels(src, order, start, out):
    for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        out[i] = src[order[start + i]]


def gather_rows(src, order, start, out):
    """``out[i] = src[order[start + i]]`` for every row of ``out``; src and out are 2-D
    C-contiguous device arrays, order a 1-D int64 device array."""
    src, order, out = device_arrays(src=src, order=order, out=out)
    n, f = out.shape
    if n * f == 0:
        return
    blocks, threads = grid_stride(n * f, per_thread=1)
    _gather_rows[blocks, threads](flat_view(src), f, order, int(start), flat_view(out))


def gather_labels(src, order, start, out):
    """``out[i] = src[order[start + i]]`` for a 1-D ``out`` (device arrays)."""
    src, order, out = device_arrays(src=src, order=order, out=out)
    if out.shape[0] == 0:
        return
    blocks, threads = grid_stride(out.shape[0], per_thread=1)
    _gather_labels[blocks, threads](src, order, int(start), out)
