"""Fused LSTM and GRU kernels: the whole sequence, forward and backward through time, in one call.

Batch-first (``x``: ``(N, T, I)``), PyTorch's parameter names, shapes, gate order and equations,
zero initial state. Each kernel does

* the input projection of all steps as one product, ``(N*T, I) @ W_ih^T``;
* per step one product ``h_{t-1} @ W_hh^T`` and one fused elementwise loop over the gates. The
  LSTM's accumulates straight into the step's slice of ``gates`` (``beta = 1``); the GRU's goes
  to ``gbuf``, since its candidate gate needs it apart. Both read ``h_{t-1}`` in place from
  ``hs`` (a row-strided view);
* in the backward, per step the product ``dgates_t @ W_hh`` (none at the first step, whose input
  state is zero), reading the step's slices in place; then ``dW_hh = dgates^T @ h_prev``, ``dW_ih``
  and, unless ``need_dx`` is false (a model's first layer), ``dx`` over all ``N*T`` rows (one product
  each: the first step's zero input state adds nothing to ``dW_hh``; a product per step, with an
  inner dimension of a half batch's rows, read and wrote ``dW_hh`` 40 times and took 730 against 650 µs
  for one thread's LSTM(16->128)).

The products are BLAS calls (:func:`nkernels.kernels.cpu.blas.gemm`): strided views and
accumulation without copies, cut into pieces small enough for OpenBLAS's small-matrix kernels
(:data:`~.blas.SMALL_PRODUCT`) where it runs them, which skip packing the operands; the forward
multiplies by transposed copies of the weights made once per call (OpenBLAS has no such kernel
for ``a @ b.T``).

Two threads share a pass when the calling thread has them (:func:`.threads.thread_count`) and the
pass has at least :data:`~.blas.SPLIT_MULTIPLY_ADDS` multiply-adds and two batch rows: the rows of a batch are independent through time, so each thread runs the time
loop, its GEMMs (single-threaded BLAS), its input gradient and its sums of the weight and bias
gradients for one half of the batch, with no hand-off between steps; the second half's sums are
then added to the first's (so the weight gradients' last bits may differ from one thread's).

The forward saves what the backward needs into caller-allocated workspaces (``hbuf`` and
``gbuf`` of the LSTM forward, ``hbuf`` of the GRU forward and ``gbuf`` of both backwards are
not used: the GEMMs read and write the sequence arrays in place; they stay in the signatures,
which the CUDA twins share). Shapes come from
:func:`lstm_workspace_shapes` / :func:`gru_workspace_shapes`; the names of the workspaces each
kernel takes, in order, are in ``LSTM_FORWARD_WORKSPACES`` etc. "Saved" workspaces carry state
from the forward to the backward; "scratch" ones carry nothing between calls and may be shared.

Sigmoid and tanh come from :mod:`.vecmath`, written out so that LLVM vectorizes the gate loops
(libm's scalar ``tanh`` is ~13 ns an element here).
"""
from numba import njit, prange

from ..calls import by_address
from .blas import SPLIT_MULTIPLY_ADDS, gemm_column_pieces, gemm_inner_pieces, gemm_row_pieces
from .avx512 import transposed
from .buffers import aligned_empty_like
from .vecmath import exp as _exp  # noqa: F401  (the tests check the approximations through this module)
from .vecmath import sigmoid as _sigmoid
from .vecmath import tanh as _tanh
from .threads import thread_count

# ----------------------------------------------------------------------------------------------
# workspace shapes (plain Python, for the caller)
# ----------------------------------------------------------------------------------------------

#: Workspaces ``lstm_forward`` takes, in order (the first three are saved for the backward).
LSTM_FORWARD_WORKSPACES = ("gates", "cells", "hprev", "hbuf", "gbuf")
#: Workspaces ``lstm_backward`` takes after its inputs, in order (all scratch).
LSTM_BACKWARD_WORKSPACES = ("dgates", "gbuf", "hbuf", "cbuf")
#: Workspaces ``gru_forward`` takes, in order (the first three are saved for the backward).
GRU_FORWARD_WORKSPACES = ("gates", "hn", "hprev", "hbuf", "gbuf")
#: Workspaces ``gru_backward`` takes after its inputs, in order (all scratch).
GRU_BACKWARD_WORKSPACES = ("dgates", "dgates_hh", "gbuf", "hbuf", "dhbuf")


