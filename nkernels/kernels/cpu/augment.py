"""Data augmentation kernels on NCHW batches.

Randomness comes from the counter-based generator in :mod:`nkernels.kernels.cpu.random`, so a
sample's augmentation depends only on ``(seed, offset + n)``: not on thread count, and the same
in a CUDA twin. The layer owns ``seed`` and ``offset`` and advances ``offset`` by ``N`` per call.
"""
import numpy as np
from numba import njit, prange

from .random import hash_u64

_S32 = np.uint64(32)
_LO32 = np.uint64(0xFFFFFFFF)


@njit(cache=True, error_model="numpy")
def translation_shift(seed, offset, n, max_shift):
    """The shift ``(dy, dx)`` that :func:`random_translate` applies to sample ``n``.

    Both are ``int64`` in ``[-max_shift, max_shift]``, drawn from one 64-bit hash of
    ``(seed, offset + n)``: ``dy`` from its high 32 bits, ``dx`` from its low 32 bits, each by
    Lemire's multiply-shift (integer-only, so CPU and CUDA agree; bias below
    ``(2 * max_shift + 1) / 2**32``). ``max_shift >= 0``.
    """
    z = np.uint64(hash_u64(seed, np.uint64(offset) + np.uint64(n)))
    span = np.uint64(2 * max_shift + 1)
    dy = np.int64(((z >> _S32) * span) >> _S32) - max_shift
    dx = np.int64(((z & _LO32) * span) >> _S32) - max_shift
    return dy, dx


@njit(cache=True, error_model="numpy", parallel=True)
def random_translate(x, max_shift, seed, offset, out):
    """Shift each image by a random integer ``(dy, dx)``, filling the uncovered border with 0.

    ``out[n, c, i, j] = x[n, c, i - dy, j - dx]`` where that index is inside the image, else 0,
    with ``(dy, dx) = translation_shift(seed, offset, n, max_shift)`` (positive ``dy`` moves the
    content down, positive ``dx`` right). Shifts of ``H`` or ``W`` or more give all zeros.

    x, out: (N, C, H, W), C-contiguous, one dtype (float32 or float64); out must not alias x.
    max_shift: int >= 0 (0 copies x). seed, offset: ints; counters used are
    ``offset .. offset + N - 1``. Parallel over N.
    """
    N, C, H, W = x.shape
    for n in prange(N):
        dy, dx = translation_shift(seed, offset, n, max_shift)
        # destination columns [j0, j1) read source columns [j0 - dx, j1 - dx)
        j0 = max(0, min(W, dx))
        j1 = max(j0, min(W, W + dx))
        for c in range(C):
            for i in range(H):
                si = i - dy
                if si < 0 or si >= H:
                    for j in range(W):
                        out[n, c, i, j] = 0.0
                else:
                    for j in range(j0):
                        out[n, c, i, j] = 0.0
                    for j in range(j0, j1):
                        out[n, c, i, j] = x[n, c, si, j - dx]
                    for j in range(j1, W):
                        out[n, c, i, j] = 0.0
