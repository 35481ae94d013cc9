"""Numba kernels of MAC: the Z-step (one small problem per sample, in parallel), the W-step of one
layer (a pass of mini-batches over one shard) and the forward pass of the chain.

A chain of ``K`` Dense layers is passed flat: ``dims`` (K + 1) holds the widths ``d_0 .. d_K``,
``wflat``/``bflat`` the weights (row-major ``(d_k, d_{k-1})``) and biases one layer after another
from ``w_off``/``b_off`` (a layer without a bias has zeros there), ``acts`` the activation code
of each layer. The auxiliary coordinates ``Z`` (N, d_1 + ... + d_{K-1}) hold each hidden layer's
output coordinates side by side, layer ``k`` (from 1) in columns ``z_off[k-1]:z_off[k]``.
"""
import numpy as np
from numba import njit, prange

from nkernels.kernels.calls import by_address
from nkernels.kernels.cpu.activation import IDENTITY, RELU, SIGMOID, TANH  # noqa: F401 (the layers' codes)
from nkernels.kernels.cpu.activation import activation_backward_by_code as _activation_backward
from nkernels.kernels.cpu.activation import activation_forward_by_code as activate
from nkernels.kernels.cpu.batching import gather_labels, gather_rows
from nkernels.kernels.cpu.dense import dense_backward, dense_forward
from nkernels.kernels.cpu.loss import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from nkernels.kernels.cpu.optim import apply_updates

# Compiled on their own and called by address, not compiled again into every fused loop below
(dense_forward, dense_backward, apply_updates, activate, _activation_backward) = (
    by_address(k) for k in (dense_forward, dense_backward, apply_updates, activate, _activation_backward))

#: the loss on the last layer's outputs: softmax cross-entropy against labels, or the mean squared error
CROSS_ENTROPY, SQUARED = 0, 1


@njit(cache=True, error_model="numpy")
def _f(code, v):
    """The activation of one value."""
    if code == RELU:
        return v if v > 0 else 0.0
    if code == SIGMOID:
        if v >= 0:
            return 1.0 / (1.0 + np.exp(-v))
        e = np.exp(v)
        return e / (1.0 + e)
    if code == TANH:
        return np.tanh(v)
    return v


@njit(cache=True, error_model="numpy")
def _df(code, y):
    """The activation's derivative, read from its output ``y``."""
    if code == RELU:
        return 1.0 if y > 0 else 0.0
    if code == SIGMOID:
        return y * (1.0 - y)
    if code == TANH:
        return 1.0 - y * y
    return 1.0


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _affine(x, wflat, w0, bflat, b0, din, dout, out):
    """``out = W x + b`` for one sample (W rows from ``wflat[w0:]``, b from ``bflat[b0:]``); the
    sums may be reassociated, so that they vectorize."""
    for j in range(dout):
        s = bflat[b0 + j]
        row = w0 + j * din
        for i in range(din):
            s += wflat[row + i] * x[i]
        out[j] = s


@njit(cache=True, error_model="numpy")
def _add_transposed(e, wflat, w0, din, dout, scale, g):
    """``g += scale * W.T e`` for one sample."""
    for j in range(dout):
        c = scale * e[j]
        if c != 0.0:
            row = w0 + j * din
            for i in range(din):
                g[i] += c * wflat[row + i]


@njit(parallel=True, cache=True, error_model="numpy", fastmath={"reassoc"})
def z_step(X, Z, labels, targets, loss_kind, wflat, bflat, dims, w_off, b_off, z_off, acts, mu, etas, steps):
    """The Z-step: ``steps`` block-coordinate gradient steps on every sample's own penalty objective

        loss(y_n, W_K z_{K-1} + b_K) + mu/2 sum_{k<K} ||z_k - f_k(W_k z_{k-1} + b_k)||^2,  z_0 = x_n,

    in place on ``Z``, one sample per ``prange`` iteration. Coordinate ``z_k`` enters only its own
    term and the next layer's, so its gradient needs no chain rule through the net. Layer ``k``
    steps by ``etas[k-1]`` (the inverse of a bound on the curvature in ``z_k``).

    labels (N,) int64 for CROSS_ENTROPY; targets (N, d_K) for SQUARED (the mean over outputs of
    the squared error); the other may be empty.
    """
    n = X.shape[0]
    K = dims.shape[0] - 1
    widest = 0
    for k in range(K + 1):
        widest = max(widest, dims[k])
    for s in prange(n):
        pre = np.empty(widest)
        g = np.empty(widest)
        for _ in range(steps):
            for k in range(1, K):
                din, dout = dims[k - 1], dims[k]
                prev = X[s] if k == 1 else Z[s, z_off[k - 2]:z_off[k - 1]]
                z = Z[s, z_off[k - 1]:z_off[k]]
                _affine(prev, wflat, w_off[k - 1], bflat, b_off[k - 1], din, dout, pre)
                for j in range(dout):  # own term: mu (z_k - f(W_k z_{k-1} + b_k))
                    g[j] = mu * (z[j] - _f(acts[k - 1], pre[j]))
                dnext = dims[k + 1]
                _affine(z, wflat, w_off[k], bflat, b_off[k], dout, dnext, pre)
                if k + 1 < K:  # the next layer's term: -mu W_{k+1}.T ((z_{k+1} - f(a)) f'(a))
                    znext = Z[s, z_off[k]:z_off[k + 1]]
                    for j in range(dnext):
                        y = _f(acts[k], pre[j])
                        pre[j] = (znext[j] - y) * _df(acts[k], y)
                    _add_transposed(pre, wflat, w_off[k], dout, dnext, -mu, g)
                elif loss_kind == CROSS_ENTROPY:  # the loss: W_K.T (softmax(out) - onehot)
                    top = pre[0]
                    for j in range(1, dnext):
                        top = max(top, pre[j])
                    total = 0.0
                    for j in range(dnext):
                        pre[j] = np.exp(pre[j] - top)
                        total += pre[j]
                    for j in range(dnext):
                        pre[j] /= total
                    pre[labels[s]] -= 1.0
                    _add_transposed(pre, wflat, w_off[k], dout, dnext, 1.0, g)
                else:  # mean squared error over the outputs
                    for j in range(dnext):
                        pre[j] -= targets[s, j]
                    _add_transposed(pre, wflat, w_off[k], dout, dnext, 2.0 / dnext, g)
                eta = etas[k - 1]
                for j in range(dout):
                    z[j] -= eta * g[j]