def lstm_workspace_shapes(n, t, i, h):
    """Shapes of every LSTM workspace for batch ``n``, ``t`` steps, input ``i``, hidden ``h``.

    Saved by ``lstm_forward`` for ``lstm_backward``:

    * ``gates`` ``(n, t, 4h)``: activated gates i, f, g, o of every step;
    * ``cells`` ``(n, t+1, h)``: cell states c_0 (= 0) .. c_T;
    * ``hprev`` ``(n, t, h)``: hidden states h_0 (= 0) .. h_{T-1}, each step's input state.

    Scratch: ``hbuf`` ``(n, h)``, ``gbuf`` ``(n, 4h)``, ``cbuf`` ``(n, h)``, ``dgates`` ``(n, t, 4h)``.
    """
    return {
        "gates": (n, t, 4 * h),
        "cells": (n, t + 1, h),
        "hprev": (n, t, h),
        "hbuf": (n, h),
        "gbuf": (n, 4 * h),
        "dgates": (n, t, 4 * h),
        "cbuf": (n, h),
    }


def gru_workspace_shapes(n, t, i, h):
    """Shapes of every GRU workspace for batch ``n``, ``t`` steps, input ``i``, hidden ``h``.

    Saved by ``gru_forward`` for ``gru_backward``:

    * ``gates`` ``(n, t, 3h)``: activated gates r, z, n of every step;
    * ``hn`` ``(n, t, h)``: ``W_hn h_{t-1} + b_hn`` of every step;
    * ``hprev`` ``(n, t, h)``: hidden states h_0 (= 0) .. h_{T-1}.

    Scratch: ``hbuf`` ``(n, h)``, ``gbuf`` ``(n, 3h)``, ``dhbuf`` ``(n, h)``,
    ``dgates`` and ``dgates_hh`` ``(n, t, 3h)``.
    """
    return {
        "gates": (n, t, 3 * h),
        "hn": (n, t, h),
        "hprev": (n, t, h),
        "hbuf": (n, h),
        "gbuf": (n, 3 * h),
        "dgates": (n, t, 3 * h),
        "dgates_hh": (n, t, 3 * h),
        "dhbuf": (n, h),
    }


_JIT = dict(cache=True, error_model="numpy")  # numpy error model: no zero checks, loops vectorize
_PARALLEL_JIT = dict(_JIT, parallel=True)


# ----------------------------------------------------------------------------------------------
# small loops shared by the kernels
#
# The gate math is split into loops that touch few arrays each: LLVM vectorizes a loop only if
# its runtime alias checks between the arrays it writes and the others stay few (about 8).
# ----------------------------------------------------------------------------------------------


@njit(**_JIT)
def _copy(src, dst):
    for j in range(src.shape[0]):
        dst[j] = src[j]


@njit(**_JIT)
def _sigmoid_biased(g, bs, lo, hi):
    """``g[j] = sigmoid(g[j] + bs[j])`` for lo <= j < hi."""
    g, bs = g[lo:hi], bs[lo:hi]  # j >= 0: no wraparound
    for j in range(g.shape[0]):
        g[j] = _sigmoid(g[j] + bs[j])


@njit(**_JIT)
def _tanh_biased(g, bs, lo, hi):
    """``g[j] = tanh(g[j] + bs[j])`` for lo <= j < hi."""
    g, bs = g[lo:hi], bs[lo:hi]
    for j in range(g.shape[0]):
        g[j] = _tanh(g[j] + bs[j])


@njit(**_JIT)
def _sigmoid_inplace(g, rc, bi, bh, lo, hi):
    """``g[j] = sigmoid(g[j] + rc[j] + bi[j] + bh[j])`` for lo <= j < hi."""
    g, rc, bi, bh = g[lo:hi], rc[lo:hi], bi[lo:hi], bh[lo:hi]  # j >= 0: no wraparound
    for j in range(g.shape[0]):
        g[j] = _sigmoid(g[j] + rc[j] + bi[j] + bh[j])


@njit(**_JIT)
def _column_sums(a, out):
    """``out[j] = sum_i a[i, j]``, accumulated row by row so the column loop vectorizes."""
    for j in range(a.shape[1]):
        out[j] = 0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[j] += a[i, j]


# ----------------------------------------------------------------------------------------------
# LSTM
# ----------------------------------------------------------------------------------------------


@njit(**_JIT)
def _lstm_cell(gt, cp, cn, hb, h):
    """From activated gates: ``c = f c_prev + i g`` into cn, ``h = o tanh(c)`` into hb."""
    for j in range(h):
        c = gt[h + j] * cp[j] + gt[j] * gt[2 * h + j]
        cn[j] = c
        hb[j] = gt[3 * h + j] * _tanh(c)


