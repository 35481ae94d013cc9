"""Scratch arrays of the CPU kernels that start on a cache line, as the host arrays of
:mod:`nkernels.runtime.devices` do (:data:`~nkernels.runtime.devices.ALIGNMENT` bytes): a 64-byte vector
load or store from the start of such an array never spans two lines. Numba's own arrays start 16 bytes
past one (large ones 16 bytes past a page): a product reading the transpose of a recurrent layer's
weights from one ran ~7% slower (one thread's LSTM(16->128) forward, 929 against 995 µs).
"""
import numpy as np
from numba import njit

from ...runtime.devices import ALIGNMENT

__all__ = ["aligned_empty", "aligned_empty_like"]


@njit(cache=True)
def aligned_empty(size, like):
    """An uninitialized 1-D array of ``size`` entries of ``like``'s dtype, its first entry on a line."""
    step = like.itemsize
    raw = np.empty(size + ALIGNMENT // step, like.dtype)
    start = (-raw.ctypes.data) % ALIGNMENT // step
    return raw[start:start + size]


@njit(cache=True)
def aligned_empty_like(a):
    """An uninitialized C-contiguous array of ``a``'s shape and dtype, starting on a line."""
    return aligned_empty(a.size, a).reshape(a.shape)
