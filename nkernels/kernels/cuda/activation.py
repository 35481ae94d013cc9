"""Elementwise activations on flat (1-D) device views: CUDA twins of :mod:`nkernels.kernels.cpu.activation`.

Same names and signatures as the CPU kernels; arrays are device arrays, outputs are written in
place. Backward kernels take the forward *output* ``y``.

Every kernel is one grid-stride pass (each input read once, each output written once). A thread
handles four elements ``i, i+s, i+2s, i+3s`` per iteration (``s`` the grid's thread count), their
loads issued before any store, so four independent loads per thread are in flight and a warp's
accesses stay coalesced. The arithmetic runs in the arrays' dtype (``math.exp`` of a float32 is
``expf``), so results may differ from the CPU kernels, which round through float64 in places, in
the last bit or two.
"""
import math

from numba import cuda

from .launch import as_device_array, grid_stride

__all__ = ["relu_forward", "relu_backward", "sigmoid_forward", "sigmoid_backward",
           "tanh_forward", "tanh_backward"]


@cuda.jit(cache=True)
def _relu_forward(x, out):
    n = x.shape[0]
    z = x.dtype.type(0)
    s = cuda.gridsize(1)
    last = n - 1
    for i0 in range(cuda.grid(1), n, 4 * s):
        i1 = i0 + s
        i2 = i1 + s
        i3 = i2 + s
        v0 = x[i0]
        v1 = x[min(i1, last)]
        v2 = x[min(i2, last)]
        v3 = x[min(i3, last)]
        out[i0] = v0 if v0 > z else z
        if i1 < n:
            out[i1] = v1 if v1 > z else z
        if i2 < n:
            out[i2] = v2 if v2 > z else z
        if i3 < n:
            out[i3] = v3 if v3 > z else z


@cuda.jit(cache=True)
def _relu_backward(y, dy, dx):
    n = y.shape[0]
    z = y.dtype.type(0)
    s = cuda.gridsize(1)
    last = n - 1
    for i0 in range(cuda.grid(1), n, 4 * s):
        i1 = i0 + s
        i2 = i1 + s
        i3 = i2 + s
        j1 = min(i1, last)
        j2 = min(i2, last)
        j3 = min(i3, last)
        y0, y1, y2, y3 = y[i0], y[j1], y[j2], y[j3]
        g0, g1, g2, g3 = dy[i0], dy[j1], dy[j2], dy[j3]
        dx[i0] = g0 if y0 > z else z
        if i1 < n:
            dx[i1] = g1 if y1 > z else z
        if i2 < n:
            dx[i2] = g2 if y2 > z else z
        if i3 < n:
            dx[i3] = g3 if y3 > z else z


@cuda.jit(device=True, inline="always")
def _sigmoid(v, one):
    if v >= 0:
        return one / (one + math.exp(-v))
    e = math.exp(v)
    return e / (one + e)


@cuda.jit(cache=True)
def _sigmoid_forward(x, out):
    n = x.shape[0]
    one = x.dtype.type(1)
    s = cuda.gridsize(1)
    last = n - 1
    for i0 in range(cuda.grid(1), n, 4 * s):
        i1 = i0 + s
        i2 = i1 + s
        i3 = i2 + s
        v0 = x[i0]
        v1 = x[min(i1, last)]
        v2 = x[min(i2, last)]
        v3 = x[min(i3, last)]
        out[i0] = _sigmoid(v0, one)
        if i1 < n:
            out[i1] = _sigmoid(v1, one)
        if i2 < n:
            out[i2] = _sigmoid(v2, one)
        if i3 < n:
            out[i3] = _sigmoid(v3, one)


