"""Convolution kernels (Conv1D, Conv2D, ConvTranspose2D) on the GPU: im2col + the tiled GEMM.

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

ConvTranspose2D (weight (C, O, KH, KW), P = N*H*W input pixels, R = O*KH*KW) runs the same
pieces the other way round::

    forward   gemm (C, P) <- x in (C, P) order
              cols (P, R) = gemm.T @ W                      one GEMM
              out <- bias + col2im(cols)                    the gather above, started at the bias
    backward  cols <- im2col(dout)
              dweight (C, R) = gemm @ cols                  one GEMM (gemm rebuilt unless ready)
              dbias = per-channel sums of dout              row sums, then column sums
              dx = (W (C, R) @ cols.T) written as NCHW      one GEMM, as Conv2D's forward
"""
from numba import cuda

from ..cpu.conv import (
    conv1d_output_shape, conv1d_workspace_shapes, conv1d_workspace_size, conv2d_output_shape,
    conv2d_workspace_shapes, conv2d_workspace_size, conv_output_length, convtranspose2d_output_shape,
    convtranspose2d_workspace_shapes)
from .gemm import column_sums, row_sums
from .gemm import gemm as _gemm
from .launch import as_device_array, dtype_of, flat_view, grid_stride, scratch

__all__ = ["conv2d_forward", "conv2d_forward_activation", "conv2d_backward", "conv1d_forward",
           "conv1d_forward_activation", "conv1d_backward",
           "convtranspose2d_forward", "convtranspose2d_backward",
           "conv_output_length", "conv2d_output_shape", "conv1d_output_shape",
           "conv2d_workspace_shapes", "conv1d_workspace_shapes", "conv2d_workspace_size",
           "conv1d_workspace_size", "convtranspose2d_output_shape", "convtranspose2d_workspace_shapes"]


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


@cuda.jit(device=True, inline="always")
def _output_reading(i, pad, k, stride, o_size):
    """Along one dimension, the output position whose window reads input ``i`` through kernel tap
    ``k`` (window start ``o * stride - pad``), or -1 when none does."""
    y = i + pad - k
    if y < 0 or y % stride != 0:
        return -1
    o = y // stride
    return o if o < o_size else -1


@cuda.jit(cache=True)
def _col2im(cf, c_size, h_size, w_size, kh_size, kw_size, sh, sw, ph, pw, oh_size, ow_size, init,
            has_init, dxf):
    """dx[n, c, ih, iw] = sum of the cols entries that read x[n, c, ih, iw], plus init[c] when
    ``has_init`` (a transposed convolution's bias): one thread per dx element gathers over
    (kh, kw); every dx element is written once."""
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
        if has_init:
            s = init[c]
        for kh in range(kh_size):
            oh = _output_reading(ih, ph, kh, sh, oh_size)
            if oh < 0:
                continue
            for kw in range(kw_size):
                ow = _output_reading(iw, pw, kw, sw, ow_size)
                if ow < 0:
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


def _forward_4d(x, weight, bias, sh, sw, ph, pw, cols, out, activation=None):
    n, c, _, _ = x.shape
    o, _, kh, kw = weight.shape
    oh, ow = out.shape[2], out.shape[3]
    r = c * kh * kw
    p = n * oh * ow
    _launch_im2col(x, kh, kw, sh, sw, ph, pw, oh, ow, cols)
    has_bias = bias.shape[0] > 0
    # out[n, o, :] = (W (O, R) @ cols.T (R, P))[o, n*OHW:(n+1)*OHW] + bias[o]
    _gemm(flat_view(weight), flat_view(cols), flat_view(out), o, p, r, a_kcontig=True, b_kcontig=True, lda=r,
          ldb=r, bias=bias if has_bias else None, bias_mode=2 if has_bias else 0, grp=oh * ow,
          activation=activation)


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
            fdx = flat_view(dx)
            _col2im[blocks, threads](fc, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, fdx, 0, fdx)


def _dev(*arrays):
    return [as_device_array(a) for a in arrays]


def conv2d_forward(x, weight, bias, stride_h, stride_w, pad_h, pad_w, cols, gemm, out):
    """Conv2D forward (cross-correlation, as ``torch.nn.functional.conv2d``), overwriting ``out``.

    x (N, C, H, W), weight (O, C, KH, KW), bias (O,) or shape (0,); strides >= 1, pads >= 0;
    cols (N*OH*OW, C*KH*KW) workspace, left holding the im2col of x; gemm (O, N*OH*OW)
    workspace (unused by the forward); out (N, O, OH, OW). C-contiguous device arrays, one dtype.
    """
    conv2d_forward_activation(x, weight, bias, stride_h, stride_w, pad_h, pad_w, cols, gemm, out, None)


