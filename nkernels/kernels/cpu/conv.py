"""Convolution kernels (Conv1D, Conv2D, ConvTranspose2D): im2col + GEMM, chunk by chunk of samples.

Layouts follow PyTorch: Conv2D ``x`` (N, C, H, W), ``weight`` (O, C, KH, KW), ``bias`` (O,);
Conv1D ``x`` (N, C, L), ``weight`` (O, C, K), ``bias`` (O,). Zero padding and stride, no
dilation, no groups. A layer without bias passes a 0-length ``bias`` / ``dbias``.

How Conv2D's work is laid out (OHW = OH * OW output pixels a sample, R = C * KH * KW). The batch
runs in chunks of ``nb`` samples, as many as keep one chunk's columns within
:data:`CHUNK_ELEMENTS` (so that a GEMM's columns come from cache, not memory); chunk k owns its own
stretch of the ``cols`` and ``gemm`` workspaces (or one of a ring of them, see below), and runs its
whole pipeline on one thread::

    cols_k (R, nb*OHW)  im2col of the chunk: column j*OHW + oh*OW + ow is that pixel's patch
    out[n] (O, OHW)  =  W (O, R) @ cols_k                  one sample: written in place (+ bias)
    gemm_k (O, nb*OHW) = W @ cols_k, then copied to out    several samples (+ bias)

and backward, per chunk (dbias from one pass over dout first)::

    dout_k (O, nb*OHW)  dout[n] itself for one sample, else copied into gemm_k
    partial_k (R, O) +=  cols_k @ dout_k.T                 partial sum k % ROUND_CHUNKS, transposed
    cols_k          =   W.T @ dout_k                       dcols, in cache (when need_dx)
    dx[chunk]       <-  col2im(cols_k)

(The transposed partial sums: OpenBLAS packs ``cols_k`` faster as the left operand than as a
transposed right one, 77 against 98 µs for LeNet's second convolution on a Zen 4 core; the sums
are transposed once into dweight at the end.) A batch whose columns would not stay in cache
(:data:`KEPT_COLUMNS`) runs its chunks over a ring of stretches of the workspaces, and its
backward builds the columns again.

The GEMMs go through :func:`nkernels.kernels.cpu.blas.gemm` (transposes and accumulation
without temporaries) on one BLAS thread, the forward's and the column gradient's cut into row
pieces for OpenBLAS's small-matrix kernels where it runs them (:func:`.blas.gemm_row_pieces`);
the chunks run side by side in one ``prange`` (the backward's in rounds of :data:`ROUND_CHUNKS`,
the forward's too over a ring of stretches), which is how a convolution uses every core. The
weight gradient is summed into one partial sum per chunk of a round, added up at the end, so it
does not depend on the number of threads. Stride 1 with "same" output width copies each patch plane
of a sample as one shifted run of the input plane (:func:`_im2col_chunk`). ``cols`` and ``gemm`` are
caller-provided workspaces whose shapes the pure-Python helpers :func:`conv2d_workspace_shapes` and
:func:`conv1d_workspace_shapes` give ((N*OH*OW, R) and (O, N*OH*OW); the kernels use them as flat
storage, so the CUDA twins share the shapes but not the layout of the contents). A Conv1D is run
as a Conv2D with H = KH = 1 on reshaped views (no copy), so it shares the same machinery.

ConvTranspose2D (``weight`` (C, O, KH, KW), PyTorch's layout) is the adjoint of a Conv2D from its
output to its input: its forward is that Conv2D's backward-data (one GEMM, then col2im starting
from the bias) and its input gradient that Conv2D's forward (im2col of ``dout``, one GEMM); see
:func:`convtranspose2d_forward`. It keeps the whole-batch layout: cols (P, R), one row per pixel
of the batch (P = N*H*W), one GEMM per pass.

A 3x3 Conv2D of stride 1 with enough channels (:func:`.winograd.winograd_applies`: the resnet preset's
blocks) runs Winograd's F(2x2, 3x3) instead (:mod:`.winograd`): 16 GEMMs 2.25x smaller than the one of
im2col, in the same two workspaces; its forward leaves the transformed input in ``cols`` for the
backward, so ``cols_ready`` means the same.

All float arrays of one call share one dtype (float32 or float64); BLAS runs in that dtype.
"""
import numpy as np
from numba import njit, prange, uintp

from ..calls import by_address
from .blas import gemm as blas_gemm
from .blas import SMALL_TRANSPOSED_OUTPUTS, gemm_row_pieces, small_kernels_in_use
from .threads import add_in_chunk_order, even_chunk_count
from .winograd import winograd_applies, winograd_backward, winograd_forward


# ----------------------------------------------------------------------------------------------
# Pure-Python shape helpers (for the caller, never jitted)
# ----------------------------------------------------------------------------------------------


def conv_output_length(size, kernel, stride=1, padding=0):
    """Output length of one spatial dimension: ``(size + 2*padding - kernel) // stride + 1``."""
    return (size + 2 * padding - kernel) // stride + 1


def conv2d_output_shape(x_shape, weight_shape, stride_h=1, stride_w=1, pad_h=0, pad_w=0):
    """``(N, O, OH, OW)`` for ``x`` of shape (N, C, H, W) and ``weight`` (O, C, KH, KW)."""
    n, _, h, w = x_shape
    o, _, kh, kw = weight_shape
    return (n, o, conv_output_length(h, kh, stride_h, pad_h),
            conv_output_length(w, kw, stride_w, pad_w))


def conv1d_output_shape(x_shape, weight_shape, stride=1, pad=0):
    """``(N, O, OL)`` for ``x`` of shape (N, C, L) and ``weight`` (O, C, K)."""
    n, _, length = x_shape
    o, _, k = weight_shape
    return (n, o, conv_output_length(length, k, stride, pad))


def conv2d_workspace_shapes(x_shape, weight_shape, stride_h=1, stride_w=1, pad_h=0, pad_w=0):
    """Shapes ``(cols_shape, gemm_shape)`` of the two workspaces of the Conv2D kernels.

    ``cols`` is (N*OH*OW, C*KH*KW) and ``gemm`` is (O, N*OH*OW), both C-contiguous and of the
    dtype of ``x``. The same two buffers serve forward and backward.
    """
    n, c, _, _ = x_shape
    o, _, kh, kw = weight_shape
    _, _, oh, ow = conv2d_output_shape(x_shape, weight_shape, stride_h, stride_w, pad_h, pad_w)
    p = n * oh * ow
    return (p, c * kh * kw), (o, p)