@cuda.jit(cache=True)
def _sigmoid_backward(y, dy, dx):
    n = y.shape[0]
    one = y.dtype.type(1)
    s = cuda.gridsize(1)
    last = n - 1
    for i0 in range(cuda.grid(1), n, 4 * s):
        i1 = i0 + s
        i2 = i1 + s
        i3 = i2 + s
        j1 = min(i1, last)
        j2 = min(i2, last)
        j3 = min(i3, last)
        y0, y1, y2, y3 = y[i0], y[j1], y[j2], y[j3]
        g0, g1, g2, g3 = dy[i0], dy[j1], dy[j2], dy[j3]
        dx[i0] = g0 * y0 * (one - y0)
        if i1 < n:
            dx[i1] = g1 * y1 * (one - y1)
        if i2 < n:
            dx[i2] = g2 * y2 * (one - y2)
        if i3 < n:
            dx[i3] = g3 * y3 * (one - y3)


@cuda.jit(cache=True)
def _tanh_forward(x, out):
    n = x.shape[0]
    s = cuda.gridsize(1)
    last = n - 1
    for i0 in range(cuda.grid(1), n, 4 * s):
        i1 = i0 + s
        i2 = i1 + s
        i3 = i2 + s
        v0 = x[i0]
        v1 = x[min(i1, last)]
        v2 = x[min(i2, last)]
        v3 = x[min(i3, last)]
        out[i0] = math.tanh(v0)
        if i1 < n:
            out[i1] = math.tanh(v1)
        if i2 < n:
            out[i2] = math.tanh(v2)
        if i3 < n:
            out[i3] = math.tanh(v3)


@cuda.jit(cache=True)
def _tanh_backward(y, dy, dx):
    n = y.shape[0]
    one = y.dtype.type(1)
    s = cuda.gridsize(1)
    last = n - 1
    for i0 in range(cuda.grid(1), n, 4 * s):
        i1 = i0 + s
        i2 = i1 + s
        i3 = i2 + s
        j1 = min(i1, last)
        j2 = min(i2, last)
        j3 = min(i3, last)
        y0, y1, y2, y3 = y[i0], y[j1], y[j2], y[j3]
        g0, g1, g2, g3 = dy[i0], dy[j1], dy[j2], dy[j3]
        dx[i0] = g0 * (one - y0 * y0)
        if i1 < n:
            dx[i1] = g1 * (one - y1 * y1)
        if i2 < n:
            dx[i2] = g2 * (one - y2 * y2)
        if i3 < n:
            dx[i3] = g3 * (one - y3 * y3)


def _unary(kern, x, out):
    x = as_device_array(x, "x")
    out = as_device_array(out, "out")
    n = x.shape[0]
    if n == 0:
        return
    blocks, threads = grid_stride(n)
    kern[blocks, threads](x, out)


def _binary(kern, y, dy, dx):
    y = as_device_array(y, "y")
    dy = as_device_array(dy, "dy")
    dx = as_device_array(dx, "dx")
    n = y.shape[0]
    if n == 0:
        return
    blocks, threads = grid_stride(n)
    kern[blocks, threads](y, dy, dx)


def relu_forward(x, out):
    """``out = max(x, 0)``; x and out are 1-D device arrays of equal length."""
    _unary(_relu_forward, x, out)


def relu_backward(y, dy, dx):
    """``dx = dy * (y > 0)``; all 1-D device arrays of equal length."""
    _binary(_relu_backward, y, dy, dx)


def sigmoid_forward(x, out):
    """``out = 1 / (1 + exp(-x))``, computed without overflow for large ``|x|``."""
    _unary(_sigmoid_forward, x, out)


def sigmoid_backward(y, dy, dx):
    """``dx = dy * y * (1 - y)`` with y the sigmoid output."""
    _binary(_sigmoid_backward, y, dy, dx)


def tanh_forward(x, out):
    """``out = tanh(x)``."""
    _unary(_tanh_forward, x, out)


def tanh_backward(y, dy, dx):
    """``dx = dy * (1 - y**2)`` with y the tanh output."""
    _binary(_tanh_backward, y, dy, dx)
