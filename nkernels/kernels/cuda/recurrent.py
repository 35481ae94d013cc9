"""Fused LSTM and GRU kernels on the GPU: CUDA twins of :mod:`nkernels.kernels.cpu.recurrent`.

Same names, signatures, workspaces and equations (batch-first, PyTorch's gate order, zero
initial state); device arrays in place of NumPy arrays. The workspace shapes and name lists
are the CPU module's, re-exported. Per call:

* the input projection of all steps, ``(N*T, I) @ W_ih^T``, as one tiled GEMM into ``gates``;
* per step, one GEMM for the recurrent term and one fused kernel over the ``N x H`` cells (one
  thread per ``(n, j)``: biases, the gate activations, the cell update, and the saved state).
  The LSTM's recurrent GEMM accumulates straight into the step's slice of ``gates``
  (``beta = 1``); the GRU's goes to ``gbuf``, since its candidate gate needs it apart. Both
  read ``h_{t-1}`` from ``hs`` in place (a strided slice: offset and leading dimension);
* in the backward, per step one fused cell kernel and one GEMM ``dgates_t @ W_hh``; then
  ``dW_ih``, ``dW_hh`` (split along the long ``N*T`` dimension) and ``dx`` as single GEMMs, and
  the bias gradients as column sums.

``hbuf`` and ``gbuf`` of the LSTM forward are not used (no host-side copies are needed on the
device); the other scratch workspaces carry what the CPU kernels carry. The activations use
CUDA's ``expf``/``tanhf`` (or the float64 versions): the CPU kernels' own polynomial
approximations differ from them by a few ulp.
"""
import math

from numba import cuda

from ..cpu.recurrent import (  # noqa: F401  (pure-Python workspace helpers, shared with the CPU)
    GRU_BACKWARD_WORKSPACES, GRU_FORWARD_WORKSPACES, LSTM_BACKWARD_WORKSPACES,
    LSTM_FORWARD_WORKSPACES, gru_workspace_shapes, lstm_workspace_shapes,
)
from .gemm import column_sums, gemm
from .reshape import copy_flat
from .launch import as_device_array, flat_view, grid_stride


__all__ = ["lstm_forward", "lstm_backward", "gru_forward", "gru_backward",
           "lstm_workspace_shapes", "gru_workspace_shapes", "LSTM_FORWARD_WORKSPACES",
           "LSTM_BACKWARD_WORKSPACES", "GRU_FORWARD_WORKSPACES", "GRU_BACKWARD_WORKSPACES"]


@cuda.jit(device=True, inline="always")
def _sig(v, one):
    return one / (one + math.exp(-v))


@cuda.jit(device=True, inline="always")
def _unit_of(q, h, t_size, s, gate_width):
    """Thread item ``q`` of a step's (N, H) grid: its sample ``b``, its hidden unit ``j`` and the flat
    index of its first gate at step ``s`` in the (N, T, gate_width) gate array."""
    b = q // h
    j = q - b * h
    return b, j, (b * t_size + s) * gate_width + j


# ----------------------------------------------------------------------------------------------
# LSTM
# ----------------------------------------------------------------------------------------------
@cuda.jit(cache=True)
def _lstm_cell(gf, bi, bh, cf, hpf, hsf, n_size, t_size, h, s):
    """Step s: gates[b, s] holds x W_ih^T + h_{s-1} W_hh^T; activate in place, then
    c_{s+1} = f c_s + i g, h = o tanh(c); save h_{s-1} in hprev[b, s], h in hs[b, s]."""
    one = gf.dtype.type(1)
    zero = gf.dtype.type(0)
    g4 = 4 * h
    for q in range(cuda.grid(1), n_size * h, cuda.gridsize(1)):
        b, j, gb = _unit_of(q, h, t_size, s, g4)
        ig = _sig(gf[gb] + bi[j] + bh[j], one)
        fg = _sig(gf[gb + h] + bi[h + j] + bh[h + j], one)
        gg = math.tanh(gf[gb + 2 * h] + bi[2 * h + j] + bh[2 * h + j])
        og = _sig(gf[gb + 3 * h] + bi[3 * h + j] + bh[3 * h + j], one)
        gf[gb] = ig
        gf[gb + h] = fg
        gf[gb + 2 * h] = gg
        gf[gb + 3 * h] = og
        cb = (b * (t_size + 1) + s) * h + j
        if s == 0:
            cp = zero
            hp = zero
            cf[cb] = zero  # c_0
        else:
            cp = cf[cb]
            hp = hsf[(b * t_size + s - 1) * h + j]
        c = fg * cp + ig * gg
        cf[cb + h] = c
        hpf[(b * t_size + s) * h + j] = hp
        hsf[(b * t_size + s) * h + j] = og * math.tanh(c)


