"""Multi-head self-attention on batch-first (N, T, E) inputs, as ``torch.nn.MultiheadAttention``.

Layout (E = heads * D, one row of ``qkv`` per token)::

    qkv   (N, T, 3E)    x @ in_weight.T + in_bias: q, k, v side by side, head h at columns h*D:(h+1)*D
    attn  (N, H, T, T)  softmax(q k^T / sqrt(D)) per (sample, head), row i over the keys j
    mask  (N, H, T, T)  the dropout mask of the weights: 1/(1-p) or 0 (written only when p > 0)
    ctx   (N, T, E)     (attn * mask) @ v per head, the heads side by side
    out   (N, T, E)     ctx @ out_weight.T + out_bias

The two projections are the dense kernels (:mod:`.dense`, one BLAS GEMM each) on (N*T, E) views.
The core runs in ``prange`` over (sample, head) pairs: for each query row one fused pass computes
the scores, their maximum, the exponentials of the scores less the maximum (so no exponential
overflows), the normalisation, the dropout mask and the row's context. A causal layer gives query
``i`` the keys ``0..i`` only (the weights of later keys are 0). Dot products and sums accumulate in
float64. The work of one row is a plain function (``_attention_row_*``) that the CUDA twins
compile as a device function, one thread per row, so both devices compute the same thing in the
same order. On the CPU they are inlined into the parallel loops (Numba's ``inline="always"``): called,
each row's views and arguments cost about as much as its arithmetic at T = D = 8 (the core 20% slower).

Dropout on the weights is counter-based as :mod:`.dropout`: the weight ``(n, h, i, j)`` is kept
when ``hash_uniform(seed[0], counter[0] + ((n*H + h)*T + i)*T + j) >= p``, a pure function of its
index, so the CUDA twins draw the same masks; a forward with ``p > 0`` advances ``counter[0]`` by
``N*H*T*T``, one with ``p = 0`` (evaluation) touches neither ``seed`` nor ``counter``.
"""
import math

import numpy as np
from numba import njit, prange

from .dense import dense_backward, dense_forward
from .random import hash_uniform


# -- one row of the core: plain functions that the CUDA twins compile as device functions ------------


@njit(cache=True, error_model="numpy", inline="always")
def _columns(width, heads, h):
    """D, and the first columns of head ``h``'s q, k and v in rows of ``qkv`` of ``width`` (3E).
    (Numbers in, so that the CUDA simulator, running the row functions as Python, can call it.)"""
    e = width // 3
    d_size = e // heads
    q0 = h * d_size
    return d_size, q0, e + q0, 2 * e + q0


@njit(cache=True, error_model="numpy", inline="always")
def _attention_row_forward(qkv, heads, causal, p, key, base, n, h, i, attn, mask, ctx):
    """Query row ``i`` of head ``h`` of sample ``n``: its scores, their maximum, the exponentials less
    the maximum, the normalisation (into ``attn``), its dropout mask (when ``p > 0``) and its context
    (into ``ctx``); ``base`` is the counter of weight (0, 0, 0, 0), a ``np.uint64``."""
    t_size = qkv.shape[1]
    d_size, q0, k0, v0 = _columns(qkv.shape[2], heads, h)
    query, keys, values = qkv[n, i, q0:q0 + d_size], qkv[n, :, k0:k0 + d_size], qkv[n, :, v0:v0 + d_size]
    weights = attn[n, h, i]
    scale = 1.0 / math.sqrt(d_size)
    stop = i + 1 if causal else t_size
    top = -math.inf
    for j in range(stop):
        s = 0.0
        for d in range(d_size):
            s += np.float64(query[d]) * keys[j, d]
        weights[j] = s * scale
        top = max(top, np.float64(weights[j]))
    total = 0.0
    for j in range(stop):
        w = math.exp(np.float64(weights[j]) - top)
        weights[j] = w
        total += w
    inv = 1.0 / total
    for j in range(stop):
        weights[j] *= inv
    for j in range(stop, t_size):
        weights[j] = 0.0
    dropping = p > 0.0
    kept = mask[n, h, i] if dropping else weights  # (the weights stand in for no mask; never read then)
    if dropping:
        keep = 1.0 / (1.0 - p) if p < 1.0 else 0.0
        offset = base + np.uint64(((n * heads + h) * t_size + i) * t_size)
        for j in range(t_size):
            kept[j] = keep if hash_uniform(key, offset + np.uint64(j)) >= p else 0.0
    context = ctx[n, i, q0:q0 + d_size]
    for d in range(d_size):
        acc = 0.0
        for j in range(stop):
            w = weights[j] * kept[j] if dropping else weights[j]
            acc += np.float64(w) * values[j, d]
        context[d] = acc


