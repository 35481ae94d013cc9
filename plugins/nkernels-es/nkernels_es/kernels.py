"""Numba kernels of the ES scheme: whole-population evaluation of a dense chain, and the noise-weighted sum.

A *dense chain* is a model made of Dense layers, each optionally followed by ReLU, Sigmoid or
Tanh. Its parameters form one flat vector ``theta`` (each Dense's ``weight`` (out, in) then
``bias``, in model order); member ``i`` of the population is ``theta + sigma * noise[off_i:off_i + D]``
and its antithetic twin ``theta - sigma * noise[...]``. The kernels read the noise straight from
the shared table: no perturbed parameter vector is ever stored for the whole population.

No BLAS anywhere: the per-member matrix products are small and run inside ``prange``, as 4x4
register tiles of dot products that LLVM vectorizes. Each member's loss is computed by the same
sequence of operations whichever thread or worker computes it, so results never depend on how
the population is split.
"""
import math

import numpy as np
from numba import njit, prange

from nkernels.kernels.calls import by_address

#: activation codes of :func:`population_losses` (``acts``)
ACT_NONE, ACT_RELU, ACT_SIGMOID, ACT_TANH = 0, 1, 2, 3
#: loss codes of :func:`population_losses`
LOSS_CROSS_ENTROPY, LOSS_MSE = 0, 1


@njit(cache=True, error_model="numpy")
def activate_value(v, act, one):
    """Activation ``act`` (an ``ACT_*`` code) of one number ``v``; ``one`` is 1 in ``v``'s dtype, so that the
    arithmetic stays in that dtype (the CUDA kernels compile this function too, so it calls ``math``'s
    functions: numba-cuda compiles no NumPy ufunc, and ``math.exp`` of a float32 is ``expf`` on both)."""
    if act == ACT_RELU:  # NaN stays NaN (it must not hide a diverged member)
        return one - one if v < 0 else v
    if act == ACT_SIGMOID:
        return one / (one + math.exp(-v))
    if act == ACT_TANH:
        return math.tanh(v)
    return v


@njit(cache=True, error_model="numpy")
def _activate(out, n_rows, n_cols, act):
    """Apply activation ``act`` in place to ``out[:n_rows, :n_cols]``."""
    if act == ACT_NONE:
        return
    one = out.dtype.type(1.0)
    for b in range(n_rows):
        for j in range(n_cols):
            out[b, j] = activate_value(out[b, j], act, one)


#: The products sum in a vectorized order (``reassoc``) with fused multiply-adds (``contract``); the
#: order depends only on the shapes, so results stay the same on any thread or worker.
_DOT_MATH = {"reassoc", "contract"}


@njit(cache=True, error_model="numpy", fastmath=_DOT_MATH)
def _tile4x4(h, b, w, j, n_in, bias, out):
    """``out[b:b+4, j:j+4] = h[b:b+4] @ w[j:j+4].T + bias[j:j+4]``: 16 sums kept in registers."""
    z = h.dtype.type(0.0)
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = z
    s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = z
    for k in range(n_in):
        w0, w1, w2, w3 = w[j, k], w[j + 1, k], w[j + 2, k], w[j + 3, k]
        x0, x1, x2, x3 = h[b, k], h[b + 1, k], h[b + 2, k], h[b + 3, k]
        s00 += x0 * w0
        s01 += x0 * w1
        s02 += x0 * w2
        s03 += x0 * w3
        s10 += x1 * w0
        s11 += x1 * w1
        s12 += x1 * w2
        s13 += x1 * w3
        s20 += x2 * w0
        s21 += x2 * w1
        s22 += x2 * w2
        s23 += x2 * w3
        s30 += x3 * w0
        s31 += x3 * w1
        s32 += x3 * w2
        s33 += x3 * w3
    c0, c1, c2, c3 = bias[j], bias[j + 1], bias[j + 2], bias[j + 3]
    out[b, j], out[b, j + 1], out[b, j + 2], out[b, j + 3] = s00 + c0, s01 + c1, s02 + c2, s03 + c3
    out[b + 1, j], out[b + 1, j + 1], out[b + 1, j + 2], out[b + 1, j + 3] = s10 + c0, s11 + c1, s12 + c2, s13 + c3
    out[b + 2, j], out[b + 2, j + 1], out[b + 2, j + 2], out[b + 2, j + 3] = s20 + c0, s21 + c1, s22 + c2, s23 + c3
    out[b + 3, j], out[b + 3, j + 1], out[b + 3, j + 2], out[b + 3, j + 3] = s30 + c0, s31 + c1, s32 + c2, s33 + c3