@njit(**_JIT)
def _lstm_cell_backward(gt, cp, cn, dh, dc, gb, h):
    """dh: total gradient w.r.t. h_t; dc: carried gradient w.r.t. c_t, updated to c_{t-1}.

    Writes the gradient w.r.t. the gate pre-activations into gb (4h).
    """
    one = gt.dtype.type(1)
    for j in range(h):
        og = gt[3 * h + j]
        tc = _tanh(cn[j])
        d = dh[j]
        dc[j] += d * og * (one - tc * tc)
        gb[3 * h + j] = d * tc * og * (one - og)
    for j in range(h):
        ig = gt[j]
        fg = gt[h + j]
        gg = gt[2 * h + j]
        d = dc[j]
        gb[j] = d * gg * ig * (one - ig)
        gb[h + j] = d * cp[j] * fg * (one - fg)
        gb[2 * h + j] = d * ig * (one - gg * gg)
        dc[j] = d * fg


@njit(**_PARALLEL_JIT)
def lstm_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, gates, cells, hprev, hbuf, gbuf, hs):
    """LSTM over a whole sequence, zero initial state.

    x ``(N, T, I)``; weight_ih ``(4H, I)``; weight_hh ``(4H, H)``; bias_ih, bias_hh ``(4H,)``;
    workspaces as in :func:`lstm_workspace_shapes` (gates, cells, hprev saved for the
    backward; hbuf, gbuf scratch); writes hs ``(N, T, H)``, the hidden state of every step.
    The two halves of the batch run side by side (see the module's docstring).
    """
    n, t, ni = x.shape
    parts = _parts(n, t, ni, weight_hh.shape[0], weight_hh.shape[1])
    size = (n + parts - 1) // parts
    weight_ih_t, weight_hh_t = transposed(weight_ih), transposed(weight_hh)
    for p in prange(parts):  # the rows are called by address: their code is compiled once, on its own
        lo, hi = p * size, min(n, p * size + size)
        _lstm_forward_rows(x[lo:hi], weight_ih_t, weight_hh_t, bias_ih, bias_hh, gates[lo:hi], cells[lo:hi],
                           hprev[lo:hi], hbuf[lo:hi], gbuf[lo:hi], hs[lo:hi])


@by_address
@njit(**_JIT)
def _lstm_forward_rows(x, weight_ih_t, weight_hh_t, bias_ih, bias_hh, gates, cells, hprev, hbuf, gbuf, hs):
    """:func:`lstm_forward` on one thread, for the batch rows it is given; ``weight_ih_t`` and
    ``weight_hh_t`` are W_ih.T (I, 4H) and W_hh.T (H, 4H), C-contiguous."""
    n, t, ni = x.shape
    h = weight_hh_t.shape[0]
    g4 = 4 * h
    bs = bias_ih + bias_hh
    one, zero = bs.dtype.type(1), bs.dtype.type(0)
    # Input projection of every step at once, straight into the gate workspace.
    gemm_row_pieces(False, one, x.reshape(n * t, ni), weight_ih_t, zero, gates.reshape(n * t, g4))
    cells[:, 0, :] = 0
    if t > 0:  # a sequence of no steps has no first input state (hprev is (n, 0, h))
        hprev[:, 0, :] = 0
    for s in range(t):
        if s > 0:  # h_0 = 0: no recurrent term at the first step
            gemm_column_pieces(one, hs[:, s - 1, :], weight_hh_t, one, gates[:, s, :])
        for b in range(n):
            gt = gates[b, s]
            _sigmoid_biased(gt, bs, 0, 2 * h)
            _tanh_biased(gt, bs, 2 * h, 3 * h)
            _sigmoid_biased(gt, bs, 3 * h, g4)
            if s > 0:
                _copy(hs[b, s - 1], hprev[b, s])
            _lstm_cell(gt, cells[b, s], cells[b, s + 1], hs[b, s], h)