def conv1d_workspace_shapes(x_shape, weight_shape, stride=1, pad=0):
    """Shapes ``(cols_shape, gemm_shape)``: (N*OL, C*K) and (O, N*OL)."""
    n, c, _ = x_shape
    o, _, k = weight_shape
    _, _, ol = conv1d_output_shape(x_shape, weight_shape, stride, pad)
    p = n * ol
    return (p, c * k), (o, p)


def convtranspose2d_output_shape(x_shape, weight_shape, stride_h=1, stride_w=1, pad_h=0, pad_w=0,
                                 out_pad_h=0, out_pad_w=0):
    """``(N, O, OH, OW)`` for ``x`` (N, C, H, W) and a transposed convolution's ``weight``
    (C, O, KH, KW): ``OH = (H - 1)*stride_h - 2*pad_h + KH + out_pad_h``, OW likewise."""
    n, _, h, w = x_shape
    _, o, kh, kw = weight_shape
    return (n, o, (h - 1) * stride_h - 2 * pad_h + kh + out_pad_h,
            (w - 1) * stride_w - 2 * pad_w + kw + out_pad_w)


def convtranspose2d_workspace_shapes(x_shape, weight_shape):
    """Shapes ``(cols_shape, gemm_shape)`` of the ConvTranspose2D kernels' workspaces.

    ``cols`` is (N*H*W, O*KH*KW) (one row per *input* pixel) and ``gemm`` is (C, N*H*W), both
    C-contiguous and of the dtype of ``x``; they depend on neither stride nor padding.
    """
    n, c, h, w = x_shape
    _, o, kh, kw = weight_shape
    p = n * h * w
    return (p, o * kh * kw), (c, p)


def conv2d_workspace_size(x_shape, weight_shape, stride_h=1, stride_w=1, pad_h=0, pad_w=0):
    """Total number of elements of the two Conv2D workspaces (cols + gemm)."""
    (p, r), (o, _) = conv2d_workspace_shapes(x_shape, weight_shape, stride_h, stride_w,
                                             pad_h, pad_w)
    return r * p + o * p


def conv1d_workspace_size(x_shape, weight_shape, stride=1, pad=0):
    """Total number of elements of the two Conv1D workspaces (cols + gemm)."""
    (p, r), (o, _) = conv1d_workspace_shapes(x_shape, weight_shape, stride, pad)
    return r * p + o * p


# ----------------------------------------------------------------------------------------------
# Internal jitted building blocks (4-D, NCHW)
# ----------------------------------------------------------------------------------------------


# The loops below index flat views with unsigned offsets: Numba then skips the negative-index
# wraparound test on every access, which is about 1.5x faster for these short inner loops.


@by_address
@njit(cache=True, error_model="numpy", parallel=True)
def _im2col(x, kh_size, kw_size, sh, sw, ph, pw, oh_size, ow_size, cols):
    """cols[n*OH*OW + oh*OW + ow, (c*KH + kh)*KW + kw] = x[n, c, oh*sh - ph + kh, ow*sw - pw + kw]
    (zero outside x). Each output pixel's patch is one contiguous row: writes are sequential.
    Parallel over (n, oh): each iteration owns OW rows of cols."""
    n_size, c_size, h_size, w_size = x.shape
    r_size = cols.shape[1]
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    kwu = uintp(kw_size)
    for noh in prange(n_size * oh_size):
        n = noh // oh_size
        oh = noh - n * oh_size
        ih0 = oh * sh - ph
        p0 = noh * ow_size
        for ow in range(ow_size):
            dbase = (p0 + ow) * r_size
            iw0 = ow * sw - pw
            inside = iw0 >= 0 and iw0 + kw_size <= w_size
            for c in range(c_size):
                xbase = (n * c_size + c) * h_size
                for kh in range(kh_size):
                    ih = ih0 + kh
                    d = uintp(dbase + (c * kh_size + kh) * kw_size)
                    if ih < 0 or ih >= h_size:
                        for kw in range(kwu):
                            cf[d + kw] = 0
                    elif inside:
                        s = uintp((xbase + ih) * w_size + iw0)
                        for kw in range(kwu):
                            cf[d + kw] = xf[s + kw]
                    else:
                        s0 = (xbase + ih) * w_size
                        for kw in range(kw_size):
                            iw = iw0 + kw
                            if iw >= 0 and iw < w_size:
                                cf[d + uintp(kw)] = xf[uintp(s0 + iw)]
                            else:
                                cf[d + uintp(kw)] = 0


@by_address
@njit(cache=True, error_model="numpy", parallel=True)
def _col2im(cols, kh_size, kw_size, sh, sw, ph, pw, oh_size, ow_size, init, dx):
    """Adjoint of :func:`_im2col`: dx = sum of the column entries that read each pixel.

    Overwrites dx, starting every plane dx[n, c] from init[c] (a transposed convolution's bias),
    or from 0 when init is empty. Parallel over samples n: each iteration owns dx[n] (no races)
    and reads its block of cols rows sequentially, scattering into dx[n], which stays in cache."""
    n_size, c_size, h_size, w_size = dx.shape
    r_size = cols.shape[1]
    cf = cols.reshape(-1)
    df = dx.reshape(-1)
    kwu = uintp(kw_size)
    plane_size = h_size * w_size
    img_size = c_size * plane_size
    has_init = init.shape[0] > 0
    for n in prange(n_size):
        ibase = n * img_size
        for c in range(c_size):
            start = init[c] if has_init else 0
            pbase = ibase + c * plane_size
            for i in range(plane_size):
                df[uintp(pbase + i)] = start
        for oh in range(oh_size):
            ih0 = oh * sh - ph
            p0 = (n * oh_size + oh) * ow_size
            for ow in range(ow_size):
                sbase = (p0 + ow) * r_size
                iw0 = ow * sw - pw
                inside = iw0 >= 0 and iw0 + kw_size <= w_size
                for c in range(c_size):
                    cbase = ibase + c * h_size * w_size
                    for kh in range(kh_size):
                        ih = ih0 + kh
                        if ih < 0 or ih >= h_size:
                            continue
                        s = uintp(sbase + (c * kh_size + kh) * kw_size)
                        if inside:
                            d = uintp(cbase + ih * w_size + iw0)
                            for kw in range(kwu):
                                df[d + kw] += cf[s + kw]
                        else:
                            for kw in range(kw_size):
                                iw = iw0 + kw
                                if iw >= 0 and iw < w_size:
                                    df[uintp(cbase + ih * w_size + iw)] += cf[s + uintp(kw)]


