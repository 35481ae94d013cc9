"""Multi-head self-attention on batch-first (N, T, E) inputs, as ``torch.nn.MultiheadAttention``.

Layout (E = heads * D, one row of ``qkv`` per token)::

    qkv   (N, T, 3E)    x @ in_weight.T + in_bias: q, k, v side by side, head h at columns h*D:(h+1)*D
    attn  (N, H, T, T)  softmax(q k^T / sqrt(D)) per (sample, head), row i over the keys j
    mask  (N, H, T, T)  the dropout mask of the weights: 1/(1-p) or 0 (written only when p > 0)
    ctx   (N, T, E)     (attn * mask) @ v per head, the heads side by side
    out   (N, T, E)     ctx @ out_weight.T + out_bias

The two projections are the dense kernels (:mod:`.dense`, one BLAS GEMM each) on (N*T, E) views.
The core works row by row: for each query row one fused pass computes the scores, their maximum,
the exponentials of the scores less the maximum (so no exponential overflows), the normalisation,
the dropout mask and the row's context. A causal layer gives query ``i`` the keys ``0..i`` only (the
weights of later keys are 0). Dot products and sums accumulate in float64. The work of one row is
described once, by plain functions (``_attention_row_*``) that the CUDA twins compile as device
functions, one thread per row. The CPU computes the same sums in the same order for a group of
(sample, head) pairs at once (``_group_*``, the pair as the innermost axis; a run of groups a thread),
so that its loops are long enough for LLVM to vectorize; its exponentials are
:func:`.vecmath.exp`'s (within 2 ulp of libm's), the only difference from the row functions
(none in float32 on the tests' data).

Dropout on the weights is counter-based as :mod:`.dropout`: the weight ``(n, h, i, j)`` is kept
when ``hash_uniform(seed[0], counter[0] + ((n*H + h)*T + i)*T + j) >= p``, a pure function of its
index, so the CUDA twins draw the same masks; a forward with ``p > 0`` advances ``counter[0]`` by
``N*H*T*T``, one with ``p = 0`` (evaluation) touches neither ``seed`` nor ``counter``.
"""
import math

import numpy as np
from numba import njit, prange

from ..calls import by_address
from . import vecmath
from .dense import dense_backward, dense_forward
from .random import hash_uniform
from .threads import thread_count


# -- one row of the core: the CUDA twins' device functions, the reference of the CPU's groups --------


@njit(cache=True, error_model="numpy", inline="always")
def _columns(width, heads, h):
    """D, and the first columns of head ``h``'s q, k and v in rows of ``qkv`` of ``width`` (3E).
    (Numbers in, so that the CUDA simulator, running the row functions as Python, can call it.)"""
    e = width // 3
    d_size = e // heads
    q0 = h * d_size
    return d_size, q0, e + q0, 2 * e + q0


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
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


# -- the core on the CPU: groups of (sample, head) pairs side by side ---------------------------------
#
# The row functions' loops run over T or D (8 in the transformer preset): too short for LLVM's vector
# loops, and each float64 sum is one chain of dependent adds. A group's q, k, v (and dctx) are gathered
# into float64 scratch with the pair as the last axis, ``scratch[t * D + d, g]``, its weights into
# ``scratch[i * T + j, g]``, and every loop runs over the pairs innermost.
# (T = D = 8, N*H = 128, two threads: forward 86 -> 60 us, backward 151 -> 104 us.)

#: pairs side by side in one pass (the vectorized axis)
GROUP = 16


@njit(cache=True, error_model="numpy", inline="always")
def _next_pair(n, h, heads):
    """The (sample, head) pair after ``(n, h)``."""
    return (n, h + 1) if h + 1 < heads else (n + 1, 0)