@njit(**_PARALLEL_JIT)
def lstm_backward(x, weight_ih, weight_hh, gates, cells, hprev, dhs, need_dx,
                  dgates, gbuf, hbuf, cbuf,
                  dx, dweight_ih, dweight_hh, dbias_ih, dbias_hh):
    """Backward through time of :func:`lstm_forward`.

    Inputs: x, weight_ih, weight_hh as in the forward; gates, cells, hprev as the forward saved
    them; dhs ``(N, T, H)``, the gradient w.r.t. every step's hidden output. Scratch: dgates
    ``(N, T, 4H)``, gbuf ``(N, 4H)``, hbuf, cbuf ``(N, H)``. Overwrites dx ``(N, T, I)`` (only when
    ``need_dx``: a model's first layer has no use for it), dweight_ih ``(4H, I)``, dweight_hh
    ``(4H, H)``, dbias_ih, dbias_hh ``(4H,)``.
    The two halves of the batch run side by side through time, then the two halves of the
    gates' rows of the weight gradients (see the module's docstring).
    """
    n, t, ni = x.shape
    parts = _parts(n, t, ni, weight_hh.shape[0], weight_hh.shape[1])
    size = (n + parts - 1) // parts
    into_ih, into_hh, into_b = _second_sums(dweight_ih, dweight_hh, dbias_ih, parts)
    for p in prange(parts):
        lo, hi = p * size, min(n, p * size + size)
        _lstm_backward_rows(x[lo:hi], weight_ih, weight_hh, gates[lo:hi], cells[lo:hi], hprev[lo:hi],
                            dhs[lo:hi], need_dx, dgates[lo:hi], hbuf[lo:hi], cbuf[lo:hi], dx[lo:hi],
                            into_ih[p], into_hh[p], into_b[p])
    if parts == 2:
        _add_second_sums(into_ih, into_hh, into_b)
    dbias_hh[:] = dbias_ih


@by_address
@njit(**_JIT)
def _lstm_backward_rows(x, weight_ih, weight_hh, gates, cells, hprev, dhs, need_dx, dgates, hbuf, cbuf, dx,
                        dweight_ih, dweight_hh, dbias):
    """:func:`lstm_backward` on one thread for the batch rows it is given: their sums of the weight
    and bias gradients go to ``dweight_ih``, ``dweight_hh`` and ``dbias``."""
    n, t, ni = x.shape
    h = weight_hh.shape[1]
    one, zero = x.dtype.type(1), x.dtype.type(0)
    hbuf[:] = 0  # gradient w.r.t. h flowing back through W_hh
    cbuf[:] = 0  # gradient w.r.t. c flowing back through the forget gate
    for s in range(t - 1, -1, -1):
        for b in range(n):
            dh = hbuf[b]
            dho = dhs[b, s]
            for j in range(h):
                dh[j] += dho[j]
            _lstm_cell_backward(gates[b, s], cells[b, s], cells[b, s + 1], dh, cbuf[b], dgates[b, s], h)
        if s > 0:
            gemm_inner_pieces(one, dgates[:, s, :], weight_hh, hbuf)
    rows = n * t
    dg2 = dgates.reshape(rows, dgates.shape[2])
    gemm_row_pieces(True, one, dg2, hprev.reshape(rows, h), zero, dweight_hh)
    gemm_row_pieces(True, one, dg2, x.reshape(rows, ni), zero, dweight_ih)
    if need_dx:
        gemm_row_pieces(False, one, dg2, weight_ih, zero, dx.reshape(rows, ni))
    _column_sums(dg2, dbias)


# ----------------------------------------------------------------------------------------------
# GRU
# ----------------------------------------------------------------------------------------------


@njit(**_JIT)
def _gru_candidate(gt, rc, bi, bh, hl, h):
    """``n = tanh(x_n + b_in + r * (W_hn h + b_hn))`` into gt[2h:3h]; saves the bracket in hl."""
    for j in range(h):
        hnl = rc[2 * h + j] + bh[2 * h + j]
        hl[j] = hnl
        gt[2 * h + j] = _tanh(gt[2 * h + j] + bi[2 * h + j] + gt[j] * hnl)


@njit(**_JIT)
def _gru_update(gt, hp, hn, h):
    """``h = (1 - z) n + z h_prev`` from hp into hn."""
    one = gt.dtype.type(1)
    for j in range(h):
        z = gt[h + j]
        hn[j] = (one - z) * gt[2 * h + j] + z * hp[j]