@njit(cache=True, error_model="numpy", inline="always")
def _attention_row_backward_query(qkv, attn, mask, dctx, heads, causal, p, n, h, i, dattn, dqkv):
    """Query row ``i`` of head ``h`` of sample ``n`` in the backward pass: the gradient of its
    weights, through the dropout mask and the softmax, times the scale (into ``dattn``), and its
    query's gradient (into ``dqkv``)."""
    t_size = qkv.shape[1]
    d_size, q0, k0, v0 = _columns(qkv.shape[2], heads, h)
    keys, values = qkv[n, :, k0:k0 + d_size], qkv[n, :, v0:v0 + d_size]
    weights, dweights, dcontext = attn[n, h, i], dattn[n, h, i], dctx[n, i, q0:q0 + d_size]
    dropping = p > 0.0
    kept = mask[n, h, i] if dropping else weights  # (never read without dropout)
    scale = 1.0 / math.sqrt(d_size)
    stop = i + 1 if causal else t_size
    dot = 0.0  # sum_j P_ij dP_ij, the softmax's correction
    for j in range(stop):
        g = 0.0
        for d in range(d_size):
            g += np.float64(dcontext[d]) * values[j, d]
        if dropping:
            g *= kept[j]
        dweights[j] = g
        dot += g * weights[j]
    for j in range(stop):
        dweights[j] = weights[j] * (dweights[j] - dot) * scale
    for j in range(stop, t_size):
        dweights[j] = 0.0
    dquery = dqkv[n, i, q0:q0 + d_size]
    for d in range(d_size):
        acc = 0.0
        for j in range(stop):
            acc += np.float64(dweights[j]) * keys[j, d]
        dquery[d] = acc


@njit(cache=True, error_model="numpy", inline="always")
def _attention_row_backward_key(qkv, attn, mask, dctx, dattn, heads, causal, p, n, h, j, dqkv):
    """Key row ``j`` of head ``h`` of sample ``n`` in the backward pass: its key's and its value's
    gradients (into ``dqkv``), sums over the query rows that see it, from ``dattn``."""
    t_size = qkv.shape[1]
    d_size, q0, k0, v0 = _columns(qkv.shape[2], heads, h)
    queries, dcontexts = qkv[n, :, q0:q0 + d_size], dctx[n, :, q0:q0 + d_size]
    weights, dweights = attn[n, h], dattn[n, h]
    dropping = p > 0.0
    kept = mask[n, h] if dropping else weights  # (never read without dropout)
    dkey, dvalue = dqkv[n, j, k0:k0 + d_size], dqkv[n, j, v0:v0 + d_size]
    for d in range(d_size):
        dk = 0.0
        dv = 0.0
        for i in range(j if causal else 0, t_size):
            w = weights[i, j] * kept[i, j] if dropping else weights[i, j]
            dk += np.float64(dweights[i, j]) * queries[i, d]
            dv += np.float64(w) * dcontexts[i, d]
        dkey[d] = dk
        dvalue[d] = dv


# -- the core, in parallel over (sample, head) ---------------------------------------------------------


@njit(cache=True, error_model="numpy", parallel=True)
def _attention_core_forward(qkv, heads, causal, p, key, base, attn, mask, ctx):
    n_size, t_size = qkv.shape[0], qkv.shape[1]
    for nh in prange(n_size * heads):
        n = nh // heads
        h = nh - n * heads
        for i in range(t_size):
            _attention_row_forward(qkv, heads, causal, p, key, base, n, h, i, attn, mask, ctx)


