"""Convolution kernels (Conv1D, Conv2D) on the GPU: im2col + the tiled GEMM.

CUDA twins of :mod:`nkernels.kernels.cpu.conv`: same names and signatures (the same ``cols`` and
``gemm`` workspaces, whose shapes the CPU module's helpers give; they are re-exported here),
device arrays in place of NumPy arrays, outputs written in place. With P = N*OH*OW output pixels
and R = C*KH*KW::

    forward   cols (P, R) <- im2col(x)                      one thread per cols element
              out[n, o, :] = (W (O, R) @ cols.T)[o, n*OHW:(n+1)*OHW] + bias[o]
                                                            ONE GEMM whose epilogue adds the
                                                            bias and writes NCHW directly
    backward  gemm (O, P) <- dout in (O, P) order;  dbias = row sums of gemm
              dweight (O, R) = gemm @ cols                  one GEMM, split along P (a long K)
              cols <- gemm.T @ W                            one GEMM (dcols), when need_dx
              dx <- col2im(cols)                            one thread per dx element: it
                                                            gathers the cols entries that read
                                                            it (no atomics, deterministic)

The forward does not touch ``gemm``; it leaves the im2col of x in ``cols`` as the CPU kernel
does, so ``cols_ready`` means the same. A Conv1D runs as a Conv2D with H = KH = 1 on reshaped
views (no copies).
"""
from numba import cuda

from ..cpu.conv import (
    conv1d_output_shape, conv1d_workspace_shapes, conv1d_workspace_size, conv2d_output_shape,
    conv2d_workspace_shapes, conv2d_workspace_size, conv_output_length)
from .gemm import gemm as _gemm
from .gemm import row_sums
from .launch import as_device_array, flat_view, grid_stride

__all__ = ["conv2d_forward", "conv2d_backward", "conv1d_forward", "conv1d_backward",
           "conv_output_length", "conv2d_output_shape", "conv1d_output_shape",
           "conv2d_workspace_shapes", "conv1d_workspace_shapes", "conv2d_workspace_size",
           "conv1d_workspace_size"]


@cuda.jit(cache=True)
def _im2col(xf, c_size, h_size, w_size, kh_size, kw_size, sh, sw, ph, pw, oh_size, ow_size, cf):
    """cols[p, r] = x[n, c, oh*sh - ph + kh, ow*sw - pw + kw] (0 outside), p = (n*OH + oh)*OW + ow,
    r = (c*KH + kh)*KW + kw; one thread per cols element, writes coalesced."""
    r_size = c_size * kh_size * kw_size
    total = cf.shape[0]
    zero = cf.dtype.type(0)
    for q in range(cuda.grid(1), total, cuda.gridsize(1)):
        p = q // r_size
        r = q - p * r_size
        now = p // ow_size
        ow = p - now * ow_size
        n = now // oh_size
        oh = now - n * oh_size
        ckh = r // kw_size
        kw = r - ckh * kw_size
        c = ckh // kh_size
        kh = ckh - c * kh_size
        ih = oh * sh - ph + kh
        iw = ow * sw - pw + kw
        if ih >= 0 and ih < h_size and iw >= 0 and iw < w_size:
            cf[q] = xf[((n * c_size + c) * h_size + ih) * w_size + iw]
        else:
            cf[q] = zero


@cuda.jit(cache=True)
def _col2im(cf, c_size, h_size, w_size, kh_size, kw_size, sh, sw, ph, pw, oh_size, ow_size, dxf):
    """dx[n, c, ih, iw] = sum of the cols entries that read x[n, c, ih, iw]: one thread per dx
    element gathers over (kh, kw); every dx element is written once."""
    r_size = c_size * kh_size * kw_size
    total = dxf.shape[0]
    for q in range(cuda.grid(1), total, cuda.gridsize(1)):
        iw = q % w_size
        t = q // w_size
        ih = t % h_size
        t = t // h_size
        c = t % c_size
        n = t // c_size
        s = dxf.dtype.type(0)
        for kh in range(kh_size):
            y = ih + ph - kh
            if y < 0 or y % sh != 0:
                continue
            oh = y // sh
            if oh >= oh_size:
                continue
            for kw in range(kw_size):
                x = iw + pw - kw
                if x < 0 or x % sw != 0:
                    continue
                ow = x // sw
                if ow >= ow_size:
                    continue
                s += cf[((n * oh_size + oh) * ow_size + ow) * r_size + (c * kh_size + kh) * kw_size + kw]
        dxf[q] = s


@cuda.jit(cache=True)
def _nchw_to_gemm(doutf, o_size, ohw, gf):
    """gemm[o, n*OHW + s] = dout[n, o, s]; one thread per element, reads coalesced."""
    total = doutf.shape[0]
    p_size = total // o_size
    for q in range(cuda.grid(1), total, cuda.gridsize(1)):
        no = q // ohw
        s = q - no * ohw
        n = no // o_size
        o = no - n * o_size
        gf[o * p_size + n * ohw + s] = doutf[q]


def _launch_im2col(x, kh, kw, sh, sw, ph, pw, oh, ow, cols):
    n, c, h, w = x.shape
    total = cols.shape[0] * cols.shape[1]
    if total == 0:
        return
    blocks, threads = grid_stride(total, per_thread=1)
    _im2col[blocks, threads](flat_view(x), c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, flat_view(cols))