@njit(**_JIT)
def _gru_cell_backward(gt, hl, hp, dh, dhd, gb, dgn, h):
    """dh: total gradient w.r.t. h_t. Writes the h_{t-1} gradient through z into dhd, the
    W_hh-side pre-activation gradients (r, z, r * n) into gb and the n one into dgn."""
    one = gt.dtype.type(1)
    for j in range(h):
        z = gt[h + j]
        d = dh[j]
        dhd[j] = d * z
        gb[h + j] = d * (hp[j] - gt[2 * h + j]) * z * (one - z)
    for j in range(h):
        r = gt[j]
        z = gt[h + j]
        nn = gt[2 * h + j]
        dn = dh[j] * (one - z) * (one - nn * nn)
        dgn[j] = dn
        gb[j] = dn * hl[j] * r * (one - r)
        gb[2 * h + j] = dn * r


@njit(**_PARALLEL_JIT)
def gru_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, gates, hn, hprev, hbuf, gbuf, hs):
    """GRU over a whole sequence, zero initial state (PyTorch's equations).

    x ``(N, T, I)``; weight_ih ``(3H, I)``; weight_hh ``(3H, H)``; bias_ih, bias_hh ``(3H,)``;
    workspaces as in :func:`gru_workspace_shapes` (gates, hn, hprev saved for the backward;
    hbuf, gbuf scratch); writes hs ``(N, T, H)``. The two halves of the batch run side by side.
    """
    n, t, ni = x.shape
    parts = _parts(n, t, ni, weight_hh.shape[0], weight_hh.shape[1])
    size = (n + parts - 1) // parts
    weight_ih_t, weight_hh_t = transposed(weight_ih), transposed(weight_hh)
    for p in prange(parts):
        lo, hi = p * size, min(n, p * size + size)
        _gru_forward_rows(x[lo:hi], weight_ih_t, weight_hh_t, bias_ih, bias_hh, gates[lo:hi], hn[lo:hi],
                          hprev[lo:hi], hbuf[lo:hi], gbuf[lo:hi], hs[lo:hi])


@by_address
@njit(**_JIT)
def _gru_forward_rows(x, weight_ih_t, weight_hh_t, bias_ih, bias_hh, gates, hn, hprev, hbuf, gbuf, hs):
    """:func:`gru_forward` on one thread, for the batch rows it is given; ``weight_ih_t`` and
    ``weight_hh_t`` are W_ih.T (I, 3H) and W_hh.T (H, 3H), C-contiguous."""
    n, t, ni = x.shape
    h = weight_hh_t.shape[0]
    g3 = 3 * h
    one, zero = x.dtype.type(1), x.dtype.type(0)
    gemm_row_pieces(False, one, x.reshape(n * t, ni), weight_ih_t, zero, gates.reshape(n * t, g3))
    gbuf[:] = 0  # h_0 = 0: no recurrent term at the first step
    if t > 0:  # a sequence of no steps has no first input state (hprev is (n, 0, h))
        hprev[:, 0, :] = 0
    for s in range(t):
        if s > 0:
            gemm_column_pieces(one, hs[:, s - 1, :], weight_hh_t, zero, gbuf)
        for b in range(n):
            gt = gates[b, s]
            hp = hprev[b, s]
            _sigmoid_inplace(gt, gbuf[b], bias_ih, bias_hh, 0, 2 * h)
            _gru_candidate(gt, gbuf[b], bias_ih, bias_hh, hn[b, s], h)
            if s > 0:
                _copy(hs[b, s - 1], hp)
            _gru_update(gt, hp, hs[b, s], h)


@njit(**_PARALLEL_JIT)
def gru_backward(x, weight_ih, weight_hh, gates, hn, hprev, dhs, need_dx,
                 dgates, dgates_hh, gbuf, hbuf, dhbuf,
                 dx, dweight_ih, dweight_hh, dbias_ih, dbias_hh):
    """Backward through time of :func:`gru_forward`.

    Inputs: x, weight_ih, weight_hh as in the forward; gates, hn, hprev as the forward saved
    them; dhs ``(N, T, H)``. Scratch: dgates, dgates_hh ``(N, T, 3H)``, gbuf ``(N, 3H)``,
    hbuf, dhbuf ``(N, H)``. Overwrites dx ``(N, T, I)`` (only when ``need_dx``), dweight_ih
    ``(3H, I)``, dweight_hh ``(3H, H)``, dbias_ih, dbias_hh ``(3H,)``. The two halves of the batch run side
    by side through time, then the two halves of the gates' rows of the weight gradients.
    """
    n, t, ni = x.shape
    parts = _parts(n, t, ni, weight_hh.shape[0], weight_hh.shape[1])
    size = (n + parts - 1) // parts
    into_ih, into_hh, into_bih = _second_sums(dweight_ih, dweight_hh, dbias_ih, parts)
    into_bhh = (dbias_hh, aligned_empty_like(dbias_hh) if parts == 2 else dbias_hh)
    for p in prange(parts):
        lo, hi = p * size, min(n, p * size + size)
        _gru_backward_rows(x[lo:hi], weight_ih, weight_hh, gates[lo:hi], hn[lo:hi], hprev[lo:hi], dhs[lo:hi],
                           need_dx, dgates[lo:hi], dgates_hh[lo:hi], hbuf[lo:hi], dhbuf[lo:hi], dx[lo:hi],
                           into_ih[p], into_hh[p], into_bih[p], into_bhh[p])
    if parts == 2:
        _add_second_sums(into_ih, into_hh, into_bih)
        _add_into(into_bhh[0], into_bhh[1])