@njit(cache=True, error_model="numpy", fastmath=_DOT_MATH)
def _dot(h, b, w, j, n_in):
    """``h[b] @ w[j]`` over the first ``n_in`` entries."""
    s = h.dtype.type(0.0)
    for k in range(n_in):
        s += h[b, k] * w[j, k]
    return s


@njit(cache=True, error_model="numpy")
def _affine(h, n_rows, n_in, w, bias, n_out, out):
    """``out[:n_rows, :n_out] = h[:n_rows, :n_in] @ w[:n_out, :n_in].T + bias[:n_out]`` (w as Dense.weight).

    4x4 tiles of the output, then the rows and columns left over one by one.
    """
    rows4 = n_rows - n_rows % 4
    cols4 = n_out - n_out % 4
    for b in range(0, rows4, 4):
        for j in range(0, cols4, 4):
            _tile4x4(h, b, w, j, n_in, bias, out)
        for j in range(cols4, n_out):
            for r in range(b, b + 4):
                out[r, j] = _dot(h, r, w, j, n_in) + bias[j]
    for b in range(rows4, n_rows):
        for j in range(n_out):
            out[b, j] = _dot(h, b, w, j, n_in) + bias[j]


@njit(cache=True, error_model="numpy")
def sample_loss(out, n_out, loss_kind, label, values, row):
    """One sample's loss (float64) from its outputs ``out[:n_out]``: the cross-entropy against class
    ``label``, or the mean squared error against ``values[row, :n_out]`` (the CUDA kernels compile it too)."""
    if loss_kind == LOSS_CROSS_ENTROPY:
        m = out[0]
        for j in range(1, n_out):
            if out[j] > m:
                m = out[j]
        s = 0.0
        for j in range(n_out):
            s += math.exp(out[j] - m)  # in the model's dtype: float32 exp is twice as fast
        return math.log(s) + m - out[label]
    total = 0.0
    for j in range(n_out):
        d = np.float64(out[j]) - np.float64(values[row, j])
        total += d * d
    return total / n_out


@njit(cache=True, error_model="numpy")
def _mean_loss(out, n_rows, n_out, loss_kind, labels, values):
    """The batch-mean loss of outputs ``out[:n_rows, :n_out]`` (float64): cross-entropy or MSE."""
    total = 0.0
    for b in range(n_rows):
        label = labels[b] if loss_kind == LOSS_CROSS_ENTROPY else 0
        total += sample_loss(out[b], n_out, loss_kind, label, values, b)
    return total / n_rows


@njit(cache=True, error_model="numpy")
def _perturb(param, noise, s, plus, minus):
    """``plus[:n] = param + s * noise`` and ``minus[:n] = param - s * noise`` (n = len(param))."""
    for i in range(param.shape[0]):
        e = s * noise[i]
        plus[i] = param[i] + e
        minus[i] = param[i] - e


@njit(cache=True, error_model="numpy")
def _first_layer(X, theta, w0, b0, i0, o0):
    """The first Dense layer's output for the unperturbed parameters (before its activation).

    It is shared by the whole population: (theta +- s eps) x = theta x +- s (eps x), and eps x is
    shared by the two members of a pair.
    """
    shared = np.empty((X.shape[0], o0), X.dtype)
    bias = theta[b0:b0 + o0] if b0 >= 0 else np.zeros(o0, X.dtype)
    _affine(X, X.shape[0], i0, theta[w0:w0 + o0 * i0].reshape((o0, i0)), bias, o0, shared)
    return shared


