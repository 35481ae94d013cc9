"""Reshaping kernels on the GPU: CUDA twins of :mod:`nkernels.kernels.cpu.reshape`.

Flatten is a copy between flat device views (a grid-stride copy, four independent loads per
thread in flight); the last-step kernels move one (N, H) slab of a (N, T, H) sequence.
"""
from numba import cuda

from .launch import as_device_array, flat, grid_stride

__all__ = ["flatten_forward", "flatten_backward", "last_step_forward", "last_step_backward"]


@cuda.jit(cache=True)
def _copy(src, dst):
    n = src.shape[0]
    s = cuda.gridsize(1)
    last = n - 1
    for i0 in range(cuda.grid(1), n, 4 * s):
        i1 = i0 + s
        i2 = i1 + s
        i3 = i2 + s
        v0 = src[i0]
        v1 = src[min(i1, last)]
        v2 = src[min(i2, last)]
        v3 = src[min(i3, last)]
        dst[i0] = v0
        if i1 < n:
            dst[i1] = v1
        if i2 < n:
            dst[i2] = v2
        if i3 < n:
            dst[i3] = v3


def _launch_copy(src, dst):
    src = as_device_array(src, "src")
    dst = as_device_array(dst, "dst")
    n = src.shape[0]
    if n == 0:
        return
    blocks, threads = grid_stride(n)
    _copy[blocks, threads](src, dst)


def flatten_forward(x, out):
    """Copy the 1-D device view ``x`` into the 1-D device view ``out`` (same length)."""
    _launch_copy(x, out)


def flatten_backward(dy, dx):
    """Copy the 1-D device view ``dy`` into the 1-D device view ``dx`` (same length)."""
    _launch_copy(dy, dx)


@cuda.jit(cache=True)
def _last_step_forward(hsf, t, h, outf):
    total = outf.shape[0]
    for q in range(cuda.grid(1), total, cuda.gridsize(1)):
        b = q // h
        j = q - b * h
        outf[q] = hsf[(b * t + t - 1) * h + j]


@cuda.jit(cache=True)
def _last_step_backward(dyf, t, h, dhsf):
    total = dhsf.shape[0]
    for q in range(cuda.grid(1), total, cuda.gridsize(1)):
        bs = q // h
        b = bs // t
        s = bs - b * t
        if s == t - 1:
            dhsf[q] = dyf[b * h + q - bs * h]
        else:
            dhsf[q] = 0


def last_step_forward(hs, out):
    """``out[n] = hs[n, -1]``: the last step of a (N, T, H) sequence into (N, H)."""
    hs = as_device_array(hs, "hs")
    out = as_device_array(out, "out")
    n, t, h = hs.shape
    if n * h == 0:
        return
    blocks, threads = grid_stride(n * h, per_thread=1)
    _last_step_forward[blocks, threads](flat(hs), t, h, flat(out))


def last_step_backward(dy, dhs):
    """The gradient of :func:`last_step_forward`: zeros, with ``dhs[n, -1] = dy[n]``."""
    dy = as_device_array(dy, "dy")
    dhs = as_device_array(dhs, "dhs")
    n, t, h = dhs.shape
    if n * t * h == 0:
        return
    blocks, threads = grid_stride(n * t * h, per_thread=1)
    _last_step_backward[blocks, threads](flat(dy), t, h, flat(dhs))
