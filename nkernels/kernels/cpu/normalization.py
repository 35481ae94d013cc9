"""Normalization kernels: BatchNorm over the channels of (N, C, L) and LayerNorm over trailing dimensions.

(Gradient clipping and max-norm constraints are :mod:`.norms`.)

**BatchNorm** takes its input as rows, ``x`` of shape (N, C * L) with ``channels`` = C: the
(N, C) layer has L = 1, (N, C, L) its length, NCHW images L = H * W. Channel ``c`` of sample
``n`` is ``x[n, c * L:(c + 1) * L]``. Training normalises with the batch's mean and biased
variance over its N * L values, saves each channel's ``mean`` and ``invstd`` = 1 / sqrt(var +
eps) (in x's dtype) for the backward pass, and moves the running statistics toward the batch's:
``running = (1 - f) * running + f * batch``, with the unbiased variance (the caller guarantees N
* L >= 2), ``f = momentum``, or ``1 / num_batches_tracked`` for a cumulative average (PyTorch's
``momentum=None``); ``num_batches_tracked[0]`` counts the calls. Evaluation normalises with the
running statistics. ``running_mean`` and ``running_var`` are 1-D arrays of C floats and
``num_batches_tracked`` a one-element int64 array, the layer's buffers.

**LayerNorm** takes flat views and the size ``d`` of the normalised trailing dimensions: each run
of ``d`` consecutive elements is one row, normalised with its own mean and biased variance;
``mean`` and ``invstd`` hold one value per row. Three variants of each pass share one body:
without parameters (``layernorm_*``), with a weight only (``layernorm_scale_*``) and with a
weight and a bias (``layernorm_affine_*``); the weight and bias are flat views of ``d`` values.

Sums accumulate in float64; the normalisation itself runs in x's dtype from the saved (rounded)
``mean`` and ``invstd``, as the CUDA twins do. Backward kernels overwrite ``dx`` (when
``need_dx``) and the parameter gradients.
"""
import numpy as np
from numba import njit, prange

from ..calls import by_address


# ----------------------------------------------------------------------------------------------
# BatchNorm
# ----------------------------------------------------------------------------------------------


# Sums run in float64 over 1-D views, in any order (``reassoc``), so LLVM vectorizes them; indexing
# x[i, j] or x[base + j] directly keeps Numba's negative-index wraparound in the loop, which it does not.


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _sum(v):
    """The float64 sum of the 1-D ``v``."""
    s = 0.0
    for j in range(v.shape[0]):
        s += v[j]
    return s


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _squared_deviations(v, mu):
    """The float64 sum of ``(v - mu) ** 2``."""
    s = 0.0
    for j in range(v.shape[0]):
        dev = v[j] - mu
        s += dev * dev
    return s


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _gradient_sums(v, dy, weight, has_weight, mu, inv):
    """The float64 sums of ``g`` and of ``g * (v - mu) * inv``, with ``g = dy * weight`` (or ``dy``)."""
    sg = 0.0
    sgx = 0.0
    for j in range(v.shape[0]):
        g = dy[j] * weight[j] if has_weight else dy[j]
        sg += g
        sgx += g * ((v[j] - mu) * inv)
    return sg, sgx