@by_address
@njit(cache=True, error_model="numpy", parallel=True)
def _gemm_to_nchw(gemm, bias, out):
    """out[n, o, :] = gemm[o, n*OHW:(n+1)*OHW] (+ bias[o] when bias is not empty)."""
    n_size, o_size, ohw = out.shape
    has_bias = bias.shape[0] > 0
    for no in prange(n_size * o_size):
        n = no // o_size
        o = no - n * o_size
        src = gemm[o, n * ohw:(n + 1) * ohw]
        dst = out[n, o]
        if has_bias:
            b = bias[o]
            for p in range(ohw):
                dst[p] = src[p] + b
        else:
            for p in range(ohw):
                dst[p] = src[p]


@by_address
@njit(cache=True, error_model="numpy", parallel=True, fastmath={"reassoc"})
def _nchw_to_gemm(dout, gemm, dbias):
    """gemm[o, n*OHW:(n+1)*OHW] = dout[n, o, :]; dbias[o] = sum of dout[:, o] (if not empty).

    ``reassoc`` lets the bias sum vectorize; it is accumulated in float64 in any case."""
    n_size, o_size, ohw = dout.shape
    has_bias = dbias.shape[0] > 0
    for o in prange(o_size):
        acc = 0.0
        for n in range(n_size):
            src = dout[n, o]
            dst = gemm[o, n * ohw:(n + 1) * ohw]
            for p in range(ohw):
                v = src[p]
                dst[p] = v
                acc += v
        if has_bias:
            dbias[o] = acc


@by_address
@njit(cache=True, error_model="numpy", parallel=True, fastmath={"reassoc"})
def _channel_sums(a, out):
    """out[c] = sum of a[:, c, :] (a is (N, C, S)), accumulated in float64; parallel over c."""
    n_size, c_size, s_size = a.shape
    for c in prange(c_size):
        acc = 0.0
        for n in range(n_size):
            src = a[n, c]
            for p in range(s_size):
                acc += src[p]
        out[c] = acc


#: how many elements one chunk's im2col may hold: the samples of a chunk are picked so that their
#: columns (R rows of chunk*OH*OW) stay in the core's cache between the im2col pass and the GEMM that
#: reads them (and between the dcols GEMM and the col2im that reads those). 32K elements measured
#: faster than 16K, 64K and 128K on a Zen 4 core (1 MiB L2) for 8x8 to 16x16 images.
CHUNK_ELEMENTS = 32768


#: how many chunks a round of the backward holds, side by side on Numba's threads (BLAS itself runs on
#: one thread). Chunk k adds its weight gradient into partial sum k % ROUND_CHUNKS (chunks in ascending
#: order), and the partial sums are added up in order at the end: the result depends on the shapes only,
#: never on the thread count. (A fixed count, not Numba's thread count: reading that makes a function
#: uncacheable.)
ROUND_CHUNKS = 8

#: the most column entries a whole batch's im2col may hold and still be kept from the forward for the
#: backward (``cols_ready``). A larger one would go out to memory and come back: its chunks then run in
#: rounds of :data:`ROUND_CHUNKS` that reuse ROUND_CHUNKS stretches of the workspaces (chunk k the
#: stretch k % ROUND_CHUNKS), which stay in cache, and the backward computes its columns again (LeNet's
#: second convolution on 64 or 128 samples: 1.6 MB of columns in use instead of 13 or 26 MB, forward +
#: backward 0.3-3% faster even with the second im2col).
KEPT_COLUMNS = 1 << 20


@njit(cache=True, error_model="numpy")
def _chunk_count(n_size, r_size, ohw):
    """How many chunks the batch runs in: none holds more than :data:`CHUNK_ELEMENTS` column entries
    (unless one sample alone does), an even count where there are samples enough
    (:func:`.threads.even_chunk_count`)."""
    return even_chunk_count(n_size, r_size * ohw, CHUNK_ELEMENTS)


@njit(cache=True, error_model="numpy")
def _valid_outputs(kw, sw, pw, ow_size, w_size):
    """The range [lo, hi) of output columns ow whose input column ow*sw - pw + kw lies in [0, W)."""
    lo = 0
    while lo < ow_size and lo * sw - pw + kw < 0:
        lo += 1
    hi = ow_size
    while hi > lo and (hi - 1) * sw - pw + kw >= w_size:
        hi -= 1
    return lo, hi


@njit(cache=True, error_model="numpy")
def _patch_position(r, kh_size, kw_size):
    """The channel c and kernel offsets (kh, kw) of row r = (c*KH + kh)*KW + kw of the columns."""
    ckh = r // kw_size
    c = ckh // kh_size
    return c, ckh - c * kh_size, r - ckh * kw_size


@njit(cache=True, error_model="numpy")
def _valid_rows(kh, ph, oh_size, h_size):
    """The range [lo, hi) of output rows oh whose input row oh - ph + kh lies in [0, H) (stride 1)."""
    return min(oh_size, max(0, ph - kh)), max(0, min(oh_size, h_size + ph - kh))


# A convolution of stride 1 whose output rows are as wide as the input's ("same" padding) reads each
# (c, kh, kw) plane of a sample's columns as one shifted run of the input plane: output pixel
# p = oh*W + ow reads input pixel p + (kh - ph)*W + (kw - pw). _im2col_shifted and _col2im_shifted copy
# (add) that run in one contiguous loop, from its first valid pixel to its last (never outside the plane),
# and clear the columns that wrapped around from the row before or after (ow < lo or ow >= hi); row by
# row, as other convolutions go, they were about as slow as the GEMM on 8 x 8 images.


