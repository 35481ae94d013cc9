"""Pooling kernels on the GPU (MaxPool1D/2D, AvgPool2D, GlobalAvgPool2D, Upsample2D, GlobalAvgPool1D): CUDA twins of
:mod:`nkernels.kernels.cpu.pool`.

Same names, signatures and semantics (square window ``k``, ``stride``, no padding, floor mode;
``argmax`` holds the flat index of each maximum within its plane, PyTorch's ``indices``; ties
go to the first element in row-major window order, a NaN wins, the last of several NaNs).

* Forward: one thread per output element (grid-stride), scanning its window with PyTorch's
  exact rule in one pass (the CPU's fast path plus NaN rescan gives the same answer).
* Max backward, given the forward's window (``k``, ``stride``; the layers pass them): the gather
  form. One thread per *input* element reads the outputs whose windows hold it (at most
  ``ceil(k/stride)`` per dimension) and adds the gradient of those whose ``argmax`` it is, in
  the CPU's row-major order: each ``dx`` element written once (no zeroing pass, no atomics),
  bit for bit the CPU's sums, overlapping windows included. The reads of ``argmax`` and
  ``dout`` by neighbouring threads are neighbouring (coalesced, mostly from L1/L2).
  Without the window (``k == 0``, a caller of the older 3-argument form) it falls back to the
  scatter: ``dx`` zeroed, then one thread per output element adding its gradient at ``argmax``
  with an atomic add (twice the bytes of ``dx``; with overlapping windows the order of the
  terms, and so the last bit, may vary).
* AvgPool2D backward: one thread per *input* element gathers the windows that hold it (at most
  ``ceil(k/stride)**2``) in the CPU's row-major order: no atomics, each ``dx`` element written
  once, adding the windows' terms in the CPU's order and rounding as it does. The forward sums
  each window in float64 and rounds once (the CPU kernel's 2 x 2 sum, written in float64, is
  narrowed to float32 arithmetic by LLVM: the two may differ by an ulp).
* GlobalAvgPool1D: forward one thread per output element, summing its column of tokens in
  float64 in the CPU's order; backward elementwise (each ``dx`` element reads its ``dout``).

* GlobalAvgPool2D: the forward is the GEMM module's block-per-row float64 sums, scaled by
  1/(H*W); the backward one thread per ``dx`` element.
* Upsample2D: one thread per output element (forward) and one per ``dx`` element gathering its
  ``scale`` x ``scale`` block in float64 (backward): no atomics.

The pure-Python shape helpers are the CPU module's, re-exported.
"""
import numpy as np
from numba import cuda

from ..cpu.pool import (  # noqa: F401  (pure-Python shape helpers, shared with the CPU)
    pool1d_output_shape, pool2d_output_shape, pool_output_length, pool_workspace_size,
)
from .elementwise import elementwise
from .gemm import row_sums
from .launch import as_device_array, flat_view, launch

__all__ = ["maxpool2d_forward", "maxpool2d_backward", "maxpool1d_forward", "maxpool1d_backward",
           "avgpool2d_forward", "avgpool2d_backward", "globalavgpool2d_forward", "globalavgpool2d_backward",
           "upsample2d_forward", "upsample2d_backward", "globalavgpool1d_forward", "globalavgpool1d_backward",
           "pool_output_length", "pool2d_output_shape", "pool1d_output_shape", "pool_workspace_size"]


@cuda.jit(cache=True)
def _maxpool2d_forward(xf, h_size, w_size, k, stride, oh_size, ow_size, outf, argf):
    total = outf.shape[0]
    ohw = oh_size * ow_size
    for q in range(cuda.grid(1), total, cuda.gridsize(1)):
        plane = q // ohw
        r = q - plane * ohw
        oh = r // ow_size
        ow = r - oh * ow_size
        base = plane * h_size * w_size
        h0 = oh * stride
        w0 = ow * stride
        bi = h0 * w_size + w0
        best = xf[base + bi]
        for i in range(h0, h0 + k):
            row = base + i * w_size
            for j in range(w0, w0 + k):
                v = xf[row + j]
                if v > best or v != v:
                    best = v
                    bi = i * w_size + j
        outf[q] = best
        argf[q] = bi


@cuda.jit(cache=True)
def _zero(af):
    z = af.dtype.type(0)
    for q in range(cuda.grid(1), af.shape[0], cuda.gridsize(1)):
        af[q] = z


@cuda.jit(cache=True)
def _max_scatter(gf, argf, out_per_plane, in_per_plane, dxf):
    """dx[plane].flat[argmax] += dout: one thread per output element, atomic adds."""
    total = gf.shape[0]
    for q in range(cuda.grid(1), total, cuda.gridsize(1)):
        plane = q // out_per_plane
        cuda.atomic.add(dxf, plane * in_per_plane + argf[q], gf[q])