@cuda.jit(cache=True)
def _lstm_cell_backward(gf, cf, dhsf, dgf, hbf, cbf, n_size, t_size, h, s, first):
    """Step s backward: dh = hbuf + dhs[:, s]; gate pre-activation gradients into dgates[:, s];
    cbuf carries dL/dc back through the forget gate (hbuf and cbuf read as 0 when ``first``)."""
    one = gf.dtype.type(1)
    g4 = 4 * h
    for q in range(cuda.grid(1), n_size * h, cuda.gridsize(1)):
        b, j, gb = _unit_of(q, h, t_size, s, g4)
        ig = gf[gb]
        fg = gf[gb + h]
        gg = gf[gb + 2 * h]
        og = gf[gb + 3 * h]
        cb = (b * (t_size + 1) + s) * h + j
        cp = cf[cb]
        tc = math.tanh(cf[cb + h])
        d = dhsf[(b * t_size + s) * h + j]
        if first:
            dc = gf.dtype.type(0)
        else:
            dc = cbf[q]
            d = hbf[q] + d
        dc += d * og * (one - tc * tc)
        dgf[gb + 3 * h] = d * tc * og * (one - og)
        dgf[gb] = dc * gg * ig * (one - ig)
        dgf[gb + h] = dc * cp * fg * (one - fg)
        dgf[gb + 2 * h] = dc * ig * (one - gg * gg)
        cbf[q] = dc * fg


def _dev(arrays):
    return [as_device_array(a) for a in arrays]


def _input_projection(x, weight_ih, gates, n, t, ni, gsize):
    # gates (N*T, G) = x (N*T, I) @ W_ih^T
    gemm(flat_view(x), flat_view(weight_ih), flat_view(gates), n * t, gsize, ni, a_kcontig=True, b_kcontig=True,
         lda=ni, ldb=ni, ldc=gsize)


def _weight_grads(x, weight_ih, hprev, dgi, dgh, need_dx, dx, dweight_ih, dweight_hh, n, t, ni, h, gsize):
    rows = n * t
    fgi, fgh = flat_view(dgi), flat_view(dgh)
    # dW_ih (G, I) = dg^T (G, rows) @ x (rows, I); dW_hh (G, H) = dgh^T @ hprev (rows, H)
    gemm(fgi, flat_view(x), flat_view(dweight_ih), gsize, ni, rows, a_kcontig=False, b_kcontig=False,
         lda=gsize, ldb=ni, ldc=ni)
    gemm(fgh, flat_view(hprev), flat_view(dweight_hh), gsize, h, rows, a_kcontig=False, b_kcontig=False,
         lda=gsize, ldb=h, ldc=h)
    if need_dx:  # dx (rows, I) = dg (rows, G) @ W_ih (G, I)
        gemm(fgi, flat_view(weight_ih), flat_view(as_device_array(dx, "dx")), rows, ni, gsize, a_kcontig=True,
             b_kcontig=False, lda=gsize, ldb=ni, ldc=ni)


def lstm_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, gates, cells, hprev, hbuf, gbuf, hs):
    """LSTM over a whole sequence, zero initial state (arguments as the CPU kernel's).

    x (N, T, I); weight_ih (4H, I); weight_hh (4H, H); bias_ih, bias_hh (4H,); gates, cells,
    hprev saved for the backward; hbuf, gbuf unused here; writes hs (N, T, H).
    """
    x, weight_ih, weight_hh, bias_ih, bias_hh, gates, cells, hprev, hs = _dev(
        (x, weight_ih, weight_hh, bias_ih, bias_hh, gates, cells, hprev, hs))
    n, t, ni = x.shape
    h = weight_hh.shape[1]
    g4 = 4 * h
    _input_projection(x, weight_ih, gates, n, t, ni, g4)
    fg, fc, fhp, fhs, fw = flat_view(gates), flat_view(cells), flat_view(hprev), flat_view(hs), flat_view(weight_hh)
    blocks, threads = grid_stride(n * h, per_thread=1)
    for s in range(t):
        if s > 0:
            # gates[:, s] += h_{s-1} (N, H) @ W_hh^T, h_{s-1} read in place from hs[:, s-1]
            gemm(fhs, fw, fg, n, g4, h, a_kcontig=True, b_kcontig=True, lda=t * h, ldb=h,
                 ldc=t * g4, a_off=(s - 1) * h, c_off=s * g4, beta=True)
        _lstm_cell[blocks, threads](fg, bias_ih, bias_hh, fc, fhp, fhs, n, t, h, s)