def conv2d_forward_activation(x, weight, bias, stride_h, stride_w, pad_h, pad_w, cols, gemm, out, activation):
    """:func:`conv2d_forward` with ``activation`` (a key of
    :data:`~nkernels.kernels.cuda.gemm.EPILOGUE_ACTIVATIONS`, or None) applied by the GEMM's
    epilogue as it writes ``out``: Conv2D followed by that activation without its own launch."""
    x, weight, bias, cols, out = _dev(x, weight, bias, cols, out)
    _forward_4d(x, weight, bias, int(stride_h), int(stride_w), int(pad_h), int(pad_w), cols, out, activation)


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
    conv1d_forward_activation(x, weight, bias, stride, pad, cols, gemm, out, None)


def conv1d_forward_activation(x, weight, bias, stride, pad, cols, gemm, out, activation):
    """:func:`conv1d_forward` with ``activation`` applied by the GEMM's epilogue (as
    :func:`conv2d_forward_activation`)."""
    x, weight, bias, cols, out = _dev(x, weight, bias, cols, out)
    n, c, length = x.shape
    o, _, k = weight.shape
    ol = out.shape[2]
    _forward_4d(x.reshape(n, c, 1, length), weight.reshape(o, c, 1, k), bias, 1, int(stride), 0,
                int(pad), cols, out.reshape(n, o, 1, ol), activation)


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


def _launch_nchw_to_gemm(x, gemm):
    _, c, h, w = x.shape
    if x.size > 0:
        blocks, threads = grid_stride(x.size, per_thread=1)
        _nchw_to_gemm[blocks, threads](flat_view(x), c, h * w, flat_view(gemm))


def convtranspose2d_forward(x, weight, bias, stride_h, stride_w, pad_h, pad_w, cols, gemm, out):
    """ConvTranspose2D forward (as ``torch.nn.functional.conv_transpose2d``), overwriting ``out``.

    Arguments as :func:`nkernels.kernels.cpu.conv.convtranspose2d_forward`: x (N, C, H, W),
    weight (C, O, KH, KW), bias (O,) or shape (0,), cols (N*H*W, O*KH*KW) and gemm (C, N*H*W)
    workspaces (gemm left holding x in (C, P) order), out (N, O, OH, OW). Device arrays.
    """
    x, weight, bias, cols, gemm, out = _dev(x, weight, bias, cols, gemm, out)
    n, c, h, w = x.shape
    _, o, kh, kw = weight.shape
    oh, ow = out.shape[2], out.shape[3]
    p, r = n * h * w, o * kh * kw
    _launch_nchw_to_gemm(x, gemm)
    fc = flat_view(cols)
    # cols (P, R) = gemm.T (P, C) @ W (C, R)
    _gemm(flat_view(gemm), flat_view(weight), fc, p, r, c, a_kcontig=False, b_kcontig=False, lda=p, ldb=r, ldc=r)
    if out.size > 0:
        fout = flat_view(out)
        init, has_init = (bias, 1) if bias.shape[0] > 0 else (fout, 0)
        blocks, threads = grid_stride(out.size, per_thread=1)
        _col2im[blocks, threads](fc, o, oh, ow, kh, kw, int(stride_h), int(stride_w), int(pad_h), int(pad_w), h,
                                 w, init, has_init, fout)


def convtranspose2d_backward(x, weight, dout, stride_h, stride_w, pad_h, pad_w, need_dx, gemm_ready,
                             cols, gemm, dx, dweight, dbias):
    """ConvTranspose2D backward: overwrites ``dx`` (when ``need_dx``), ``dweight`` and ``dbias``.

    Arguments as :func:`nkernels.kernels.cpu.conv.convtranspose2d_backward` (``gemm_ready`` true
    only if ``gemm`` still holds what the forward left in it). The input gradient goes from the
    GEMM's epilogue straight into ``dx``, so ``gemm`` keeps x here. Device arrays.
    """
    x, weight, dout, cols, gemm, dweight, dbias = _dev(x, weight, dout, cols, gemm, dweight, dbias)
    n, c, h, w = x.shape
    _, o, kh, kw = weight.shape
    oh, ow = dout.shape[2], dout.shape[3]
    p, r = n * h * w, o * kh * kw
    _launch_im2col(dout, kh, kw, int(stride_h), int(stride_w), int(pad_h), int(pad_w), h, w, cols)
    if not gemm_ready:
        _launch_nchw_to_gemm(x, gemm)
    fg, fc = flat_view(gemm), flat_view(cols)
    # dweight (C, R) = gemm (C, P) @ cols (P, R)
    _gemm(fg, fc, flat_view(dweight), c, r, p, a_kcontig=True, b_kcontig=False, lda=p, ldb=r, ldc=r)
    if dbias.shape[0] > 0:
        planes = scratch("convtranspose2d_planes", n * o, dtype_of(dout))
        row_sums(flat_view(dout), n * o, oh * ow, planes)
        column_sums(planes, n, o, o, dbias)
    if need_dx:
        # dx[n, c, :] = (W (C, R) @ cols.T (R, P))[c, n*HW:(n+1)*HW]
        dx = as_device_array(dx)
        _gemm(flat_view(weight), fc, flat_view(dx), c, p, r, a_kcontig=True, b_kcontig=True, lda=r, ldb=r,
              grp=h * w)
