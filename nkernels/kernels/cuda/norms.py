"""Norm kernels on the GPU (clipping by global norm, max-norm rows): CUDA twins of
:mod:`nkernels.kernels.cpu.norms`.

``sum_of_squares`` reduces on the device in two deterministic passes and returns a Python float
(one float64 copied back; it synchronizes). ``clip_factor`` takes no arrays: it is the same
scalar function as on the CPU, in plain Python. Sums accumulate in float64, as on the CPU; the
summation order differs, so the last bits may too.
"""
import math

import numpy as np
from numba import cuda

from .launch import as_device_array, grid_stride, reduce_threads, simulator, sm_count
from .reduce import MAX_THREADS, block_sum, finish, partials_for

__all__ = ["sum_of_squares", "scale_inplace", "combine_halves", "clip_factor", "max_norm_rows"]


@cuda.jit(cache=True)
def _sum_of_squares(a, partials):
    red = cuda.shared.array(MAX_THREADS, dtype=np.float64)
    n = a.shape[0]
    s = cuda.gridsize(1)
    last = n - 1
    total = np.float64(0.0)
    for i0 in range(cuda.grid(1), n, 2 * s):
        v0 = np.float64(a[i0])
        v1 = np.float64(a[min(i0 + s, last)])
        total += v0 * v0
        if i0 + s < n:
            total += v1 * v1
    total = block_sum(red, total)
    if cuda.threadIdx.x == 0:
        partials[cuda.blockIdx.x] = total


def sum_of_squares(a):
    """``sum(a**2)`` as a Python float, accumulated in float64; a is a 1-D float device array."""
    a = as_device_array(a, "a")
    n = a.shape[0]
    if n == 0:
        return 0.0
    blocks, threads, partials = partials_for(n)
    _sum_of_squares[blocks, threads](a, partials)
    return finish(partials, blocks)


@cuda.jit(cache=True)
def _scale_inplace(a, factor):
    for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        a[i] = a[i] * factor


def scale_inplace(a, factor):
    """``a *= factor`` in place; the product is formed in float64 and rounded once to a's dtype."""
    a = as_device_array(a, "a")
    if a.shape[0] == 0:
        return
    blocks, threads = grid_stride(a.shape[0], per_thread=1)
    _scale_inplace[blocks, threads](a, np.float64(factor))


@cuda.jit(cache=True)
def _combine_halves(grad, other, weight, other_weight, out):
    for i in range(cuda.grid(1), grad.shape[0], cuda.gridsize(1)):
        out[i] = weight * grad[i] + other_weight * other[i]


def combine_halves(grad, other, weight, other_weight, out):
    """``out = weight * grad + other_weight * other`` (``out`` may be ``grad``), in the arrays' dtype."""
    grad, other, out = as_device_array(grad, "grad"), as_device_array(other, "other"), as_device_array(out, "out")
    if grad.shape[0] == 0:
        return
    blocks, threads = grid_stride(grad.shape[0], per_thread=1)
    t = grad.dtype.type
    _combine_halves[blocks, threads](grad, other, t(weight), t(other_weight), out)


def clip_factor(sum_sq, max_norm):
    """The factor ``clip_grad_norm_`` multiplies every gradient by, from the sum of the squares of
    all gradients: ``min(1, max_norm / (sqrt(sum_sq) + 1e-6))`` (NaN stays NaN, inf gives 0), as
    a float. A host function: it takes no arrays, so it is the same on either device."""
    coef = float(max_norm) / (math.sqrt(float(sum_sq)) + 1e-6)
    if coef > 1.0:
        coef = 1.0
    return coef


@cuda.jit(cache=True)
def _max_norm_rows(w, rows, cols, max_norm):
    red = cuda.shared.array(MAX_THREADS, dtype=np.float64)
    tid = cuda.threadIdx.x
    nth = cuda.blockDim.x
    for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        base = r * cols
        s = np.float64(0.0)
        for j in range(tid, cols, nth):
            v = np.float64(w[base + j])
            s += v * v
        s = block_sum(red, s)
        norm = math.sqrt(s)
        if norm > max_norm:
            f = max_norm / (norm + 1e-7)
            for j in range(tid, cols, nth):
                w[base + j] = w[base + j] * f


def max_norm_rows(weight2d, max_norm):
    """Rescale in place each row whose L2 norm exceeds ``max_norm`` by ``max_norm / (norm + 1e-7)``
    (``torch.renorm`` semantics). weight2d: (out, in) C-contiguous device array; for a conv
    weight pass ``w.reshape(w.shape[0], -1)``. One block per row, float64 sums."""
    w = as_device_array(weight2d, "weight2d")
    rows, cols = w.shape
    if rows * cols == 0:
        return
    blocks = max(1, min(rows, 2 if simulator() else sm_count() * 8))
    _max_norm_rows[blocks, reduce_threads()](w.reshape(rows * cols), rows, cols, np.float64(max_norm))