@njit(cache=True, error_model="numpy", parallel=True)
def batchnorm_forward_train(x, channels, weight, bias, eps, momentum, cumulative, running_mean, running_var,
                            num_batches_tracked, mean, invstd, out):
    """Normalise each channel of ``x`` (N, C * L) with its batch statistics: ``out = (x - mean) *
    invstd * weight + bias``; save ``mean`` and ``invstd`` (C,), update the running statistics and
    count the call in ``num_batches_tracked`` (see the module's docstring). Needs N * L >= 2."""
    n = x.shape[0]
    length = x.shape[1] // channels
    m = n * length
    num_batches_tracked[0] += 1
    factor = 1.0 / num_batches_tracked[0] if cumulative else momentum
    for c in prange(channels):
        lo = c * length
        hi = lo + length
        s = 0.0
        for i in range(n):
            s += _sum(x[i, lo:hi])
        mu = s / m
        ss = 0.0
        for i in range(n):
            ss += _squared_deviations(x[i, lo:hi], mu)
        var = ss / m
        mean[c] = mu
        invstd[c] = 1.0 / np.sqrt(var + eps)
        running_mean[c] = (1.0 - factor) * running_mean[c] + factor * mu
        running_var[c] = (1.0 - factor) * running_var[c] + factor * (ss / (m - 1))
        mu_c, inv_c, w, b = mean[c], invstd[c], weight[c], bias[c]
        for i in range(n):
            row, out_row = x[i, lo:hi], out[i, lo:hi]
            for j in range(length):
                out_row[j] = (row[j] - mu_c) * inv_c * w + b


@njit(cache=True, error_model="numpy", parallel=True)
def batchnorm_forward_eval(x, channels, weight, bias, eps, running_mean, running_var, out):
    """``out = (x - running_mean) / sqrt(running_var + eps) * weight + bias`` per channel of ``x``
    (N, C * L): evaluation mode, which reads the running statistics and changes nothing."""
    n = x.shape[0]
    length = x.shape[1] // channels
    for c in prange(channels):
        lo = c * length
        scale = weight[c] / np.sqrt(running_var[c] + eps)
        shift = bias[c] - running_mean[c] * scale
        for i in range(n):
            row, out_row = x[i, lo:lo + length], out[i, lo:lo + length]
            for j in range(length):
                out_row[j] = row[j] * scale + shift


@njit(cache=True, error_model="numpy", parallel=True)
def batchnorm_backward(x, dy, channels, weight, mean, invstd, need_dx, dx, dweight, dbias):
    """The gradients of the training forward: ``dbias = sum(dy)``, ``dweight = sum(dy * xhat)`` per
    channel (overwritten), and when ``need_dx``, ``dx = weight * invstd * (dy - (dbias + xhat *
    dweight) / (N * L))`` with ``xhat = (x - mean) * invstd``; x, dy, dx are (N, C * L)."""
    n = x.shape[0]
    length = x.shape[1] // channels
    m = n * length
    for c in prange(channels):
        lo = c * length
        hi = lo + length
        mu, inv = mean[c], invstd[c]
        sdy = 0.0
        sdyx = 0.0
        for i in range(n):
            row_dy, row_dyx = _gradient_sums(x[i, lo:hi], dy[i, lo:hi], weight, False, mu, inv)
            sdy += row_dy
            sdyx += row_dyx
        dbias[c] = sdy
        dweight[c] = sdyx
        if need_dx:
            k = weight[c] * inv
            db, dw = dbias[c] / m, dweight[c] / m
            for i in range(n):
                row, dy_row, dx_row = x[i, lo:hi], dy[i, lo:hi], dx[i, lo:hi]
                for j in range(length):
                    dx_row[j] = k * (dy_row[j] - (db + (row[j] - mu) * inv * dw))


# ----------------------------------------------------------------------------------------------
# LayerNorm
# ----------------------------------------------------------------------------------------------


@by_address
@njit(cache=True, error_model="numpy", parallel=True)
def _layernorm_forward_rows(x, d, weight, bias, has_weight, has_bias, eps, mean, invstd, out):
    rows = x.shape[0] // d
    for r in prange(rows):
        base = r * d
        row, out_row = x[base:base + d], out[base:base + d]
        mu = _sum(row) / d
        ss = _squared_deviations(row, mu)
        mean[r] = mu
        invstd[r] = 1.0 / np.sqrt(ss / d + eps)
        mu_r, inv_r = mean[r], invstd[r]
        for j in range(d):
            v = (row[j] - mu_r) * inv_r
            if has_weight:
                v = v * weight[j]
            if has_bias:
                v = v + bias[j]
            out_row[j] = v