@njit(cache=True, error_model="numpy")
def _gather(source, heads, first, size, c0, d_size, out):
    """``out[t * D + d, g] = source[n, t, c0 + h * D + d]`` in float64 for the ``size`` pairs
    ``(n, h)`` from pair index ``first`` on (``n * heads + h``)."""
    n, h = divmod(first, heads)
    for g in range(size):
        for t in range(source.shape[1]):
            row = source[n, t]
            for d in range(d_size):
                out[t * d_size + d, g] = row[c0 + h * d_size + d]
        n, h = _next_pair(n, h, heads)


@njit(cache=True, error_model="numpy")
def _gather_qkv(qkv, heads, first, size, q, k, v):
    """Gather the q, k and v of the ``size`` pairs from ``first`` on (:func:`_gather`); returns T, E, D."""
    t_size, e = qkv.shape[1], qkv.shape[2] // 3
    d_size = e // heads
    _gather(qkv, heads, first, size, 0, d_size, q)
    _gather(qkv, heads, first, size, e, d_size, k)
    _gather(qkv, heads, first, size, 2 * e, d_size, v)
    return t_size, e, d_size


@njit(cache=True, error_model="numpy")
def _scatter(values, heads, first, size, c0, d_size, t, target):
    """``target[n, t, c0 + h * D + d] = values[d, g]`` for the ``size`` pairs from ``first`` on."""
    n, h = divmod(first, heads)
    for g in range(size):
        row = target[n, t]
        for d in range(d_size):
            row[c0 + h * d_size + d] = values[d, g]
        n, h = _next_pair(n, h, heads)


@njit(cache=True, error_model="numpy")
def _copy_squares(squares, heads, first, size, scratch, into_scratch):
    """Between ``squares[n, h, i, j]`` (N, H, T, T) and ``scratch[i * T + j, g]`` for the ``size``
    pairs from ``first`` on: into the scratch when ``into_scratch``, else out of it."""
    n, h = divmod(first, heads)
    for g in range(size):
        square = squares[n, h]
        t_size = square.shape[1]
        for i in range(t_size):
            row = square[i]
            for j in range(t_size):
                if into_scratch:
                    scratch[i * t_size + j, g] = row[j]
                else:
                    row[j] = scratch[i * t_size + j, g]
        n, h = _next_pair(n, h, heads)


@njit(cache=True, error_model="numpy")
def _row_products(a, b, i, stop, d_size, size, out):
    """``out[j, g] = sum over d of a[i * D + d, g] * b[j * D + d, g]`` for ``j < stop``, summed in
    the order of ``d``: row ``i`` of ``a`` against the first ``stop`` rows of ``b``, for each pair."""
    for j in range(stop):
        sums = out[j]
        sums[:size] = 0.0
        for d in range(d_size):
            xs, ys = a[i * d_size + d], b[j * d_size + d]
            for g in range(size):
                sums[g] += xs[g] * ys[g]


@by_address
@njit(cache=True, error_model="numpy")
def _group_forward(qkv, heads, causal, p, key, base, first, size, attn, mask, ctx, q, k, v, acc, weights, kept,
                   top, total):
    """The forward of the ``size`` pairs from ``first`` on, each query row as
    :func:`_attention_row_forward` computes it. Scratch: q, k, v (T*D, GROUP) float64; acc
    (max(T, D), GROUP) float64; weights, kept (T*T, GROUP) of the arrays' dtype; top, total (GROUP,)
    float64."""
    t_size, e, d_size = _gather_qkv(qkv, heads, first, size, q, k, v)
    scale = 1.0 / math.sqrt(d_size)
    dropping = p > 0.0
    if dropping:
        keep = 1.0 / (1.0 - p) if p < 1.0 else 0.0
        for g in range(size):
            offset = base + np.uint64((first + g) * t_size * t_size)
            for ij in range(t_size * t_size):
                kept[ij, g] = keep if hash_uniform(key, offset + np.uint64(ij)) >= p else 0.0
        _copy_squares(mask, heads, first, size, kept, False)
    for i in range(t_size):
        stop = i + 1 if causal else t_size
        row = i * t_size
        _row_products(q, k, i, stop, d_size, size, acc)
        top[:size] = -math.inf
        for j in range(stop):
            sums, ws = acc[j], weights[row + j]
            for g in range(size):
                ws[g] = sums[g] * scale
                top[g] = max(top[g], np.float64(ws[g]))
        total[:size] = 0.0
        for j in range(stop):
            ws = weights[row + j]
            for g in range(size):
                x = vecmath.exp(np.float64(ws[g]) - top[g])
                ws[g] = x
                total[g] += x
        for g in range(size):
            total[g] = 1.0 / total[g]
        for j in range(stop):
            ws = weights[row + j]
            for g in range(size):
                ws[g] *= total[g]
        for j in range(stop, t_size):
            weights[row + j, :size] = 0.0
        for d in range(d_size):
            acc[d, :size] = 0.0
        for j in range(stop):
            ws, ms = weights[row + j], kept[row + j]
            for d in range(d_size):
                sums, vs = acc[d], v[j * d_size + d]
                for g in range(size):
                    w = ws[g] * ms[g] if dropping else ws[g]
                    sums[g] += np.float64(w) * vs[g]
        _scatter(acc, heads, first, size, 0, d_size, i, ctx)
    _copy_squares(attn, heads, first, size, weights, False)