@by_address
@njit(cache=True, error_model="numpy")
def _evaluate_pairs(X, labels, values, loss_kind, theta, table, offsets, s, w_start, b_start, n_in, n_out, acts,
                    shared, first, stop, losses):
    """Pairs ``first`` to ``stop - 1`` of :func:`population_losses`, serially, with their own workspaces.

    ``shared`` is the first layer's output for the unperturbed parameters (before the activation).
    """
    n_rows = X.shape[0]
    n_layers = n_in.shape[0]
    width = max(n_in.max(), n_out.max())
    matrix = (n_in * n_out).max()
    w0, b0, i0, o0 = w_start[0], b_start[0], n_in[0], n_out[0]
    no_bias = np.zeros(width, X.dtype)
    w_plus = np.empty(matrix, X.dtype)
    w_minus = np.empty(matrix, X.dtype)
    bias_plus = np.empty(width, X.dtype)
    bias_minus = np.empty(width, X.dtype)
    h_plus = np.empty((n_rows, width), X.dtype)
    h_minus = np.empty((n_rows, width), X.dtype)
    o_plus = np.empty((n_rows, width), X.dtype)
    o_minus = np.empty((n_rows, width), X.dtype)
    for pair in range(first, stop):
        noise = table[offsets[pair]:offsets[pair] + theta.shape[0]]
        # layer 0: h = act(shared +- s (x eps_W^T + eps_b)), the noise read in place
        _affine(X, n_rows, i0, noise[w0:w0 + o0 * i0].reshape((o0, i0)),
                noise[b0:b0 + o0] if b0 >= 0 else no_bias, o0, o_plus)
        for b in range(n_rows):
            for j in range(o0):
                e = s * o_plus[b, j]
                h_plus[b, j] = shared[b, j] + e
                h_minus[b, j] = shared[b, j] - e
        _activate(h_plus, n_rows, o0, acts[0])
        _activate(h_minus, n_rows, o0, acts[0])
        for layer in range(1, n_layers):
            w, bs, ni, no = w_start[layer], b_start[layer], n_in[layer], n_out[layer]
            _perturb(theta[w:w + no * ni], noise[w:w + no * ni], s, w_plus, w_minus)
            if bs >= 0:
                _perturb(theta[bs:bs + no], noise[bs:bs + no], s, bias_plus, bias_minus)
            else:
                bias_plus[:] = 0
                bias_minus[:] = 0
            _affine(h_plus, n_rows, ni, w_plus[:no * ni].reshape((no, ni)), bias_plus, no, o_plus)
            _affine(h_minus, n_rows, ni, w_minus[:no * ni].reshape((no, ni)), bias_minus, no, o_minus)
            _activate(o_plus, n_rows, no, acts[layer])
            _activate(o_minus, n_rows, no, acts[layer])
            h_plus, o_plus = o_plus, h_plus
            h_minus, o_minus = o_minus, h_minus
        last = n_out[n_layers - 1]
        losses[pair, 0] = _mean_loss(h_plus, n_rows, last, loss_kind, labels, values)
        losses[pair, 1] = _mean_loss(h_minus, n_rows, last, loss_kind, labels, values)


@njit(cache=True, error_model="numpy", parallel=True)
def population_losses(X, labels, values, loss_kind, theta, table, offsets, sigma, w_start, b_start,
                      n_in, n_out, acts, n_threads, losses):
    """The loss of every member of an antithetic population on one minibatch, in one call.

    X (B, n_in[0]): the minibatch. ``loss_kind`` 0 (cross-entropy against int64 ``labels`` (B,))
    or 1 (MSE against ``values`` (B, n_out[-1])); the unused one may be any array of its type.
    theta (D,): the parameters; table: the noise table; both of X's dtype. offsets (P,) int64:
    pair ``i``'s noise is ``table[offsets[i]:offsets[i] + D]``. For each Dense layer ``l``:
    ``w_start[l]`` (its weight's start in theta), ``b_start[l]`` (its bias's, or -1 for none),
    ``n_in[l]``, ``n_out[l]``, ``acts[l]`` (an ``ACT_*`` code). ``n_threads``: how many chunks the pairs are split into
    (``numba.get_num_threads()``; it does not change the results). losses (P, 2) float64 receives
    member ``theta + sigma * eps_i`` in column 0 and ``theta - sigma * eps_i`` in column 1.

    The caller checks shapes, offsets and labels: nothing here is bounds-checked.
    """
    s = X.dtype.type(sigma)
    shared = _first_layer(X, theta, w_start[0], b_start[0], n_in[0], n_out[0])
    n_pairs = offsets.shape[0]
    n_chunks = max(1, min(n_threads, n_pairs))
    # The parallel loop only hands out contiguous chunks of pairs to _evaluate_pairs, called by address:
    # compiled once, on its own, not again inside the parallel region.
    for chunk in prange(n_chunks):
        _evaluate_pairs(X, labels, values, loss_kind, theta, table, offsets, s, w_start, b_start, n_in, n_out,
                        acts, shared, chunk * n_pairs // n_chunks, (chunk + 1) * n_pairs // n_chunks, losses)


@njit(cache=True, error_model="numpy", parallel=True)
def weighted_noise_sum(table, offsets, weights, out):
    """``out[d] = sum_i weights[i] * table[offsets[i] + d]`` for every d < len(out), summed in float64.

    The order of the sum is fixed (pair by pair), so the result does not depend on the thread count.
    """
    dim = out.shape[0]
    block = 4096
    n_blocks = (dim + block - 1) // block
    for blk in prange(n_blocks):
        start = blk * block
        stop = min(dim, start + block)
        acc = np.zeros(stop - start)
        for i in range(offsets.shape[0]):
            wi = weights[i]
            noise = table[offsets[i] + start:offsets[i] + stop]
            for d in range(stop - start):
                acc[d] += wi * noise[d]
        out[start:stop] = acc