@njit(cache=True, error_model="numpy")
def fit_layer(inputs, outputs, labels, loss_kind, act, order, batch_size, weight, bias, moments_a, moments_b,
              step, optimizer, hyper, flag):
    """The W-step of one layer on one shard: one pass of mini-batches (rows in ``order``) fitting
    ``f(inputs W.T + b)`` to ``outputs``, updating ``weight`` (d_out, d_in) and ``bias`` (d_out,
    or empty) in place with nkernels' fused optimizer (``optimizer``/``hyper``/``flag`` from
    ``Optimizer.fused_form``; ``moments_a``/``moments_b`` its flat state, ``step`` its count).

    ``loss_kind`` -1: a hidden layer, the mean over the batch of ``||outputs - f(.)||^2 / 2``;
    CROSS_ENTROPY: the last layer against ``labels``; SQUARED: the last layer against ``outputs``
    (the mean squared error). Returns the new step count and the summed loss of the pass.
    """
    n, din = inputs.shape
    dout = weight.shape[0]
    xb = np.empty((batch_size, din))
    tb = np.empty((batch_size, dout))
    lb = np.empty(batch_size, np.int64)
    pre = np.empty((batch_size, dout))
    post = np.empty((batch_size, dout))
    dpost = np.empty((batch_size, dout))
    dpre = np.empty((batch_size, dout))
    gweight = np.empty_like(weight)
    gbias = np.empty_like(bias)
    no_dx = np.empty((0, 0))
    total = 0.0
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        x, t, p, q, dq, dp = xb[:m], tb[:m], pre[:m], post[:m], dpost[:m], dpre[:m]
        gather_rows(inputs, order, start, x)
        dense_forward(x, weight, bias, p)
        if loss_kind == CROSS_ENTROPY:
            lab = lb[:m]
            gather_labels(labels, order, start, lab)
            total += m * softmax_cross_entropy_forward(p, lab, q)
            softmax_cross_entropy_backward(q, lab, dp)
        else:
            gather_rows(outputs, order, start, t)
            activate(act, p, q)
            if loss_kind == SQUARED:
                scale = 2.0 / (m * dout)
                for i in range(m):
                    for j in range(dout):
                        d = q[i, j] - t[i, j]
                        total += d * d / dout
                        dq[i, j] = scale * d
            else:
                for i in range(m):
                    for j in range(dout):
                        d = q[i, j] - t[i, j]
                        total += 0.5 * d * d
                        dq[i, j] = d / m
            _activation_backward(act, q, dq, dp)
        dense_backward(x, dp, weight, False, no_dx, gweight, gbias)
        step += 1
        apply_updates(optimizer, (weight.reshape(weight.size), bias),
                      (gweight.reshape(gweight.size), gbias), moments_a, moments_b, hyper, flag, step)
    return step, total


@njit(cache=True, error_model="numpy")
def forward_chain(X, wflat, bflat, dims, w_off, b_off, acts, hidden, out):
    """The network's forward pass: every hidden layer's output into ``hidden`` (laid out as the
    coordinates ``Z``) and the last layer's outputs (after its activation) into ``out``."""
    K = dims.shape[0] - 1
    n = X.shape[0]
    start = 0
    prev = np.ascontiguousarray(X)
    for k in range(K):
        din, dout = dims[k], dims[k + 1]
        weight = wflat[w_off[k]:w_off[k] + din * dout].reshape((dout, din))
        pre = np.empty((n, dout))
        dense_forward(prev, weight, bflat[b_off[k]:b_off[k] + dout], pre)
        post = np.empty((n, dout))
        activate(acts[k], pre, post)
        if k < K - 1:
            hidden[:, start:start + dout] = post
            start += dout
        else:
            out[:, :] = post
        prev = post