@njit(cache=True, error_model="numpy")
def _shifted_plan(kh_size, kw_size, ph, pw, oh_size, ow_size, h_size, w_size):
    """For a "same" convolution of stride 1, each (kh, kw) plane's run, row q = kh*KW + kw: its first
    and last output pixels [first, last), the input pixel the first one reads (within the plane),
    its valid output rows [row_lo, row_hi) and columns [lo, hi) (:func:`_valid_outputs`); inside the
    run, the columns ow < lo and ow >= hi of those rows wrapped around from the row before or after.
    All 0 when no pixel of the plane reads the input. The same for every channel and sample."""
    plan = np.zeros((kh_size * kw_size, 7), np.intp)
    for kh in range(kh_size):
        row_lo, row_hi = _valid_rows(kh, ph, oh_size, h_size)
        for kw in range(kw_size):
            lo, hi = _valid_outputs(kw, 1, pw, ow_size, w_size)
            if row_hi > row_lo and hi > lo:
                first = row_lo * w_size + lo
                plan[kh * kw_size + kw] = (first, (row_hi - 1) * w_size + hi, first + (kh - ph) * w_size + kw - pw,
                                           row_lo, row_hi, lo, hi)
    return plan


@njit(inline="always", error_model="numpy")
def _clear_wrapped(cf, d, row_lo, row_hi, lo, hi, ow_size):
    """Zero the wrapped columns (ow < lo, ow >= hi) of output rows [row_lo, row_hi) of the plane at ``d``."""
    for ow in range(lo):
        for oh in range(row_lo, row_hi):
            cf[d + uintp(oh * ow_size + ow)] = 0
    for ow in range(hi, ow_size):
        for oh in range(row_lo, row_hi):
            cf[d + uintp(oh * ow_size + ow)] = 0


@njit(cache=True, error_model="numpy")
def _im2col_shifted(xf, n0, nb, c_size, kh_size, kw_size, ph, pw, oh_size, ow_size, h_size, w_size, cf):
    """:func:`_im2col_chunk` of a "same" convolution of stride 1, on flat views: each (c, kh, kw) plane
    of a sample is one run of the input plane, then zeros around it and at its wrapped columns
    (:func:`_shifted_plan`, made once a call; 32 samples of 32 channels, 8 x 8, one thread: 167 ->
    88 µs against working the run out and clearing the wrapped columns row by row for every plane)."""
    plan = _shifted_plan(kh_size, kw_size, ph, pw, oh_size, ow_size, h_size, w_size)
    ohw = oh_size * ow_size
    width = nb * ohw
    plane_size = h_size * w_size
    planes = kh_size * kw_size
    for c in range(c_size):
        for q in range(planes):
            first, last, start, row_lo, row_hi, lo, hi = plan[q]
            for j in range(nb):
                d = uintp((c * planes + q) * width + j * ohw)
                for p in range(uintp(first)):
                    cf[d + p] = 0
                src, run = uintp(((n0 + j) * c_size + c) * plane_size + start), d + uintp(first)
                for t in range(uintp(last - first)):
                    cf[run + t] = xf[src + t]
                for p in range(uintp(last), uintp(ohw)):
                    cf[d + p] = 0
                _clear_wrapped(cf, d, row_lo, row_hi, lo, hi, ow_size)


@njit(inline="always", error_model="numpy")
def _cleared_plane(df, plane, plane_size):
    """Zero plane ``plane`` (sample * C + channel) of the flat input gradient; returns its first index."""
    pbase = uintp(plane * plane_size)
    for i in range(uintp(plane_size)):
        df[pbase + i] = 0
    return pbase


@njit(cache=True, error_model="numpy")
def _col2im_shifted(cf, n0, nb, c_size, kh_size, kw_size, ph, pw, oh_size, ow_size, h_size, w_size, df):
    """:func:`_col2im_chunk` of a "same" convolution of stride 1, on flat views: each (c, kh, kw) plane
    of a sample's columns, its wrapped columns cleared first (:func:`_shifted_plan`), added as one run
    into the sample's input plane."""
    plan = _shifted_plan(kh_size, kw_size, ph, pw, oh_size, ow_size, h_size, w_size)
    ohw = oh_size * ow_size
    width = nb * ohw
    plane_size = h_size * w_size
    planes = kh_size * kw_size
    for j in range(nb):
        for c in range(c_size):
            pbase = _cleared_plane(df, (n0 + j) * c_size + c, plane_size)
            for q in range(planes):  # first, apart from the adds: 1.15-1.3x faster
                first, last, start, row_lo, row_hi, lo, hi = plan[q]
                _clear_wrapped(cf, uintp((c * planes + q) * width + j * ohw), row_lo, row_hi, lo, hi, ow_size)
            for q in range(planes):
                first, last, start = plan[q, 0], plan[q, 1], plan[q, 2]
                dst, src = pbase + uintp(start), uintp((c * planes + q) * width + j * ohw + first)
                for t in range(uintp(last - first)):
                    df[dst + t] += cf[src + t]


@njit(cache=True, error_model="numpy")
def _im2col_unpadded(xf, n0, nb, c_size, h_size, w_size, kh_size, kw_size, oh_size, ow_size, cf):
    """:func:`_im2col_chunk` of a convolution of stride 1 without padding, on flat views: every output
    row reads one whole run of an input row, and the KW columns rows that read the same input row are
    written one after another while it is in cache (LeNet's second convolution, one sample: 29.6 ->
    11.2 µs against a columns row at a time)."""
    ohw = oh_size * ow_size
    width = nb * ohw
    for ckh in range(c_size * kh_size):
        c = ckh // kh_size
        kh = ckh - c * kh_size
        for j in range(nb):
            for oh in range(oh_size):
                s = uintp((((n0 + j) * c_size + c) * h_size + kh + oh) * w_size)
                for kw in range(kw_size):
                    d = uintp((ckh * kw_size + kw) * width + j * ohw + oh * ow_size)
                    src = s + uintp(kw)
                    for t in range(uintp(ow_size)):
                        cf[d + t] = xf[src + t]


