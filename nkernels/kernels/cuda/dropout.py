"""Inverted dropout on flat (1-D) device views: CUDA twins of :mod:`nkernels.kernels.cpu.dropout`.

The keep decision for element ``i`` is ``hash_uniform(seed, offset + i) >= p``, computed by the
CPU's own counter-based generator compiled as a device function
(:mod:`nkernels.kernels.cuda.random`), so the CPU and the GPU draw the same mask bit for bit,
whatever the grid. One grid-stride pass writes ``mask`` and ``out`` (x read once).
"""
import numpy as np
from numba import cuda

from .launch import as_device_array, grid_stride
from .random import hash_uniform_device

__all__ = ["dropout_forward", "dropout_backward"]


@cuda.jit(cache=True)
def _dropout_forward(x, p, seed, offset, scale, mask, out):
    base = np.uint64(offset)
    keep = mask.dtype.type(scale)
    zero = mask.dtype.type(0)
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        v = x[i]
        m = keep if hash_uniform_device(seed, base + np.uint64(i)) >= p else zero
        mask[i] = m
        out[i] = v * m


@cuda.jit(cache=True)
def _dropout_backward(dy, mask, dx):
    n = dy.shape[0]
    s = cuda.gridsize(1)
    last = n - 1
    for i0 in range(cuda.grid(1), n, 4 * s):
        i1 = i0 + s
        i2 = i1 + s
        i3 = i2 + s
        j1 = min(i1, last)
        j2 = min(i2, last)
        j3 = min(i3, last)
        g0, g1, g2, g3 = dy[i0], dy[j1], dy[j2], dy[j3]
        m0, m1, m2, m3 = mask[i0], mask[j1], mask[j2], mask[j3]
        dx[i0] = g0 * m0
        if i1 < n:
            dx[i1] = g1 * m1
        if i2 < n:
            dx[i2] = g2 * m2
        if i3 < n:
            dx[i3] = g3 * m3


def dropout_forward(x, p, seed, counter, mask, out):
    """``mask[i] = 1/(1-p)`` if ``hash_uniform(seed[0], counter[0] + i) >= p`` else 0; ``out = x * mask``;
    then ``counter[0] += x.size``.

    x, mask, out: 1-D C-contiguous device arrays of equal length and one dtype. p: float in
    ``[0, 1]``. seed, counter: one-element int64 host arrays (the layer's buffers, which stay on
    the host); the counters used are ``counter[0] .. counter[0] + x.size - 1``.
    """
    x = as_device_array(x, "x")
    mask = as_device_array(mask, "mask")
    out = as_device_array(out, "out")
    n = x.shape[0]
    if n == 0:
        return
    p = float(p)
    scale = 1.0 / (1.0 - p) if p < 1.0 else 0.0
    blocks, threads = grid_stride(n, per_thread=1)
    _dropout_forward[blocks, threads](x, np.float64(p), int(seed[0]), int(counter[0]), np.float64(scale), mask, out)
    counter[0] += n


def dropout_backward(dy, mask, dx):
    """``dx = dy * mask`` (overwrites dx); all 1-D device arrays of equal length and dtype."""
    dy = as_device_array(dy, "dy")
    mask = as_device_array(mask, "mask")
    dx = as_device_array(dx, "dx")
    n = dy.shape[0]
    if n == 0:
        return
    blocks, threads = grid_stride(n)
    _dropout_backward[blocks, threads](dy, mask, dx)