@by_address
@njit(cache=True, error_model="numpy")
def _group_backward(qkv, attn, mask, dctx, heads, causal, p, first, size, dattn, dqkv, q, k, v, dc, acc, acc2,
                    weights, kept, dweights, dot):
    """The backward of the ``size`` pairs from ``first`` on: every query row as
    :func:`_attention_row_backward_query`, then every key row as :func:`_attention_row_backward_key`
    computes it. Scratch: q, k, v, dc (T*D, GROUP) float64; acc, acc2 (max(T, D), GROUP) float64;
    weights, kept, dweights (T*T, GROUP) of the arrays' dtype; dot (GROUP,) float64."""
    t_size, e, d_size = _gather_qkv(qkv, heads, first, size, q, k, v)
    scale = 1.0 / math.sqrt(d_size)
    dropping = p > 0.0
    _gather(dctx, heads, first, size, 0, d_size, dc)
    _copy_squares(attn, heads, first, size, weights, True)
    if dropping:
        _copy_squares(mask, heads, first, size, kept, True)
    for i in range(t_size):
        stop = i + 1 if causal else t_size
        row = i * t_size
        _row_products(dc, v, i, stop, d_size, size, acc)
        dot[:size] = 0.0  # sum_j P_ij dP_ij, the softmax's correction
        for j in range(stop):
            sums, ws, ms, ds = acc[j], weights[row + j], kept[row + j], dweights[row + j]
            for g in range(size):
                x = sums[g] * ms[g] if dropping else sums[g]
                ds[g] = x
                dot[g] += x * ws[g]
        for j in range(stop):
            ws, ds = weights[row + j], dweights[row + j]
            for g in range(size):
                ds[g] = ws[g] * (ds[g] - dot[g]) * scale
        for j in range(stop, t_size):
            dweights[row + j, :size] = 0.0
        for d in range(d_size):
            acc[d, :size] = 0.0
        for j in range(stop):
            ds = dweights[row + j]
            for d in range(d_size):
                sums, ks = acc[d], k[j * d_size + d]
                for g in range(size):
                    sums[g] += np.float64(ds[g]) * ks[g]
        _scatter(acc, heads, first, size, 0, d_size, i, dqkv)
    _copy_squares(dattn, heads, first, size, dweights, False)
    for j in range(t_size):
        for d in range(d_size):
            acc[d, :size] = 0.0
            acc2[d, :size] = 0.0
        for i in range(j if causal else 0, t_size):
            ds, ws, ms = dweights[i * t_size + j], weights[i * t_size + j], kept[i * t_size + j]
            for d in range(d_size):
                sums, sums2, qs, cs = acc[d], acc2[d], q[i * d_size + d], dc[i * d_size + d]
                for g in range(size):
                    w = ws[g] * ms[g] if dropping else ws[g]
                    sums[g] += np.float64(ds[g]) * qs[g]
                    sums2[g] += np.float64(w) * cs[g]
        _scatter(acc, heads, first, size, e, d_size, j, dqkv)
        _scatter(acc2, heads, first, size, 2 * e, d_size, j, dqkv)