@cuda.jit(device=True, cache=True)
def _windows_holding(q, h_size, w_size, k, stride, oh_size, ow_size):
    """For the flat input element ``q`` of (planes, h_size, w_size): its index ``p`` within its
    plane, the flat index of its plane's first output, and the output rows and columns (inclusive
    ranges) whose k x k window, at ``stride``, holds it: p, obase, oh_lo, oh_hi, ow_lo, ow_hi
    (empty when lo > hi)."""
    hw = h_size * w_size
    plane = q // hw
    p = q - plane * hw
    ih = p // w_size
    iw = p - ih * w_size
    oh_lo = 0 if ih < k else (ih - k) // stride + 1
    ow_lo = 0 if iw < k else (iw - k) // stride + 1
    return (p, plane * oh_size * ow_size, oh_lo, min(ih // stride, oh_size - 1),
            ow_lo, min(iw // stride, ow_size - 1))


@cuda.jit(cache=True)
def _maxpool2d_backward_gather(gf, argf, h_size, w_size, k, stride, oh_size, ow_size, dxf):
    """One thread per input element: the sum of dout over the windows holding it whose argmax it
    is, in the CPU's row-major order."""
    for q in range(cuda.grid(1), dxf.shape[0], cuda.gridsize(1)):
        p, obase, oh_lo, oh_hi, ow_lo, ow_hi = _windows_holding(q, h_size, w_size, k, stride, oh_size, ow_size)
        s = dxf.dtype.type(0)
        for oh in range(oh_lo, oh_hi + 1):
            for ow in range(ow_lo, ow_hi + 1):
                o = obase + oh * ow_size + ow
                if argf[o] == p:
                    s += gf[o]
        dxf[q] = s


@cuda.jit(cache=True)
def _maxpool1d_backward_gather(gf, argf, l_size, k, stride, ol_size, dxf):
    """One thread per input element, as :func:`_maxpool2d_backward_gather` along one dimension."""
    total = dxf.shape[0]
    for q in range(cuda.grid(1), total, cuda.gridsize(1)):
        row = q // l_size
        i = q - row * l_size
        lo = 0 if i < k else (i - k) // stride + 1
        hi = min(i // stride, ol_size - 1)
        s = dxf.dtype.type(0)
        obase = row * ol_size
        for ol in range(lo, hi + 1):
            if argf[obase + ol] == i:
                s += gf[obase + ol]
        dxf[q] = s


@cuda.jit(cache=True)
def _maxpool1d_forward(xf, l_size, k, stride, ol_size, outf, argf):
    total = outf.shape[0]
    for q in range(cuda.grid(1), total, cuda.gridsize(1)):
        row = q // ol_size
        ol = q - row * ol_size
        base = row * l_size
        l0 = ol * stride
        best = xf[base + l0]
        bi = l0
        for i in range(l0, l0 + k):
            v = xf[base + i]
            if v > best or v != v:
                best = v
                bi = i
        outf[q] = best
        argf[q] = bi


@cuda.jit(cache=True)
def _avgpool2d_forward(xf, h_size, w_size, k, stride, oh_size, ow_size, scale, outf):
    total = outf.shape[0]
    ohw = oh_size * ow_size
    for q in range(cuda.grid(1), total, cuda.gridsize(1)):
        plane = q // ohw
        r = q - plane * ohw
        oh = r // ow_size
        ow = r - oh * ow_size
        base = plane * h_size * w_size + oh * stride * w_size + ow * stride
        if k == 2:  # the CPU kernel's pairwise float64 sum, for the same rounding
            s = (np.float64(xf[base]) + np.float64(xf[base + 1])) \
                + (np.float64(xf[base + w_size]) + np.float64(xf[base + w_size + 1]))
            outf[q] = s * 0.25
        else:
            s = np.float64(0.0)
            for i in range(k):
                row = base + i * w_size
                for j in range(k):
                    s += xf[row + j]
            outf[q] = s * scale


@cuda.jit(cache=True)
def _avgpool2d_backward(gf, h_size, w_size, k, stride, oh_size, ow_size, scale, dxf):
    for q in range(cuda.grid(1), dxf.shape[0], cuda.gridsize(1)):
        _, obase, oh_lo, oh_hi, ow_lo, ow_hi = _windows_holding(q, h_size, w_size, k, stride, oh_size, ow_size)
        s = dxf.dtype.type(0)
        for oh in range(oh_lo, oh_hi + 1):
            for ow in range(ow_lo, ow_hi + 1):
                # as the CPU: g = dout * scale in float64, added to the dtype's running value
                s = dxf.dtype.type(s + gf[obase + oh * ow_size + ow] * scale)
        dxf[q] = s


@cuda.jit(cache=True)
def _broadcast_planes(gf, hw, scale, dxf):
    """dx[q] = dout[q // hw] * scale: one thread per dx element."""
    for q in range(cuda.grid(1), dxf.shape[0], cuda.gridsize(1)):
        dxf[q] = gf[q // hw] * scale


@cuda.jit(cache=True)
def _upsample2d_forward(xf, h_size, w_size, scale, outf):
    ow_size = w_size * scale
    ohw = h_size * scale * ow_size
    for q in range(cuda.grid(1), outf.shape[0], cuda.gridsize(1)):
        plane = q // ohw
        r = q - plane * ohw
        oh = r // ow_size
        ow = r - oh * ow_size
        outf[q] = xf[(plane * h_size + oh // scale) * w_size + ow // scale]


@cuda.jit(cache=True)
def _upsample2d_backward(gf, h_size, w_size, scale, dxf):
    ow_size = w_size * scale
    hw = h_size * w_size
    for q in range(cuda.grid(1), dxf.shape[0], cuda.gridsize(1)):
        plane = q // hw
        r = q - plane * hw
        i = r // w_size
        j = r - i * w_size
        s = np.float64(0.0)
        for a in range(scale):
            row = (plane * h_size * scale + i * scale + a) * ow_size + j * scale
            for b in range(scale):
                s += gf[row + b]
        dxf[q] = s


def _launch(kern, total, *args):
    launch(kern, total, *args)


def maxpool2d_forward(x, k, stride, out, argmax):
    """Max pooling over k x k windows, overwriting ``out`` and ``argmax`` (int64, the flat index
    ``ih * W + iw`` of each maximum within its plane). x (N, C, H, W), out/argmax (N, C, OH, OW)."""
    x, out, argmax = (as_device_array(a) for a in (x, out, argmax))
    _, _, h, w = x.shape
    oh, ow = out.shape[2], out.shape[3]
    _launch(_maxpool2d_forward, out.size, flat_view(x), h, w, int(k), int(stride), oh, ow, flat_view(out),
            flat_view(argmax))


def _check_window(k, stride):
    k, stride = int(k), int(stride)
    if k < 0 or stride < 0 or (k > 0) != (stride > 0):
        raise ValueError(f"max pooling backward: k={k} and stride={stride} must both be the forward's "
                         f"window (>= 1), or both 0 when it is unknown")
    return k, stride


def _max_scatter_backward(dout, argmax, dx):
    in_per_plane = dx.size // max(1, dx.shape[0] * dx.shape[1])
    out_per_plane = dout.size // max(1, dout.shape[0] * dout.shape[1])
    _launch(_zero, dx.size, flat_view(dx))
    _launch(_max_scatter, dout.size, flat_view(dout), flat_view(argmax), out_per_plane, in_per_plane,
            flat_view(dx))


def maxpool2d_backward(dout, argmax, dx, k=0, stride=0):
    """Gradient of :func:`maxpool2d_forward`, overwriting ``dx``. Given the forward's window
    ``k``, ``stride``: one thread per ``dx`` element gathers the gradients of the windows whose
    argmax it is (no atomics; the CPU's sums bit for bit). With ``k == stride == 0`` (window
    unknown): zeroed, then ``dx[n, c].flat[argmax] += dout`` by atomic adds (overlapping windows
    accumulate; their order, and so the last bit of such sums, may vary from run to run)."""
    k, stride = _check_window(k, stride)
    dout, argmax, dx = (as_device_array(a) for a in (dout, argmax, dx))
    if k == 0:
        _max_scatter_backward(dout, argmax, dx)
        return
    _, _, h, w = dx.shape
    oh, ow = dout.shape[2], dout.shape[3]
    _launch(_maxpool2d_backward_gather, dx.size, flat_view(dout), flat_view(argmax), h, w, k, stride, oh, ow,
            flat_view(dx))


def maxpool1d_forward(x, k, stride, out, argmax):
    """Max pooling over windows of length k, overwriting ``out`` and ``argmax`` (int64 index
    ``il`` within its row). x (N, C, L), out/argmax (N, C, OL)."""
    x, out, argmax = (as_device_array(a) for a in (x, out, argmax))
    length = x.shape[2]
    ol = out.shape[2]
    _launch(_maxpool1d_forward, out.size, flat_view(x), length, int(k), int(stride), ol, flat_view(out),
            flat_view(argmax))


def maxpool1d_backward(dout, argmax, dx, k=0, stride=0):
    """Gradient of :func:`maxpool1d_forward`, overwriting ``dx`` (N, C, L), as
    :func:`maxpool2d_backward` (the gather given the window, the atomic scatter without)."""
    k, stride = _check_window(k, stride)
    dout, argmax, dx = (as_device_array(a) for a in (dout, argmax, dx))
    if k == 0:
        _max_scatter_backward(dout, argmax, dx)
        return
    _launch(_maxpool1d_backward_gather, dx.size, flat_view(dout), flat_view(argmax), dx.shape[2], k, stride,
            dout.shape[2], flat_view(dx))


def avgpool2d_forward(x, k, stride, out):
    """Average pooling over k x k windows (divisor k*k, no padding), overwriting ``out``."""
    x, out = as_device_array(x), as_device_array(out)
    _, _, h, w = x.shape
    oh, ow = out.shape[2], out.shape[3]
    k = int(k)
    _launch(_avgpool2d_forward, out.size, flat_view(x), h, w, k, int(stride), oh, ow,
            np.float64(1.0 / (k * k)), flat_view(out))


def avgpool2d_backward(dout, k, stride, dx):
    """Gradient of :func:`avgpool2d_forward`, overwriting ``dx`` (overlapping windows add up)."""
    dout, dx = as_device_array(dout), as_device_array(dx)
    _, _, h, w = dx.shape
    oh, ow = dout.shape[2], dout.shape[3]
    k = int(k)
    _launch(_avgpool2d_backward, dx.size, flat_view(dout), h, w, k, int(stride), oh, ow,
            np.float64(1.0 / (k * k)), flat_view(dx))


def globalavgpool2d_forward(x, out):
    """The mean of every plane, overwriting ``out``: x (N, C, H, W), out (N, C)."""
    x, out = as_device_array(x), as_device_array(out)
    n, c, h, w = x.shape
    row_sums(flat_view(x), n * c, h * w, flat_view(out), 1.0 / max(1, h * w))


def globalavgpool2d_backward(dout, dx):
    """Gradient of :func:`globalavgpool2d_forward`, overwriting ``dx`` (N, C, H, W) with
    dout[n, c] / (H*W) on every element of plane (n, c)."""
    dout, dx = as_device_array(dout), as_device_array(dx)
    _, _, h, w = dx.shape
    _launch(_broadcast_planes, dx.size, flat_view(dout), h * w, np.float64(1.0 / max(1, h * w)), flat_view(dx))


def upsample2d_forward(x, scale, out):
    """Nearest upsampling by an integer ``scale``, overwriting ``out`` (N, C, H*scale, W*scale)."""
    x, out = as_device_array(x), as_device_array(out)
    _, _, h, w = x.shape
    _launch(_upsample2d_forward, out.size, flat_view(x), h, w, int(scale), flat_view(out))


def upsample2d_backward(dout, scale, dx):
    """Gradient of :func:`upsample2d_forward`, overwriting ``dx`` (N, C, H, W) with the sum of
    each ``scale`` x ``scale`` block of ``dout`` (in float64)."""
    dout, dx = as_device_array(dout), as_device_array(dx)
    _, _, h, w = dx.shape
    _launch(_upsample2d_backward, dx.size, flat_view(dout), h, w, int(scale), flat_view(dx))


@cuda.jit(cache=True)
def _globalavgpool1d_forward(xf, t_size, d, outf):
    """One thread per output element (n, j): the float64 sum over t, in the CPU's order."""
    for q in range(cuda.grid(1), outf.shape[0], cuda.gridsize(1)):
        n = q // d
        j = q - n * d
        base = n * t_size * d + j
        s = np.float64(0.0)
        for t in range(t_size):
            s += xf[base + t * d]
        outf[q] = s / t_size


_globalavgpool1d_backward = elementwise(
    "globalavgpool1d_backward(dout, td: int64, d: int64, scale: float64, dx)",
    "dx = dout[(i // td) * d + i % d] * scale")


def globalavgpool1d_forward(x, out):
    """``out[n, j] = mean over t of x[n, t, j]``: x (N, T, D), out (N, D); the sum in float64."""
    x, out = as_device_array(x), as_device_array(out)
    _, t, d = x.shape
    _launch(_globalavgpool1d_forward, out.size, flat_view(x), t, d, flat_view(out))


def globalavgpool1d_backward(dout, dx):
    """Gradient of :func:`globalavgpool1d_forward`: ``dx[n, t] = dout[n] / T``, overwriting dx."""
    dout, dx = as_device_array(dout), as_device_array(dx)
    _, t, d = dx.shape
    if dx.size:
        _globalavgpool1d_backward(flat_view(dout), t * d, d, 1.0 / t, flat_view(dx))