@by_address
@njit(cache=True, error_model="numpy", parallel=True)
def _layernorm_input_grad(x, dy, d, weight, has_weight, mean, invstd, dx):
    rows = x.shape[0] // d
    for r in prange(rows):
        base = r * d
        mu, inv = mean[r], invstd[r]
        row, dy_row, dx_row = x[base:base + d], dy[base:base + d], dx[base:base + d]
        sg, sgx = _gradient_sums(row, dy_row, weight, has_weight, mu, inv)
        mg, mgx = sg / d, sgx / d
        for j in range(d):
            g = dy_row[j] * weight[j] if has_weight else dy_row[j]
            dx_row[j] = inv * (g - (mg + (row[j] - mu) * inv * mgx))


@by_address
@njit(cache=True, error_model="numpy", parallel=True)
def _layernorm_param_grads(x, dy, d, mean, invstd, dweight, dbias, has_bias):
    rows = x.shape[0] // d
    for j in prange(d):
        sw = 0.0
        sb = 0.0
        for r in range(rows):
            q = r * d + j
            g = dy[q]
            sw += g * ((x[q] - mean[r]) * invstd[r])
            sb += g
        dweight[j] = sw
        if has_bias:
            dbias[j] = sb


@njit(cache=True, error_model="numpy")
def layernorm_forward(x, d, eps, mean, invstd, out):
    """``out = (x - mean) * invstd`` over each row of ``d`` elements of the flat ``x``; saves each
    row's ``mean`` and ``invstd`` = 1 / sqrt(biased var + eps)."""
    none = np.empty(0, x.dtype)
    _layernorm_forward_rows(x, d, none, none, False, False, eps, mean, invstd, out)


@njit(cache=True, error_model="numpy")
def layernorm_scale_forward(x, d, weight, eps, mean, invstd, out):
    """As :func:`layernorm_forward`, times ``weight`` (``d`` values)."""
    _layernorm_forward_rows(x, d, weight, np.empty(0, x.dtype), True, False, eps, mean, invstd, out)


@njit(cache=True, error_model="numpy")
def layernorm_affine_forward(x, d, weight, bias, eps, mean, invstd, out):
    """As :func:`layernorm_forward`, times ``weight`` plus ``bias`` (``d`` values each)."""
    _layernorm_forward_rows(x, d, weight, bias, True, True, eps, mean, invstd, out)


@njit(cache=True, error_model="numpy")
def layernorm_backward(x, dy, d, mean, invstd, need_dx, dx):
    """The input gradient of :func:`layernorm_forward` (when ``need_dx``): per row, ``dx = invstd *
    (dy - mean(dy) - xhat * mean(dy * xhat))``."""
    if need_dx:
        _layernorm_input_grad(x, dy, d, np.empty(0, x.dtype), False, mean, invstd, dx)


@njit(cache=True, error_model="numpy")
def layernorm_scale_backward(x, dy, d, weight, mean, invstd, need_dx, dx, dweight):
    """The gradients of :func:`layernorm_scale_forward`: ``dweight = sum over rows of dy * xhat``
    (overwritten), and ``dx`` as :func:`layernorm_backward` with ``dy * weight``."""
    _layernorm_param_grads(x, dy, d, mean, invstd, dweight, np.empty(0, x.dtype), False)
    if need_dx:
        _layernorm_input_grad(x, dy, d, weight, True, mean, invstd, dx)


@njit(cache=True, error_model="numpy")
def layernorm_affine_backward(x, dy, d, weight, mean, invstd, need_dx, dx, dweight, dbias):
    """The gradients of :func:`layernorm_affine_forward`: ``dweight`` as in
    :func:`layernorm_scale_backward`, ``dbias = sum over rows of dy`` (both overwritten), ``dx``."""
    _layernorm_param_grads(x, dy, d, mean, invstd, dweight, dbias, True)
    if need_dx:
        _layernorm_input_grad(x, dy, d, weight, True, mean, invstd, dx)