# -- the core, in parallel: a run of groups a thread ---------------------------------------------------


@njit(cache=True, error_model="numpy")
def _grouping(qkv, heads):
    """T, D, the number of pairs, of groups, and of runs of groups (one a thread, at least one)."""
    pairs = qkv.shape[0] * heads
    groups = (pairs + GROUP - 1) // GROUP
    return qkv.shape[1], qkv.shape[2] // (3 * heads), pairs, groups, max(1, min(groups, thread_count()))


@by_address
@njit(cache=True, error_model="numpy", parallel=True)
def _attention_core_forward(qkv, heads, causal, p, key, base, attn, mask, ctx):
    t_size, d_size, pairs, groups, runs = _grouping(qkv, heads)
    for r in prange(runs):
        rows, squares = t_size * d_size, t_size * t_size
        q, k, v = np.empty((rows, GROUP)), np.empty((rows, GROUP)), np.empty((rows, GROUP))
        acc, top, total = np.empty((max(t_size, d_size), GROUP)), np.empty(GROUP), np.empty(GROUP)
        weights, kept = np.empty((squares, GROUP), attn.dtype), np.empty((squares, GROUP), attn.dtype)
        for group in range(r * groups // runs, (r + 1) * groups // runs):
            first = group * GROUP
            _group_forward(qkv, heads, causal, p, key, base, first, min(GROUP, pairs - first), attn, mask, ctx, q,
                           k, v, acc, weights, kept, top, total)


@by_address
@njit(cache=True, error_model="numpy", parallel=True)
def _attention_core_backward(qkv, attn, mask, dctx, heads, causal, p, dattn, dqkv):
    t_size, d_size, pairs, groups, runs = _grouping(qkv, heads)
    for r in prange(runs):
        rows, squares = t_size * d_size, t_size * t_size
        q, k, v, dc = np.empty((rows, GROUP)), np.empty((rows, GROUP)), np.empty((rows, GROUP)), np.empty((rows, GROUP))
        acc, acc2, dot = np.empty((max(t_size, d_size), GROUP)), np.empty((max(t_size, d_size), GROUP)), np.empty(GROUP)
        weights, kept = np.empty((squares, GROUP), attn.dtype), np.empty((squares, GROUP), attn.dtype)
        dweights = np.empty((squares, GROUP), attn.dtype)
        for group in range(r * groups // runs, (r + 1) * groups // runs):
            first = group * GROUP
            _group_backward(qkv, attn, mask, dctx, heads, causal, p, first, min(GROUP, pairs - first), dattn, dqkv,
                            q, k, v, dc, acc, acc2, weights, kept, dweights, dot)


_dense_forward, _dense_backward = by_address(dense_forward), by_address(dense_backward)


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
    _dense_forward(x.reshape(rows, e), in_weight, in_bias, qkv.reshape(rows, 3 * e))
    key = seed[0] if p > 0.0 else 0
    base = np.uint64(counter[0]) if p > 0.0 else np.uint64(0)
    _attention_core_forward(qkv, heads, causal, p, key, base, attn, mask, ctx)
    if p > 0.0:
        counter[0] += n_size * heads * t_size * t_size
    _dense_forward(ctx.reshape(rows, e), out_weight, out_bias, out.reshape(rows, e))


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
    _dense_backward(ctx.reshape(rows, e), dy.reshape(rows, e), out_weight, True, dctx.reshape(rows, e), d_out_weight,
                   d_out_bias)
    _attention_core_backward(qkv, attn, mask, dctx, heads, causal, p, dattn, dqkv)
    _dense_backward(x.reshape(rows, e), dqkv.reshape(rows, 3 * e), in_weight, need_dx, dx.reshape(rows, e),
                   d_in_weight, d_in_bias)
