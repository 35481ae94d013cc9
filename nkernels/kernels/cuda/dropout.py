"""Inverted dropout on flat (1-D) device views: CUDA twins of :mod:`nkernels.kernels.cpu.dropout`.

The keep decision for element ``i`` is ``hash_uniform(seed, offset + i) >= p``, computed by the
CPU's own counter-based generator compiled as a device function
(:mod:`nkernels.kernels.cuda.random`), so the CPU and the GPU draw the same mask bit for bit,
whatever the grid. Both kernels come from :func:`~nkernels.kernels.cuda.elementwise.elementwise`;
the forward's launcher reads the layer's host buffers (seed, counter), launches one pass that
writes ``mask`` and ``out`` (x read once) and advances the counter.
"""
from .elementwise import elementwise

__all__ = ["dropout_forward", "dropout_backward"]

_dropout_mask = elementwise(
    "dropout_mask(x, p: float64, seed: int64, offset: uint64, keep: scalar, mask, out)",
    """
    mask = keep if hash_uniform(seed, offset + uint64(i)) >= p else 0
    out = x * mask
    """)
dropout_backward = elementwise("dropout_backward(dy, mask, dx)", "dx = dy * mask",
                               "``dx = dy * mask`` (overwrites dx); all 1-D device arrays of equal length and dtype.")


def dropout_forward(x, p, seed, counter, mask, out):
    """``mask[i] = 1/(1-p)`` if ``hash_uniform(seed[0], counter[0] + i) >= p`` else 0; ``out = x * mask``;
    then ``counter[0] += x.size``.

    x, mask, out: 1-D C-contiguous device arrays of equal length and one dtype. p: float in
    ``[0, 1]``. seed, counter: one-element int64 host arrays (the layer's buffers, which stay on
    the host); the counters used are ``counter[0] .. counter[0] + x.size - 1``.
    """
    p = float(p)
    _dropout_mask(x, p, int(seed[0]), int(counter[0]), 1.0 / (1.0 - p) if p < 1.0 else 0.0, mask, out)
    counter[0] += x.shape[0]