def _forward_4d(x, weight, bias, sh, sw, ph, pw, cols, out):
    n, c, _, _ = x.shape
    o, _, kh, kw = weight.shape
    oh, ow = out.shape[2], out.shape[3]
    r = c * kh * kw
    p = n * oh * ow
    _launch_im2col(x, kh, kw, sh, sw, ph, pw, oh, ow, cols)
    has_bias = bias.shape[0] > 0
    # out[n, o, :] = (W (O, R) @ cols.T (R, P))[o, n*OHW:(n+1)*OHW] + bias[o]
    _gemm(flat_view(weight), flat_view(cols), flat_view(out), o, p, r, a_kcontig=True, b_kcontig=True, lda=r,
          ldb=r, bias=bias if has_bias else None, bias_mode=2 if has_bias else 0, grp=oh * ow)


def _backward_4d(x, weight, dout, sh, sw, ph, pw, need_dx, cols_ready, cols, gemm, dx, dweight,
                 dbias):
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    oh, ow = dout.shape[2], dout.shape[3]
    r = c * kh * kw
    p = n * oh * ow
    if not cols_ready:
        _launch_im2col(x, kh, kw, sh, sw, ph, pw, oh, ow, cols)
    fg = flat_view(gemm)
    if p * o > 0:
        blocks, threads = grid_stride(p * o, per_thread=1)
        _nchw_to_gemm[blocks, threads](flat_view(dout), o, oh * ow, fg)
    if dbias.shape[0] > 0:
        row_sums(fg, o, p, dbias)
    fc = flat_view(cols)
    # dweight (O, R) = gemm (O, P) @ cols (P, R)
    _gemm(fg, fc, flat_view(dweight), o, r, p, a_kcontig=True, b_kcontig=False, lda=p, ldb=r, ldc=r)
    if need_dx:
        # dcols (P, R) = gemm.T (P, O) @ W (O, R), over cols
        _gemm(fg, flat_view(weight), fc, p, r, o, a_kcontig=False, b_kcontig=False, lda=p, ldb=r, ldc=r)
        total = n * c * h * w
        if total > 0:
            blocks, threads = grid_stride(total, per_thread=1)
            _col2im[blocks, threads](fc, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, flat_view(dx))


def _dev(*arrays):
    return [as_device_array(a) for a in arrays]


def conv2d_forward(x, weight, bias, stride_h, stride_w, pad_h, pad_w, cols, gemm, out):
    """Conv2D forward (cross-correlation, as ``torch.nn.functional.conv2d``), overwriting ``out``.

    x (N, C, H, W), weight (O, C, KH, KW), bias (O,) or shape (0,); strides >= 1, pads >= 0;
    cols (N*OH*OW, C*KH*KW) workspace, left holding the im2col of x; gemm (O, N*OH*OW)
    workspace (unused by the forward); out (N, O, OH, OW). C-contiguous device arrays, one dtype.
    """
    x, weight, bias, cols, out = _dev(x, weight, bias, cols, out)
    _forward_4d(x, weight, bias, int(stride_h), int(stride_w), int(pad_h), int(pad_w), cols, out)


def conv2d_backward(x, weight, dout, stride_h, stride_w, pad_h, pad_w, need_dx, cols_ready,
                    cols, gemm, dx, dweight, dbias):
    """Conv2D backward: overwrites ``dx`` (when ``need_dx``), ``dweight`` and ``dbias``.

    Arguments as :func:`nkernels.kernels.cpu.conv.conv2d_backward`: ``cols_ready`` true only if
    ``cols`` still holds what :func:`conv2d_forward` left in it; on return ``cols`` holds dcols
    when ``need_dx``. Device arrays.
    """
    x, weight, dout, cols, gemm, dweight, dbias = _dev(x, weight, dout, cols, gemm, dweight, dbias)
    dx = as_device_array(dx) if need_dx else dx
    _backward_4d(x, weight, dout, int(stride_h), int(stride_w), int(pad_h), int(pad_w),
                 bool(need_dx), bool(cols_ready), cols, gemm, dx, dweight, dbias)


def conv1d_forward(x, weight, bias, stride, pad, cols, gemm, out):
    """Conv1D forward (as ``torch.nn.functional.conv1d``), overwriting ``out``.

    x (N, C, L), weight (O, C, K), bias (O,) or (0,), cols (N*OL, C*K), gemm (O, N*OL),
    out (N, O, OL). Runs as a Conv2D with H = KH = 1 on reshaped views.
    """
    x, weight, bias, cols, out = _dev(x, weight, bias, cols, out)
    n, c, length = x.shape
    o, _, k = weight.shape
    ol = out.shape[2]
    _forward_4d(x.reshape(n, c, 1, length), weight.reshape(o, c, 1, k), bias, 1, int(stride), 0,
                int(pad), cols, out.reshape(n, o, 1, ol))


def conv1d_backward(x, weight, dout, stride, pad, need_dx, cols_ready, cols, gemm, dx, dweight,
                    dbias):
    """Conv1D backward: overwrites ``dx`` (when ``need_dx``), ``dweight`` and ``dbias``
    (arguments as the CPU kernel's, device arrays)."""
    x, weight, dout, cols, gemm, dweight, dbias = _dev(x, weight, dout, cols, gemm, dweight, dbias)
    n, c, length = x.shape
    o, _, k = weight.shape
    ol = dout.shape[2]
    dx4 = as_device_array(dx).reshape(n, c, 1, length) if need_dx else dx
    _backward_4d(x.reshape(n, c, 1, length), weight.reshape(o, c, 1, k), dout.reshape(n, o, 1, ol),
                 1, int(stride), 0, int(pad), bool(need_dx), bool(cols_ready), cols, gemm, dx4,
                 dweight.reshape(o, c, 1, k), dbias)