@by_address
@njit(**_JIT)
def _gru_backward_rows(x, weight_ih, weight_hh, gates, hn, hprev, dhs, need_dx, dgates, dgates_hh, hbuf, dhbuf,
                       dx, dweight_ih, dweight_hh, dbias_ih, dbias_hh):
    """:func:`gru_backward` on one thread for the batch rows it is given: their sums of the weight
    and bias gradients go to ``dweight_ih``, ``dweight_hh``, ``dbias_ih`` and ``dbias_hh``."""
    n, t, ni = x.shape
    h = weight_hh.shape[1]
    g3 = 3 * h
    one, zero = x.dtype.type(1), x.dtype.type(0)
    hbuf[:] = 0   # gradient w.r.t. h flowing back through W_hh
    dhbuf[:] = 0  # gradient w.r.t. h flowing back through z * h
    for s in range(t - 1, -1, -1):
        for b in range(n):
            dh = hbuf[b]
            dho = dhs[b, s]
            dhd = dhbuf[b]
            for j in range(h):
                dh[j] += dho[j] + dhd[j]
            gb = dgates_hh[b, s]
            dgi = dgates[b, s]
            _gru_cell_backward(gates[b, s], hn[b, s], hprev[b, s], dh, dhd, gb, dgi[2 * h:], h)
            _copy(gb[:2 * h], dgi[:2 * h])
        if s > 0:
            gemm_inner_pieces(one, dgates_hh[:, s, :], weight_hh, hbuf)
    rows = n * t
    dgi2 = dgates.reshape(rows, g3)
    dgh2 = dgates_hh.reshape(rows, g3)
    gemm_row_pieces(True, one, dgh2, hprev.reshape(rows, h), zero, dweight_hh)
    gemm_row_pieces(True, one, dgi2, x.reshape(rows, ni), zero, dweight_ih)
    if need_dx:
        gemm_row_pieces(False, one, dgi2, weight_ih, zero, dx.reshape(rows, ni))
    _column_sums(dgi2, dbias_ih)
    _column_sums(dgh2, dbias_hh)


# ----------------------------------------------------------------------------------------------
# both cells
# ----------------------------------------------------------------------------------------------


@njit(**_JIT)
def _parts(n, t, i, g, h):
    """Into how many runs of batch rows a cell's pass is cut, one a thread: 1 with one thread to run
    on, a batch of one row or too little work to share; else 2."""
    return 1 if n < 2 or n * t * g * (i + h) < SPLIT_MULTIPLY_ADDS or thread_count() < 2 else 2


@njit(**_JIT)
def _second_sums(dweight_ih, dweight_hh, dbias, parts):
    """Where each run of batch rows sums its weight and bias gradients: the first into the outputs,
    the second (when ``parts`` is 2) into new arrays, added by :func:`_add_second_sums`."""
    if parts == 1:
        return (dweight_ih, dweight_ih), (dweight_hh, dweight_hh), (dbias, dbias)
    return ((dweight_ih, aligned_empty_like(dweight_ih)), (dweight_hh, aligned_empty_like(dweight_hh)),
            (dbias, aligned_empty_like(dbias)))


@njit(**_JIT)
def _add_second_sums(into_ih, into_hh, into_b):
    """Add the second half's sums into the first's (the outputs)."""
    _add_into(into_ih[0], into_ih[1])
    _add_into(into_hh[0], into_hh[1])
    _add_into(into_b[0], into_b[1])


@njit(**_JIT)
def _add_into(total, part):
    """``total += part`` elementwise (C-contiguous arrays of one shape)."""
    total, part = total.reshape(-1), part.reshape(-1)
    for j in range(total.shape[0]):
        total[j] += part[j]
