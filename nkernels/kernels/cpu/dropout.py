"""Inverted dropout on flat (1-D) views, so one specialization per dtype serves every shape.

The keep decision for element ``i`` is ``hash_uniform(seed, offset + i) >= p`` (see
:mod:`nkernels.kernels.cpu.random`): a pure function of ``(seed, offset + i)``, so the mask does
not depend on thread count and a CUDA twin built on the same helpers gives the same mask bit
for bit. ``seed`` and ``counter`` are one-element int64 arrays (the layer's buffers), and the
forward kernel advances ``counter`` by ``x.size`` per call, so the compiled step and the
layer-by-layer path keep it the same way.

Evaluation mode (identity) is the layer's business: it skips the kernel. ``p = 0`` keeps every
element with scale 1, ``p = 1`` drops every element (mask 0), like ``torch.nn.functional.dropout``.
"""
import numpy as np
from numba import njit, prange

from .random import hash_uniform


@njit(cache=True, error_model="numpy", parallel=True)
def dropout_forward(x, p, seed, counter, mask, out):
    """``mask[i] = 1/(1-p)`` if ``hash_uniform(seed[0], counter[0] + i) >= p`` else 0; ``out = x * mask``;
    then ``counter[0] += x.size``.

    x, mask, out: 1-D C-contiguous arrays of equal length and one dtype (float32 or float64);
    the layer passes flat views of its input, mask and output. p: a float in ``[0, 1]``. seed,
    counter: one-element int64 arrays; the counters used are ``counter[0] .. counter[0] +
    x.size - 1``. mask is kept for the backward pass.
    """
    scale = 1.0 / (1.0 - p) if p < 1.0 else 0.0
    key = seed[0]
    base = np.uint64(counter[0])
    for i in prange(x.shape[0]):
        if hash_uniform(key, base + np.uint64(i)) >= p:
            mask[i] = scale
        else:
            mask[i] = 0.0
        out[i] = x[i] * mask[i]
    counter[0] += x.shape[0]


@njit(cache=True, error_model="numpy", parallel=True)
def dropout_backward(dy, mask, dx):
    """``dx = dy * mask`` (overwrites dx); all 1-D C-contiguous of equal length and dtype."""
    for i in prange(dy.shape[0]):
        dx[i] = dy[i] * mask[i]
