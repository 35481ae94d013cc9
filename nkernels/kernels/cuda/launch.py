"""Launch helpers shared by the CUDA kernel families: device arrays, grid sizing, dtypes, scratch.

Nothing here touches the GPU at import: the device's multiprocessor count is read on the first
launch (and cached), and no kernel is compiled until it is first called.

Under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) every thread of a block is a Python
thread, so the helpers size launches down (few, small blocks; small GEMM tiles). Grid-stride
loops make every kernel correct for any grid, so this changes only the speed.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ...runtime.devices import as_device_array, flat_view, simulator

__all__ = ["THREADS", "UNROLL", "BLOCKS_PER_SM", "simulator", "sm_count", "as_device_array", "flat_view", "dtype_of",
           "scalar", "grid_stride", "reduce_grid", "reduce_threads", "scratch", "read_scalar", "python_function"]

#: Threads per block of the memory-bound (grid-stride) kernels on a real GPU.
THREADS = 256
#: Elements each thread handles per grid-stride iteration in the unrolled elementwise kernels.
UNROLL = 4
#: Blocks per multiprocessor of a grid-stride launch (2048 resident threads / 256 = 8: one wave).
BLOCKS_PER_SM = 8
#: Threads per block and a cap on the blocks under the simulator (each thread is a Python thread).
SIM_THREADS = 8
SIM_MAX_BLOCKS = 2
#: Blocks of the first pass of a two-pass reduction, and the threads of its blocks. The second
#: pass sums the per-block partials with one block of REDUCE_THREADS threads, so the result does
#: not depend on timing (no atomics): it is deterministic for a given device.
REDUCE_THREADS = 256
REDUCE_MAX_BLOCKS = 1024
SIM_REDUCE_THREADS = 8
SIM_REDUCE_MAX_BLOCKS = 3

_sm_count = None
_scratch: dict = {}


def sm_count() -> int:
    """Multiprocessors of the current device (read once; 1 under the simulator)."""
    global _sm_count
    if _sm_count is None:
        if simulator():
            _sm_count = 1
        else:
            _sm_count = int(cuda.get_current_device().MULTIPROCESSOR_COUNT)
    return _sm_count


def python_function(cpu_kernel):
    """The Python body of a CPU ``@njit`` function (its ``.py_func``), to compile as a CUDA device function;
    the function itself under ``NUMBA_DISABLE_JIT=1``, where ``@njit`` leaves it undecorated."""
    return getattr(cpu_kernel, "py_func", cpu_kernel)


def dtype_of(a) -> np.dtype:
    """The NumPy dtype of a device array."""
    return np.dtype(a.dtype)


def scalar(dtype, value):
    """``value`` as a NumPy scalar of ``dtype``, so that a kernel argument is typed in that dtype
    (a Python float would be typed float64 and drag float32 arithmetic up to float64)."""
    return np.dtype(dtype).type(value)


def grid_stride(n: int, per_thread: int = UNROLL):
    """``(blocks, threads)`` for a grid-stride loop over ``n`` items, ``per_thread`` per thread
    per iteration: at most one wave of resident blocks on a real GPU."""
    if simulator():
        threads = SIM_THREADS
        blocks = max(1, min(SIM_MAX_BLOCKS, math.ceil(n / (threads * per_thread))))
        return blocks, threads
    threads = THREADS
    blocks = max(1, min(sm_count() * BLOCKS_PER_SM, math.ceil(n / (threads * per_thread))))
    return blocks, threads


def reduce_grid(n: int):
    """``(blocks, threads)`` of the first pass of a two-pass reduction over ``n`` items."""
    if simulator():
        threads = SIM_REDUCE_THREADS
        return max(1, min(SIM_REDUCE_MAX_BLOCKS, math.ceil(n / threads))), threads
    threads = REDUCE_THREADS
    return max(1, min(REDUCE_MAX_BLOCKS, sm_count() * BLOCKS_PER_SM,
                      math.ceil(n / (threads * UNROLL)))), threads


def reduce_threads() -> int:
    """Threads of a block-wide shared-memory reduction (a power of two)."""
    return SIM_REDUCE_THREADS if simulator() else REDUCE_THREADS


def scratch(name: str, size: int, dtype):
    """A cached device buffer of at least ``size`` elements of ``dtype`` (for reduction partials
    and one-element results), reused across calls so that a loss or a norm allocates nothing.

    Keyed by the current CUDA context, so a second device or a new context gets its own buffer.
    Not for concurrent use from several host threads on one context.
    """
    dtype = np.dtype(dtype)
    ctx = cuda.current_context()
    # the simulator makes a new context object at each call: key its contexts by device, not identity
    ctx = ("sim", ctx._device_id) if type(ctx).__name__ == "FakeCUDAContext" else id(ctx)
    key = (ctx, name, dtype.str)
    buf = _scratch.get(key)
    if buf is None or buf.size < size:
        buf = cuda.device_array(max(size, 1), dtype=dtype)
        _scratch[key] = buf
    return buf


def read_scalar(buf, index: int = 0):
    """Copy one element of a device array to the host as a Python number (synchronizes)."""
    host = buf[index:index + 1].copy_to_host()
    return host[0].item()


def device_arrays(**arrays):
    """Each keyword's array as a numba device array (:func:`as_device_array`, its name in any
    error), in order: ``x, out = device_arrays(x=x, out=out)``."""
    return tuple(as_device_array(a, name) for name, a in arrays.items())