@njit(cache=True, error_model="numpy", parallel=True)
def _attention_core_backward(qkv, attn, mask, dctx, heads, causal, p, dattn, dqkv):
    n_size, t_size = qkv.shape[0], qkv.shape[1]
    for nh in prange(n_size * heads):
        n = nh // heads
        h = nh - n * heads
        for i in range(t_size):  # every query row of (n, h) before any key row reads dattn
            _attention_row_backward_query(qkv, attn, mask, dctx, heads, causal, p, n, h, i, dattn, dqkv)
        for j in range(t_size):
            _attention_row_backward_key(qkv, attn, mask, dctx, dattn, heads, causal, p, n, h, j, dqkv)


@njit(cache=True, error_model="numpy")
def attention_forward(x, in_weight, in_bias, out_weight, out_bias, heads, causal, p, seed, counter, qkv, attn,
                      mask, ctx, out):
    """Multi-head self-attention forward, overwriting ``qkv``, ``attn``, ``mask`` (when ``p > 0``),
    ``ctx`` and ``out`` (see the module's layout).

    x (N, T, E); in_weight (3E, E); in_bias (3E,) or 0-length for no bias; out_weight (E, E);
    out_bias (E,) or 0-length; heads: an int dividing E; causal: bool; p: the dropout rate of the
    weights in ``[0, 1]`` (0 in evaluation); seed, counter: one-element int64 arrays, read and
    advanced by ``N*H*T*T`` only when ``p > 0``; qkv (N, T, 3E); attn (N, H, T, T); mask
    (N, H, T, T), or any 4-D array when ``p = 0``; ctx, out (N, T, E). All float arrays
    C-contiguous and of one dtype; attn, mask and ctx are kept for the backward pass.
    """
    n_size, t_size, e = x.shape
    rows = n_size * t_size
    dense_forward(x.reshape(rows, e), in_weight, in_bias, qkv.reshape(rows, 3 * e))
    key = seed[0] if p > 0.0 else 0
    base = np.uint64(counter[0]) if p > 0.0 else np.uint64(0)
    _attention_core_forward(qkv, heads, causal, p, key, base, attn, mask, ctx)
    if p > 0.0:
        counter[0] += n_size * heads * t_size * t_size
    dense_forward(ctx.reshape(rows, e), out_weight, out_bias, out.reshape(rows, e))


@njit(cache=True, error_model="numpy")
def attention_backward(x, dy, in_weight, out_weight, heads, causal, p, qkv, attn, mask, ctx, need_dx, dctx,
                       dattn, dqkv, dx, d_in_weight, d_in_bias, d_out_weight, d_out_bias):
    """Gradients of :func:`attention_forward`, overwriting ``dx`` (when ``need_dx``), the four
    parameter gradients and the workspaces ``dctx`` (N, T, E), ``dattn`` (N, H, T, T) and
    ``dqkv`` (N, T, 3E).

    x, in_weight, out_weight, heads, causal, p as in the forward; dy (N, T, E); qkv, attn, mask,
    ctx as the forward left them (unchanged here, so a second backward after one forward gives
    the same gradients); dx (N, T, E); d_in_weight (3E, E); d_in_bias (3E,) or 0-length;
    d_out_weight (E, E); d_out_bias (E,) or 0-length.
    """
    n_size, t_size, e = x.shape
    rows = n_size * t_size
    dense_backward(ctx.reshape(rows, e), dy.reshape(rows, e), out_weight, True, dctx.reshape(rows, e), d_out_weight,
                   d_out_bias)
    _attention_core_backward(qkv, attn, mask, dctx, heads, causal, p, dattn, dqkv)
    dense_backward(x.reshape(rows, e), dqkv.reshape(rows, 3 * e), in_weight, need_dx, dx.reshape(rows, e),
                   d_in_weight, d_in_bias)