def lstm_backward(x, weight_ih, weight_hh, gates, cells, hprev, dhs, need_dx,
                  dgates, gbuf, hbuf, cbuf,
                  dx, dweight_ih, dweight_hh, dbias_ih, dbias_hh):
    """Backward through time of :func:`lstm_forward` (arguments as the CPU kernel's).

    Overwrites dx (N, T, I) (only when ``need_dx``), dweight_ih (4H, I), dweight_hh (4H, H), dbias_ih,
    dbias_hh (4H,).
    Scratch: dgates (N, T, 4H), hbuf, cbuf (N, H); gbuf is not used.
    """
    (x, weight_ih, weight_hh, gates, cells, hprev, dhs, dgates, hbuf, cbuf, dweight_ih,
     dweight_hh, dbias_ih, dbias_hh) = _dev(
        (x, weight_ih, weight_hh, gates, cells, hprev, dhs, dgates, hbuf, cbuf, dweight_ih,
         dweight_hh, dbias_ih, dbias_hh))
    n, t, ni = x.shape
    h = weight_hh.shape[1]
    g4 = 4 * h
    fg, fc, fdh, fdg, fhb, fcb = map(flat_view, (gates, cells, dhs, dgates, hbuf, cbuf))
    fw = flat_view(weight_hh)
    blocks, threads = grid_stride(n * h, per_thread=1)
    for s in range(t - 1, -1, -1):
        _lstm_cell_backward[blocks, threads](fg, fc, fdh, fdg, fhb, fcb, n, t, h, s, s == t - 1)
        if s > 0:
            # hbuf (N, H) = dgates[:, s] (N, 4H) @ W_hh (4H, H)
            gemm(fdg, fw, fhb, n, h, g4, a_kcontig=True, b_kcontig=False, lda=t * g4, ldb=h,
                 ldc=h, a_off=s * g4)
    _weight_grads(x, weight_ih, hprev, dgates, dgates, need_dx, dx, dweight_ih, dweight_hh, n, t, ni, h, g4)
    column_sums(fdg, n * t, g4, g4, dbias_ih)
    copy_flat(dbias_ih, dbias_hh)  # the two LSTM biases get the same gradient


# ----------------------------------------------------------------------------------------------
# GRU
# ----------------------------------------------------------------------------------------------
@cuda.jit(cache=True)
def _gru_cell(gf, rcf, bi, bh, hnf, hpf, hsf, n_size, t_size, h, s):
    """Step s: r, z = sigmoid(.); n = tanh(x_n + b_in + r (W_hn h + b_hn)); h = (1 - z) n + z h.
    gates[b, s] holds x W_ih^T and gets the activated gates; gbuf holds h_{s-1} W_hh^T."""
    one = gf.dtype.type(1)
    g3 = 3 * h
    for q in range(cuda.grid(1), n_size * h, cuda.gridsize(1)):
        b, j, gb = _unit_of(q, h, t_size, s, g3)
        rb = b * g3 + j
        if s == 0:
            rr = gf.dtype.type(0)
            rz = rr
            rn = rr
            hp = rr
        else:
            rr = rcf[rb]
            rz = rcf[rb + h]
            rn = rcf[rb + 2 * h]
            hp = hsf[(b * t_size + s - 1) * h + j]
        r = _sig(gf[gb] + rr + bi[j] + bh[j], one)
        z = _sig(gf[gb + h] + rz + bi[h + j] + bh[h + j], one)
        hnl = rn + bh[2 * h + j]
        nn = math.tanh(gf[gb + 2 * h] + bi[2 * h + j] + r * hnl)
        gf[gb] = r
        gf[gb + h] = z
        gf[gb + 2 * h] = nn
        o = (b * t_size + s) * h + j
        hnf[o] = hnl
        hpf[o] = hp
        hsf[o] = (one - z) * nn + z * hp


@cuda.jit(cache=True)
def _gru_cell_backward(gf, hnf, hpf, dhsf, dgf, dghf, hbf, dhbf, n_size, t_size, h, s, first):
    """Step s backward: dh = hbuf + (dhs[:, s] + dhbuf); writes dgates[:, s] (r, z, n) and
    dgates_hh[:, s] (r, z, r * dn); dhbuf = dh * z for the next step (both read as 0 when
    ``first``)."""
    one = gf.dtype.type(1)
    g3 = 3 * h
    for q in range(cuda.grid(1), n_size * h, cuda.gridsize(1)):
        b, j, gb = _unit_of(q, h, t_size, s, g3)
        o = (b * t_size + s) * h + j
        d = dhsf[o]
        if not first:
            d = hbf[q] + (d + dhbf[q])
        r = gf[gb]
        z = gf[gb + h]
        nn = gf[gb + 2 * h]
        dhbf[q] = d * z
        gz = d * (hpf[o] - nn) * z * (one - z)
        dn = d * (one - z) * (one - nn * nn)
        gr = dn * hnf[o] * r * (one - r)
        dgf[gb] = gr
        dgf[gb + h] = gz
        dgf[gb + 2 * h] = dn
        dghf[gb] = gr
        dghf[gb + h] = gz
        dghf[gb + 2 * h] = dn * r