@by_address
@njit(cache=True, error_model="numpy")
def _im2col_chunk(x, n0, nb, kh_size, kw_size, sh, sw, ph, pw, oh_size, ow_size, cols):
    """cols[(c*KH + kh)*KW + kw, (j*OH + oh)*OW + ow] = x[n0 + j, c, oh*sh - ph + kh, ow*sw - pw + kw]
    (zero outside x), for the nb samples n0..n0+nb-1: cols is (R, nb*OH*OW), C-contiguous.
    Each inner loop copies one run: a shifted plane for "same" convolutions of stride 1, else one
    output row's columns from one input row."""
    _, c_size, h_size, w_size = x.shape
    ohw = oh_size * ow_size
    width = nb * ohw
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    if sh == 1 and sw == 1 and ph == 0 and pw == 0:
        _im2col_unpadded(xf, n0, nb, c_size, h_size, w_size, kh_size, kw_size, oh_size, ow_size, cf)
        return
    if sh == 1 and sw == 1 and ow_size == w_size:
        _im2col_shifted(xf, n0, nb, c_size, kh_size, kw_size, ph, pw, oh_size, ow_size, h_size, w_size, cf)
        return
    for r in range(c_size * kh_size * kw_size):
        c, kh, kw = _patch_position(r, kh_size, kw_size)
        lo, hi = _valid_outputs(kw, sw, pw, ow_size, w_size)
        rbase = r * width
        for j in range(nb):
            pbase = ((n0 + j) * c_size + c) * h_size
            for oh in range(oh_size):
                ih = oh * sh - ph + kh
                d = uintp(rbase + j * ohw + oh * ow_size)
                if ih < 0 or ih >= h_size:
                    for ow in range(uintp(ow_size)):
                        cf[d + ow] = 0
                    continue
                for ow in range(uintp(lo)):
                    cf[d + ow] = 0
                s = (pbase + ih) * w_size - pw + kw  # below 0 when the row starts in the padding
                if sw == 1:
                    if hi > lo:  # a run from the first pixel read: no index below 0, even unsigned
                        src, dst = uintp(s + lo), d + uintp(lo)
                        for t in range(uintp(hi - lo)):
                            cf[dst + t] = xf[src + t]
                else:
                    for ow in range(uintp(lo), uintp(hi)):
                        cf[d + ow] = xf[uintp(s + ow * sw)]
                for ow in range(uintp(hi), uintp(ow_size)):
                    cf[d + ow] = 0


@njit(cache=True, error_model="numpy")
def _col2im_unpadded(cf, n0, nb, c_size, h_size, w_size, kh_size, kw_size, oh_size, ow_size, df):
    """:func:`_col2im_chunk` of a convolution of stride 1 without padding, on flat views: every
    output row adds one whole run into an input row, the KW columns rows that add into the same
    input row one after another. Each pixel's terms are added in the same (kh, kw) order as
    the general loop's."""
    ohw = oh_size * ow_size
    width = nb * ohw
    plane_size = h_size * w_size
    for j in range(nb):
        for c in range(c_size):
            pbase = _cleared_plane(df, (n0 + j) * c_size + c, plane_size)
            for kh in range(kh_size):
                for kw in range(kw_size):
                    src = uintp(((c * kh_size + kh) * kw_size + kw) * width + j * ohw)
                    dst = pbase + uintp(kh * w_size + kw)
                    for oh in range(uintp(oh_size)):
                        s, d = src + oh * uintp(ow_size), dst + oh * uintp(w_size)
                        for t in range(uintp(ow_size)):
                            df[d + t] += cf[s + t]


@by_address
@njit(cache=True, error_model="numpy")
def _col2im_chunk(cols, n0, nb, kh_size, kw_size, sh, sw, ph, pw, oh_size, ow_size, dx):
    """Adjoint of :func:`_im2col_chunk`: dx[n0:n0+nb] = the sum of the column entries that read
    each pixel (overwritten, starting from zero), added per sample, channel and (kh, kw) in that
    order. A shifted plane's wrapped columns are cleared in ``cols`` first (a workspace: they hold
    nothing that reaches dx)."""
    _, c_size, h_size, w_size = dx.shape
    ohw = oh_size * ow_size
    width = nb * ohw
    cf = cols.reshape(-1)
    df = dx.reshape(-1)
    if sh == 1 and sw == 1 and ph == 0 and pw == 0:
        _col2im_unpadded(cf, n0, nb, c_size, h_size, w_size, kh_size, kw_size, oh_size, ow_size, df)
        return
    if sh == 1 and sw == 1 and ow_size == w_size:
        _col2im_shifted(cf, n0, nb, c_size, kh_size, kw_size, ph, pw, oh_size, ow_size, h_size, w_size, df)
        return
    plane_size = h_size * w_size
    for j in range(nb):
        for c in range(c_size):
            pbase = ((n0 + j) * c_size + c) * plane_size
            for i in range(uintp(plane_size)):
                df[uintp(pbase) + i] = 0
            for kh in range(kh_size):
                for kw in range(kw_size):
                    lo, hi = _valid_outputs(kw, sw, pw, ow_size, w_size)
                    rbase = ((c * kh_size + kh) * kw_size + kw) * width + j * ohw
                    for oh in range(oh_size):
                        ih = oh * sh - ph + kh
                        if ih < 0 or ih >= h_size:
                            continue
                        s = uintp(rbase + oh * ow_size)
                        d = pbase + ih * w_size - pw + kw  # below 0 when the row starts in the padding
                        if sw == 1:
                            if hi > lo:  # as in _im2col_chunk: a run from the first pixel written
                                dst, src = uintp(d + lo), s + uintp(lo)
                                for t in range(uintp(hi - lo)):
                                    df[dst + t] += cf[src + t]
                        else:
                            for ow in range(uintp(lo), uintp(hi)):
                                df[uintp(d + ow * sw)] += cf[s + ow]


@njit(cache=True, error_model="numpy")
def _chunking(n_size, r_size, ohw):
    """How many chunks the batch runs in (:func:`_chunk_count`), and whether they share
    :data:`ROUND_CHUNKS` stretches of the workspaces (see :data:`KEPT_COLUMNS`); they do only when there
    are more than ROUND_CHUNKS chunks, so that ROUND_CHUNKS chunks of the largest size fit in the batch's."""
    n_chunks = _chunk_count(n_size, r_size, ohw)
    return n_chunks, n_chunks > ROUND_CHUNKS and n_size * r_size * ohw > KEPT_COLUMNS


