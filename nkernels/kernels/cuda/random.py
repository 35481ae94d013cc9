"""Counter-based random numbers on the GPU: CUDA twins of :mod:`nkernels.kernels.cpu.random`.

The generator is the CPU module's, compiled for the device: ``*_device`` below are
``cuda.jit(device=True)`` wraps of the CPU helpers' Python bodies (``.py_func``), whose own calls
to the ``@njit`` helpers numba-cuda compiles as device functions too. Only ``uint64`` xor, shift,
add and multiply and one exact ``uint64 -> float64`` conversion are involved, so the uniform
draws (and the dropout masks and translation shifts built from them) are bit-identical to the
CPU's; ``hash_normal`` goes through ``log``/``sqrt``/``cos``, whose last bit may differ between
the CPU's libm and CUDA's libdevice.

The scalar functions (``hash_u64``, ``hash_uniform`` ...) are the CPU module's own, re-exported:
they take no arrays, so the host-callable versions are the same on either device. The array
kernels ``uniform_fill`` and ``normal_fill`` take device arrays.

Pitfall (from the CPU module): under the simulator the ``.py_func`` bodies run as plain Python
on NumPy scalars, where ``np.uint64(-1)`` raises: pass non-negative seeds and offsets there.
"""
import numpy as np
from numba import cuda

from ..cpu import random as _cpu
from ..cpu.random import hash_normal, hash_randint, hash_u64, hash_uniform, mix64, u64_to_uniform
from .launch import as_device_array, grid_stride, python_function

__all__ = ["uniform_fill", "normal_fill", "mix64", "hash_u64", "u64_to_uniform", "hash_uniform",
           "hash_randint", "hash_normal"]

hash_u64_device = cuda.jit(device=True)(python_function(_cpu.hash_u64))
hash_uniform_device = cuda.jit(device=True)(python_function(_cpu.hash_uniform))
hash_normal_device = cuda.jit(device=True)(python_function(_cpu.hash_normal))

_F32_BELOW_ONE = _cpu._F32_BELOW_ONE


@cuda.jit(cache=True)
def _uniform_fill(seed, offset, out):
    base = np.uint64(offset)
    for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        out[i] = hash_uniform_device(seed, base + np.uint64(i))
        if out[i] >= 1.0:
            out[i] = _F32_BELOW_ONE


@cuda.jit(cache=True)
def _normal_fill(seed, offset, mean, std, out):
    base = np.uint64(offset)
    for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        out[i] = mean + std * hash_normal_device(seed, base + np.uint64(i))


def uniform_fill(seed, offset, out):
    """``out[i] = hash_uniform(seed, offset + i)``; out is a 1-D float32 or float64 device array.

    Uses counters ``offset .. offset + out.size - 1``; a float32 draw that would round up to 1.0
    is stored as the largest float32 below 1. Bit-identical to the CPU kernel.
    """
    out = as_device_array(out, "out")
    if out.shape[0] == 0:
        return
    blocks, threads = grid_stride(out.shape[0], per_thread=1)
    _uniform_fill[blocks, threads](int(seed), int(offset), out)


def normal_fill(seed, offset, mean, std, out):
    """``out[i] = mean + std * hash_normal(seed, offset + i)``; out a 1-D float device array.
    May differ from the CPU kernel in the last bit (libdevice vs libm)."""
    out = as_device_array(out, "out")
    if out.shape[0] == 0:
        return
    blocks, threads = grid_stride(out.shape[0], per_thread=1)
    _normal_fill[blocks, threads](int(seed), int(offset), np.float64(mean), np.float64(std), out)