def gru_forward(x, weight_ih, weight_hh, bias_ih, bias_hh, gates, hn, hprev, hbuf, gbuf, hs):
    """GRU over a whole sequence, zero initial state (arguments as the CPU kernel's).

    x (N, T, I); weight_ih (3H, I); weight_hh (3H, H); bias_ih, bias_hh (3H,); gates, hn, hprev
    saved for the backward; gbuf (N, 3H) scratch, hbuf unused; writes hs (N, T, H).
    """
    x, weight_ih, weight_hh, bias_ih, bias_hh, gates, hn, hprev, gbuf, hs = _dev(
        (x, weight_ih, weight_hh, bias_ih, bias_hh, gates, hn, hprev, gbuf, hs))
    n, t, ni = x.shape
    h = weight_hh.shape[1]
    g3 = 3 * h
    _input_projection(x, weight_ih, gates, n, t, ni, g3)
    fg, fr, fhn, fhp, fhs, fw = map(flat_view, (gates, gbuf, hn, hprev, hs, weight_hh))
    blocks, threads = grid_stride(n * h, per_thread=1)
    for s in range(t):
        if s > 0:
            # gbuf (N, 3H) = h_{s-1} @ W_hh^T, h_{s-1} read in place from hs[:, s-1]
            gemm(fhs, fw, fr, n, g3, h, a_kcontig=True, b_kcontig=True, lda=t * h, ldb=h, ldc=g3,
                 a_off=(s - 1) * h)
        _gru_cell[blocks, threads](fg, fr, bias_ih, bias_hh, fhn, fhp, fhs, n, t, h, s)


def gru_backward(x, weight_ih, weight_hh, gates, hn, hprev, dhs, need_dx,
                 dgates, dgates_hh, gbuf, hbuf, dhbuf,
                 dx, dweight_ih, dweight_hh, dbias_ih, dbias_hh):
    """Backward through time of :func:`gru_forward` (arguments as the CPU kernel's).

    Overwrites dx (N, T, I) (only when ``need_dx``), dweight_ih (3H, I), dweight_hh (3H, H), dbias_ih,
    dbias_hh (3H,).
    Scratch: dgates, dgates_hh (N, T, 3H), hbuf, dhbuf (N, H); gbuf is not used.
    """
    (x, weight_ih, weight_hh, gates, hn, hprev, dhs, dgates, dgates_hh, hbuf, dhbuf,
     dweight_ih, dweight_hh, dbias_ih, dbias_hh) = _dev(
        (x, weight_ih, weight_hh, gates, hn, hprev, dhs, dgates, dgates_hh, hbuf, dhbuf,
         dweight_ih, dweight_hh, dbias_ih, dbias_hh))
    n, t, ni = x.shape
    h = weight_hh.shape[1]
    g3 = 3 * h
    fg, fhn, fhp, fdh = flat_view(gates), flat_view(hn), flat_view(hprev), flat_view(dhs)
    fdg, fdgh, fhb, fdhb, fw = map(flat_view, (dgates, dgates_hh, hbuf, dhbuf, weight_hh))
    blocks, threads = grid_stride(n * h, per_thread=1)
    for s in range(t - 1, -1, -1):
        _gru_cell_backward[blocks, threads](fg, fhn, fhp, fdh, fdg, fdgh, fhb, fdhb, n, t, h, s,
                                            s == t - 1)
        if s > 0:
            # hbuf (N, H) = dgates_hh[:, s] (N, 3H) @ W_hh (3H, H)
            gemm(fdgh, fw, fhb, n, h, g3, a_kcontig=True, b_kcontig=False, lda=t * g3, ldb=h,
                 ldc=h, a_off=s * g3)
    _weight_grads(x, weight_ih, hprev, dgates, dgates_hh, need_dx, dx, dweight_ih, dweight_hh, n, t, ni, h,
                  g3)
    column_sums(fdg, n * t, g3, g3, dbias_ih)
    column_sums(fdgh, n * t, g3, g3, dbias_hh)
