"""Multi-head self-attention on the GPU: CUDA twins of :mod:`nkernels.kernels.cpu.attention`.

Same names, signatures and layout as the CPU kernels; the float arrays are device arrays, ``seed``
and ``counter`` the layer's host buffers (read and advanced only when ``p > 0``). The projections
are the CUDA dense kernels (:mod:`.dense`, the tiled GEMM) on (N*T, E) views. The core is the
CPU's row functions (``_attention_row_*``) compiled as device functions, one thread per row:

* forward: one kernel, a thread per (sample, head, query row): the row's scores (into its row of
  ``attn``), their maximum, the exponentials less the maximum, the normalisation, the dropout
  mask (the CPU's counter-based generator, so the masks are the CPU's bit for bit) and the row's
  context;
* backward: a kernel with a thread per query row (the weights' gradient into ``dattn``, and
  ``dq``), then one with a thread per key row (``dk`` and ``dv``, sums over the query rows), so
  no two threads write one element and nothing is atomic.

The arithmetic and its order are the CPU's (sums in float64; the CPU runs the same sums for a group
of pairs at once), so the results differ from the CPU's only where ``exp`` (libdevice's here,
:func:`nkernels.kernels.cpu.vecmath.exp` there) and the GEMMs' summation orders do.
"""
import numpy as np
from numba import cuda

from ..cpu import attention as _cpu
from .dense import dense_backward, dense_forward
from .launch import device_arrays, grid_stride, python_function

__all__ = ["attention_forward", "attention_backward"]


_row_forward = cuda.jit(device=True)(python_function(_cpu._attention_row_forward))
_row_backward_query = cuda.jit(device=True)(python_function(_cpu._attention_row_backward_query))
_row_backward_key = cuda.jit(device=True)(python_function(_cpu._attention_row_backward_key))


@cuda.jit(cache=True)
def _core_forward(qkv, heads, causal, p, key, base, attn, mask, ctx):
    t_size = qkv.shape[1]
    for r in range(cuda.grid(1), qkv.shape[0] * heads * t_size, cuda.gridsize(1)):
        nh = r // t_size
        _row_forward(qkv, heads, causal, p, key, base, nh // heads, nh % heads, r % t_size, attn, mask, ctx)


@cuda.jit(cache=True)
def _core_backward_queries(qkv, attn, mask, dctx, heads, causal, p, dattn, dqkv):
    t_size = qkv.shape[1]
    for r in range(cuda.grid(1), qkv.shape[0] * heads * t_size, cuda.gridsize(1)):
        nh = r // t_size
        _row_backward_query(qkv, attn, mask, dctx, heads, causal, p, nh // heads, nh % heads, r % t_size, dattn,
                            dqkv)


@cuda.jit(cache=True)
def _core_backward_keys(qkv, attn, mask, dctx, dattn, heads, causal, p, dqkv):
    t_size = qkv.shape[1]
    for r in range(cuda.grid(1), qkv.shape[0] * heads * t_size, cuda.gridsize(1)):
        nh = r // t_size
        _row_backward_key(qkv, attn, mask, dctx, dattn, heads, causal, p, nh // heads, nh % heads, r % t_size, dqkv)


def _rows(*arrays):
    """The (N*T, width) views of (N, T, width) device arrays."""
    return tuple(a.reshape(a.shape[0] * a.shape[1], a.shape[2]) for a in arrays)


def attention_forward(x, in_weight, in_bias, out_weight, out_bias, heads, causal, p, seed, counter, qkv, attn,
                      mask, ctx, out):
    """Multi-head self-attention forward, overwriting ``qkv``, ``attn``, ``mask`` (when ``p > 0``),
    ``ctx`` and ``out``; see :func:`nkernels.kernels.cpu.attention.attention_forward`.

    Device arrays: x (N, T, E), in_weight (3E, E), in_bias (3E,) or 0-length, out_weight (E, E),
    out_bias (E,) or 0-length, qkv (N, T, 3E), attn and mask (N, H, T, T; mask any 4-D array
    when ``p = 0``), ctx and out (N, T, E). seed, counter: one-element int64 host arrays.
    """
    x, qkv, attn, mask, ctx, out = device_arrays(x=x, qkv=qkv, attn=attn, mask=mask, ctx=ctx, out=out)
    n, t, _ = x.shape
    heads, p = int(heads), float(p)
    x2, qkv2, ctx2, out2 = _rows(x, qkv, ctx, out)
    dense_forward(x2, in_weight, in_bias, qkv2)
    dropping = p > 0.0
    key = int(seed[0]) if dropping else 0
    base = np.uint64(int(counter[0])) if dropping else np.uint64(0)
    blocks, threads = grid_stride(n * heads * t, per_thread=1)
    _core_forward[blocks, threads](qkv, heads, bool(causal), p, key, base, attn, mask, ctx)
    if dropping:
        counter[0] += n * heads * t * t
    dense_forward(ctx2, out_weight, out_bias, out2)


def attention_backward(x, dy, in_weight, out_weight, heads, causal, p, qkv, attn, mask, ctx, need_dx, dctx,
                       dattn, dqkv, dx, d_in_weight, d_in_bias, d_out_weight, d_out_bias):
    """Gradients of :func:`attention_forward`, overwriting ``dx`` (when ``need_dx``), the four
    parameter gradients and the workspaces ``dctx``, ``dattn`` and ``dqkv``; see
    :func:`nkernels.kernels.cpu.attention.attention_backward`. Arrays as there, on the device."""
    x, dy, qkv, attn, mask, ctx, dctx, dattn, dqkv, dx = device_arrays(
        x=x, dy=dy, qkv=qkv, attn=attn, mask=mask, ctx=ctx, dctx=dctx, dattn=dattn, dqkv=dqkv, dx=dx)
    n, t, _ = x.shape
    heads, p = int(heads), float(p)
    x2, dy2, ctx2, dctx2, dqkv2, dx2 = _rows(x, dy, ctx, dctx, dqkv, dx)
    dense_backward(ctx2, dy2, out_weight, True, dctx2, d_out_weight, d_out_bias)
    blocks, threads = grid_stride(n * heads * t, per_thread=1)
    _core_backward_queries[blocks, threads](qkv, attn, mask, dctx, heads, bool(causal), p, dattn, dqkv)
    _core_backward_keys[blocks, threads](qkv, attn, mask, dctx, dattn, heads, bool(causal), p, dqkv)
    dense_backward(x2, dqkv2, in_weight, need_dx, dx2, d_in_weight, d_in_bias)