@njit(cache=True, error_model="numpy")
def _chunk(cf, gf, k, n_chunks, n_size, ohw, r_size, o_size, shared):
    """Chunk k of n_chunks: its first sample n0, its nb samples (the batch split as evenly as it
    goes), and its stretches of the flat workspaces, its columns (R, nb*OHW) and GEMM block
    (O, nb*OHW): its own samples' stretches, or with ``shared`` (:func:`_chunking`) stretch
    k % ROUND_CHUNKS of ROUND_CHUNKS stretches as long as the longest chunk."""
    n0 = k * n_size // n_chunks
    nb = (k + 1) * n_size // n_chunks - n0
    at = (k % ROUND_CHUNKS) * ((n_size + n_chunks - 1) // n_chunks) if shared else n0
    width = nb * ohw
    colsc = cf[at * ohw * r_size:(at * ohw + width) * r_size].reshape(r_size, width)
    g = gf[at * ohw * o_size:(at * ohw + width) * o_size].reshape(o_size, width)
    return n0, nb, colsc, g


# Each chunk runs its whole pipeline on one thread (im2col, single-threaded BLAS, the copies out,
# col2im), its columns staying in that core's cache; the chunks run side by side in one ``prange``.
# The serial helpers are called by address (..calls): each is compiled once, on its own, rather than
# again inside every parallel body and function above it.


@by_address
@njit(cache=True, error_model="numpy", parallel=True)
def _forward_chunks(x, w2, bias, sh, sw, ph, pw, kh_size, kw_size, oh_size, ow_size, cf, gf, of, k0, count,
                    n_chunks, shared):
    """Chunks k0..k0+count-1, side by side on Numba's threads: its im2col into its columns, then
    W (O, R) @ cols_k straight into out[n] (+ bias) for a one-sample chunk, else into gemm_k, copied
    out per sample with the bias."""
    n_size = x.shape[0]
    o_size, r_size = w2.shape
    ohw = of.shape[2]
    for i in prange(count):
        k = k0 + i
        n0, nb, colsc, g = _chunk(cf, gf, k, n_chunks, n_size, ohw, r_size, o_size, shared)
        _im2col_chunk(x, n0, nb, kh_size, kw_size, sh, sw, ph, pw, oh_size, ow_size, colsc)
        if nb == 1:
            dst = of[n0]
            gemm_row_pieces(False, 1.0, w2, colsc, 0.0, dst)
            if bias.shape[0] > 0:
                for o in range(o_size):
                    row = dst[o]
                    for p in range(ohw):
                        row[p] += bias[o]
        else:
            gemm_row_pieces(False, 1.0, w2, colsc, 0.0, g)
            for j in range(nb):
                for o in range(o_size):
                    b = bias[o] if bias.shape[0] > 0 else 0
                    src = g[o, j * ohw:(j + 1) * ohw]
                    row = of[n0 + j, o]
                    for p in range(ohw):
                        row[p] = src[p] + b


@by_address
@njit(cache=True, error_model="numpy", parallel=True)
def _backward_chunks(x, w2, df, sh, sw, ph, pw, kh_size, kw_size, oh_size, ow_size, need_dx, cols_ready,
                     cf, gf, dx, partial, k0, count, n_chunks, shared):
    """Chunks k0..k0+count-1, side by side on Numba's threads: its columns (unless ``cols_ready``),
    dout_k in (O, nb*OHW) order (dout[n] itself for one sample, else copied into gemm_k), then
    partial[k % ROUND_CHUNKS] += cols_k @ dout_k.T (overwritten by the first chunk of each partial
    sum), and (need_dx) cols_k = W.T @ dout_k and col2im of it into dx of the chunk's samples."""
    n_size = x.shape[0]
    o_size, r_size = w2.shape
    ohw = df.shape[2]
    groups = partial.shape[0]
    # OpenBLAS's small-matrix kernels take cols_k @ dout_k.T only up to SMALL_TRANSPOSED_OUTPUTS entries;
    # by a transposed copy of dout_k they take it as cols_k @ dout_k^T (the resnet preset's 288 x 32 product
    # a sample 1.16x faster; whole backward passes of its and LeNet's convolutions 5-9%)
    transposed = small_kernels_in_use() and r_size * o_size > SMALL_TRANSPOSED_OUTPUTS
    for i in prange(count):
        k = k0 + i
        n0, nb, colsc, g = _chunk(cf, gf, k, n_chunks, n_size, ohw, r_size, o_size, shared)
        if not cols_ready:
            _im2col_chunk(x, n0, nb, kh_size, kw_size, sh, sw, ph, pw, oh_size, ow_size, colsc)
        if nb == 1:
            g = df[n0]
        else:
            for j in range(nb):
                for o in range(o_size):
                    src = df[n0 + j, o]
                    row = g[o, j * ohw:(j + 1) * ohw]
                    for p in range(ohw):
                        row[p] = src[p]
        if transposed:
            gemm_row_pieces(False, 1.0, colsc, np.ascontiguousarray(g.T), 0.0 if k < groups else 1.0,
                            partial[k % groups])
        else:
            blas_gemm(False, True, 1.0, colsc, g, 0.0 if k < groups else 1.0, partial[k % groups])
        if need_dx:
            gemm_row_pieces(True, 1.0, w2, g, 0.0, colsc)
            _col2im_chunk(colsc, n0, nb, kh_size, kw_size, sh, sw, ph, pw, oh_size, ow_size, dx)


@njit(cache=True, error_model="numpy")
def _conv_sizes(x, weight, y):
    """The sizes of a convolution of x (N, C, H, W) by weight (O, C, KH, KW) into y (N, O, OH, OW):
    N, O, KH, KW, OH, OW, OH*OW and R = C*KH*KW."""
    n_size, c_size, _, _ = x.shape
    o_size, _, kh_size, kw_size = weight.shape
    oh_size, ow_size = y.shape[2], y.shape[3]
    return n_size, o_size, kh_size, kw_size, oh_size, ow_size, oh_size * ow_size, c_size * kh_size * kw_size


@by_address
@njit(cache=True, error_model="numpy")
def _conv_forward_4d(x, weight, bias, sh, sw, ph, pw, cols, gemm, out):
    """All chunks of samples side by side (:func:`_forward_chunks`), in rounds of :data:`ROUND_CHUNKS`
    when they share stretches of the workspaces: im2col of each into its stretch of cols
    (R, nb*OHW), then W (O, R) @ cols into out (+ bias), through gemm for several samples."""
    n_size, o_size, kh_size, kw_size, oh_size, ow_size, ohw, r_size = _conv_sizes(x, weight, out)
    if winograd_applies(n_size, x.shape[1], o_size, kh_size, kw_size, sh, sw, oh_size, ow_size):
        winograd_forward(x, weight, bias, ph, pw, cols, gemm, out)
        return
    n_chunks, shared = _chunking(n_size, r_size, ohw)
    per_round = ROUND_CHUNKS if shared else max(1, n_chunks)
    for k0 in range(0, n_chunks, per_round):
        _forward_chunks(x, weight.reshape(o_size, r_size), bias, sh, sw, ph, pw, kh_size, kw_size, oh_size,
                        ow_size, cols.reshape(-1), gemm.reshape(-1), out.reshape(n_size, o_size, ohw), k0,
                        min(per_round, n_chunks - k0), n_chunks, shared)


@by_address
@njit(cache=True, error_model="numpy")
def _conv_backward_4d(x, weight, dout, sh, sw, ph, pw, need_dx, cols_ready, cols, gemm, dx,
                      dweight, dbias):
    """dbias from one pass over dout, then the chunks of samples in rounds of :data:`ROUND_CHUNKS`,
    each round's side by side (:func:`_backward_chunks`): the chunk's weight gradient into its
    partial sum and (need_dx) its dcols and col2im into dx. The partial sums are added into dweight
    at the end."""
    n_size, o_size, kh_size, kw_size, oh_size, ow_size, ohw, r_size = _conv_sizes(x, weight, dout)
    w2 = weight.reshape(o_size, r_size)
    dw2 = dweight.reshape(o_size, r_size)
    df = dout.reshape(n_size, o_size, ohw)
    if dbias.shape[0] > 0:
        _channel_sums(df, dbias)
    if winograd_applies(n_size, x.shape[1], o_size, kh_size, kw_size, sh, sw, oh_size, ow_size):
        winograd_backward(x, weight, dout, ph, pw, need_dx, cols_ready, cols, gemm, dx, dweight)
        return
    n_chunks, shared = _chunking(n_size, r_size, ohw)
    ready = cols_ready and not shared  # shared stretches hold the forward's last round only
    per_round = max(1, min(n_chunks, ROUND_CHUNKS))  # an empty batch has no chunk
    partial = np.empty((per_round, r_size, o_size), dw2.dtype)  # one partial sum (transposed) per chunk
    partial[0].fill(0)  # no chunk at all: a zero gradient
    for k0 in range(0, n_chunks, per_round):
        _backward_chunks(x, w2, df, sh, sw, ph, pw, kh_size, kw_size, oh_size, ow_size, need_dx, ready,
                         cols.reshape(-1), gemm.reshape(-1), dx, partial, k0, min(per_round, n_chunks - k0),
                         n_chunks, shared)
    add_in_chunk_order(partial)
    summed = partial[0]  # (R, O)
    for o in range(o_size):
        for r in range(r_size):
            dw2[o, r] = summed[r, o]


# ----------------------------------------------------------------------------------------------
# Public kernels
# ----------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def conv2d_forward(x, weight, bias, stride_h, stride_w, pad_h, pad_w, cols, gemm, out):
    """Conv2D forward (cross-correlation, as ``torch.nn.functional.conv2d``), overwriting ``out``.

    x       (N, C, H, W)
    weight  (O, C, KH, KW)
    bias    (O,), or shape (0,) for no bias
    stride_h, stride_w >= 1; pad_h, pad_w >= 0 (zero padding); ints
    cols    (N*OH*OW, C*KH*KW)   workspace, see :func:`conv2d_workspace_shapes`;
                                 left holding the im2col of x (see ``cols_ready`` below) when
                                 it fits :data:`KEPT_COLUMNS`, or Winograd's transformed x
    gemm    (O, N*OH*OW)         workspace
    out     (N, O, OH, OW), OH = (H + 2*pad_h - KH)//stride_h + 1, OW likewise
    All arrays C-contiguous and of one float dtype.
    """
    _conv_forward_4d(x, weight, bias, stride_h, stride_w, pad_h, pad_w, cols, gemm, out)


@njit(cache=True, error_model="numpy")
def conv2d_backward(x, weight, dout, stride_h, stride_w, pad_h, pad_w, need_dx, cols_ready,
                    cols, gemm, dx, dweight, dbias):
    """Conv2D backward: overwrites ``dx`` (when ``need_dx``), ``dweight`` and ``dbias``.

    x       (N, C, H, W)      the forward input
    weight  (O, C, KH, KW)
    dout    (N, O, OH, OW)    gradient of the loss w.r.t. the forward output
    stride_h, stride_w, pad_h, pad_w as in :func:`conv2d_forward`
    need_dx     bool: false leaves ``dx`` untouched and skips the dcols GEMM and col2im
                (a first layer needs no input gradient)
    cols_ready  bool: true only if ``cols`` still holds what :func:`conv2d_forward` left in it
                for this same ``x`` and options (saves one im2col pass); false rebuilds it, as
                does a batch beyond :data:`KEPT_COLUMNS`, whose forward keeps no columns
    cols    (N*OH*OW, C*KH*KW)   workspace; on return it holds dcols when need_dx, so a
                                 later call needs ``cols_ready=False``
    gemm    (O, N*OH*OW)         workspace
    dx      (N, C, H, W)
    dweight (O, C, KH, KW)
    dbias   (O,), or shape (0,) for no bias
    """
    _conv_backward_4d(x, weight, dout, stride_h, stride_w, pad_h, pad_w, need_dx, cols_ready,
                      cols, gemm, dx, dweight, dbias)


@njit(cache=True, error_model="numpy")
def conv1d_forward(x, weight, bias, stride, pad, cols, gemm, out):
    """Conv1D forward (as ``torch.nn.functional.conv1d``), overwriting ``out``.

    x       (N, C, L)
    weight  (O, C, K)
    bias    (O,), or shape (0,) for no bias
    stride >= 1, pad >= 0 (zero padding); ints
    cols    (N*OL, C*K)   workspace, see :func:`conv1d_workspace_shapes`
    gemm    (O, N*OL)     workspace
    out     (N, O, OL), OL = (L + 2*pad - K)//stride + 1
    Runs as a Conv2D with H = KH = 1 on reshaped views (no copies).
    """
    n, c, length = x.shape
    o, _, k = weight.shape
    ol = out.shape[2]
    # np.int64: a bare 1 or 0 would be typed as a literal and compile the 2-D core a second time
    _conv_forward_4d(x.reshape(n, c, 1, length), weight.reshape(o, c, 1, k), bias,
                     np.int64(1), stride, np.int64(0), pad, cols, gemm, out.reshape(n, o, 1, ol))


@njit(cache=True, error_model="numpy")
def conv1d_backward(x, weight, dout, stride, pad, need_dx, cols_ready, cols, gemm, dx, dweight,
                    dbias):
    """Conv1D backward: overwrites ``dx`` (when ``need_dx``), ``dweight`` and ``dbias``.

    x (N, C, L), weight (O, C, K), dout (N, O, OL); stride, pad as in :func:`conv1d_forward`;
    need_dx, cols_ready as in :func:`conv2d_backward`; cols (N*OL, C*K) and gemm (O, N*OL)
    workspaces; dx (N, C, L), dweight (O, C, K), dbias (O,) or shape (0,) for no bias.
    """
    n, c, length = x.shape
    o, _, k = weight.shape
    ol = dout.shape[2]
    _conv_backward_4d(x.reshape(n, c, 1, length), weight.reshape(o, c, 1, k), dout.reshape(n, o, 1, ol),
                      np.int64(1), stride, np.int64(0), pad, need_dx, cols_ready, cols, gemm,
                      dx.reshape(n, c, 1, length), dweight.reshape(o, c, 1, k), dbias)


# ----------------------------------------------------------------------------------------------
# ConvTranspose2D: the adjoint of a Conv2D, run on the same im2col / col2im / GEMM machinery
# ----------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def convtranspose2d_forward(x, weight, bias, stride_h, stride_w, pad_h, pad_w, cols, gemm, out):
    """ConvTranspose2D forward (as ``torch.nn.functional.conv_transpose2d``), overwriting ``out``.

    A transposed convolution's forward is a Conv2D's backward-data: with ``weight`` seen as the
    (C, O, KH, KW) weight of a Conv2D from ``out`` to ``x``, it is::

        gemm (C, P)  <- x in (C, P) order, P = N*H*W       (the layer input's pixels)
        cols (P, R)  =  gemm.T @ weight.reshape(C, R)       (one BLAS call, R = O*KH*KW)
        out          <- bias + col2im(cols)                 (parallel over n, no races)

    x       (N, C, H, W)
    weight  (C, O, KH, KW)       PyTorch's layout: in_channels first
    bias    (O,), or shape (0,) for no bias
    stride_h, stride_w >= 1; pad_h, pad_w >= 0; ints
    cols    (N*H*W, O*KH*KW)     workspace, see :func:`convtranspose2d_workspace_shapes`
    gemm    (C, N*H*W)           workspace; left holding x in (C, P) order (``gemm_ready``)
    out     (N, O, OH, OW), OH = (H - 1)*stride_h - 2*pad_h + KH + output_padding_h (the output
            padding, below the stride, is read from out's shape), OW likewise
    All arrays C-contiguous and of one float dtype.
    """
    n_size, c_size, h_size, w_size = x.shape
    _, o_size, kh_size, kw_size = weight.shape
    _nchw_to_gemm(x.reshape(n_size, c_size, h_size * w_size), gemm, bias[:0])
    np.dot(gemm.T, weight.reshape(c_size, o_size * kh_size * kw_size), cols)
    _col2im(cols, kh_size, kw_size, stride_h, stride_w, pad_h, pad_w, h_size, w_size, bias, out)


@njit(cache=True, error_model="numpy")
def convtranspose2d_backward(x, weight, dout, stride_h, stride_w, pad_h, pad_w, need_dx, gemm_ready,
                             cols, gemm, dx, dweight, dbias):
    """ConvTranspose2D backward: overwrites ``dx`` (when ``need_dx``), ``dweight`` and ``dbias``.

    The input gradient is a Conv2D forward of ``dout`` with the same weight, the weight gradient
    that Conv2D's weight gradient with the roles of input and output swapped::

        cols (P, R)  <- im2col(dout)                     (parallel over (n, h))
        dweight (C, R) = gemm (C, P) @ cols (P, R)       (one BLAS call; gemm holds x)
        gemm (C, P)  =  weight.reshape(C, R) @ cols.T    (one BLAS call, when need_dx)
        dx           <- gemm in NCHW order

    x       (N, C, H, W)      the forward input
    weight  (C, O, KH, KW)
    dout    (N, O, OH, OW)    gradient of the loss w.r.t. the forward output
    stride_h, stride_w, pad_h, pad_w as in :func:`convtranspose2d_forward`
    need_dx     bool: false leaves ``dx`` untouched and skips the second GEMM
    gemm_ready  bool: true only if ``gemm`` still holds what the forward left in it for this same
                ``x`` (saves one transposing copy); on return it holds dx in (C, P) order when
                ``need_dx``, so a later call needs ``gemm_ready=False``
    cols    (N*H*W, O*KH*KW)  workspace
    gemm    (C, N*H*W)        workspace
    dx      (N, C, H, W)
    dweight (C, O, KH, KW)
    dbias   (O,), or shape (0,) for no bias
    """
    n_size, c_size, h_size, w_size = x.shape
    _, o_size, kh_size, kw_size = weight.shape
    r_size = o_size * kh_size * kw_size
    _im2col(dout, kh_size, kw_size, stride_h, stride_w, pad_h, pad_w, h_size, w_size, cols)
    if not gemm_ready:
        _nchw_to_gemm(x.reshape(n_size, c_size, h_size * w_size), gemm, dbias[:0])
    np.dot(gemm, cols, dweight.reshape(c_size, r_size))
    if dbias.shape[0] > 0:
        _channel_sums(dout.reshape(n_size, o_size, dout.shape[2] * dout.shape[3]), dbias)
    if need_dx:
        np.dot(weight.reshape(c_size, r_size), cols.T, gemm)
        _gemm_to_nchw(gemm, dbias[:0], dx.reshape(n_size, c_size, h_size * w_size))
