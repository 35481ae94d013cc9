"""Launch helpers shared by the CUDA kernel families: device arrays, grid sizing, dtypes, scratch.

Nothing here touches the GPU at import: the device's multiprocessor count is read on the first
launch (and cached), and no kernel is compiled until it is first called.

Under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) every thread of a block is a Python
thread, so the helpers size launches down (few, small blocks; small GEMM tiles). Grid-stride
loops make every kernel correct for any grid, so this changes only the speed.

**Occupancy.** A grid-stride launch is one wave of resident blocks. How many blocks of 256
threads a multiprocessor holds depends on the compiled kernel: ptxas gives the elementwise
kernels 34-56 registers per thread, and at 56 registers only 4 blocks (not the 8 that 32
registers would allow) fit in 65536 registers, so a grid of 8 blocks per multiprocessor would
run as a full wave and a half-empty second one. :func:`launch` and :func:`grid_for` therefore
size the grid from the compiled kernel itself (the driver's occupancy calculator, which counts
its registers, shared memory and maximum block size; :func:`resident_blocks`), once per kernel
and argument types. Under the simulator they fall back to :func:`grid_stride`'s small launches.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from numba import cuda

from ...runtime.devices import as_device_array, flat_view, simulator

__all__ = ["THREADS", "UNROLL", "BLOCKS_PER_SM", "simulator", "sm_count", "as_device_array", "flat_view", "dtype_of",
           "scalar", "grid_stride", "grid_for", "launch", "resident_blocks", "blocks_per_sm_from_registers",
           "reduce_grid", "reduce_threads", "scratch", "read_scalar", "python_function",
           "numpy_ufuncs_called"]

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

#: Registers per multiprocessor and resident threads per multiprocessor (every GPU since sm_50 has
#: 64K registers; sm_80/sm_90 hold 2048 threads), for the fallback occupancy estimate.
REGISTERS_PER_SM = 65536
THREADS_PER_SM = 2048
#: Registers are allocated per warp in units of 256 (8 per thread).
REGISTER_GRANULE = 8
#: Resident blocks per multiprocessor at most (sm_80 and sm_90: 32).
MAX_BLOCKS_PER_SM = 32

_sm_count = None
_scratch: dict = {}
#: (kernel, argument key, threads) -> resident blocks per multiprocessor, read from the compiled kernel.
_occupancy: dict = {}


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
    the function itself under ``NUMBA_DISABLE_JIT=1``, where ``@njit`` leaves it undecorated.

    TypeError if the body calls a NumPy ufunc (``np.exp``): numba-cuda compiles none for a GPU
    (``KeyError: <ufunc 'exp'>``, seen on the H200 on 2026-12-04), while the simulator runs them as
    Python, so only a real GPU would tell. ``math``'s functions compile on both targets, in the
    argument's dtype (``math.exp`` of a float32 is ``expf``)."""
    function = getattr(cpu_kernel, "py_func", cpu_kernel)
    ufuncs = numpy_ufuncs_called(function)
    if ufuncs:
        raise TypeError(f"{function.__qualname__} calls NumPy's {', '.join(ufuncs)}, which numba-cuda cannot "
                        f"compile for a GPU: call the math module's functions instead (math.exp, math.tanh, "
                        f"math.log ...) or a builtin (abs, min, max), which both targets compile")
    return function


def numpy_ufuncs_called(function) -> list[str]:
    """Names of the NumPy ufuncs ``function``'s own code calls as attributes of a global NumPy module
    (``np.exp(v)``): its bytecode read, not run."""
    import dis

    found: list[str] = []
    module = None
    for ins in dis.get_instructions(function):
        if ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and module is np:
            if isinstance(getattr(np, ins.argval, None), np.ufunc) and ins.argval not in found:
                found.append(ins.argval)
        module = function.__globals__.get(ins.argval) if ins.opname == "LOAD_GLOBAL" else None
    return found


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


def blocks_per_sm_from_registers(regs_per_thread: int, threads: int, max_threads_per_block: int = 1024) -> int:
    """Resident blocks of ``threads`` threads per multiprocessor that the registers allow: the
    estimate used when the driver's occupancy calculator is unavailable (0 when the block itself
    does not fit: more threads than the compiled kernel's maximum)."""
    if threads > max_threads_per_block:
        return 0
    regs = max(1, math.ceil(regs_per_thread / REGISTER_GRANULE)) * REGISTER_GRANULE
    warps = math.ceil(threads / 32)
    by_registers = REGISTERS_PER_SM // (regs * 32 * warps)
    return max(0, min(by_registers, THREADS_PER_SM // threads, MAX_BLOCKS_PER_SM))


def _argument_key(args) -> tuple:
    # cheap stand-in for Numba's argument types: what changes the compiled code is an array's
    # dtype, rank and layout, or a scalar's type
    return tuple((a.dtype.str, a.ndim) if hasattr(a, "ndim") else type(a) for a in args)


def resident_blocks(kernel, args, threads: int) -> int:
    """Blocks of ``threads`` threads of ``kernel`` (a ``@cuda.jit`` dispatcher) compiled for ``args``
    that one multiprocessor holds at once, from the compiled kernel (read once per kernel,
    argument types and block size; compiles the kernel if its first launch has not).

    The driver's occupancy calculator decides (registers, shared memory, block size); should it
    fail, the compiled kernel's registers per thread and maximum threads per block
    (:func:`blocks_per_sm_from_registers`). On the simulator: :data:`BLOCKS_PER_SM`.
    """
    if simulator():
        return BLOCKS_PER_SM
    key = (kernel, _argument_key(args), int(threads))
    blocks = _occupancy.get(key)
    if blocks is None:
        compiled = kernel.compile(tuple(kernel.typeof_pyval(a) for a in args))
        try:
            blocks = compiled.max_cooperative_grid_blocks(int(threads)) // sm_count()
        except Exception as error:  # an older driver or binding: estimate from the registers
            warnings.warn(f"the CUDA occupancy calculator failed ({error}); the grid of "
                          f"{kernel.py_func.__name__} is sized from its registers per thread", RuntimeWarning)
            blocks = blocks_per_sm_from_registers(compiled.regs_per_thread, threads,
                                                  compiled.max_threads_per_block)
        if blocks < 1:
            raise ValueError(f"{kernel.py_func.__name__} cannot run blocks of {threads} threads "
                             f"(its compiled maximum is {compiled.max_threads_per_block}); launch it with fewer")
        _occupancy[key] = blocks
    return blocks


def grid_for(kernel, args, n: int, per_thread: int = UNROLL):
    """``(blocks, threads)`` for a grid-stride launch of ``kernel(*args)`` over ``n`` items,
    ``per_thread`` per thread per iteration: at most one wave of the blocks the compiled kernel
    can keep resident (:func:`resident_blocks`); :func:`grid_stride`'s launch under the simulator."""
    if simulator():
        return grid_stride(n, per_thread)
    threads = THREADS
    wave = sm_count() * resident_blocks(kernel, args, threads)
    return max(1, min(wave, math.ceil(n / (threads * per_thread)))), threads


def launch(kernel, n: int, *args, per_thread: int = 1) -> None:
    """Launch the grid-stride ``kernel(*args)`` over ``n`` items, its grid sized by :func:`grid_for`
    (nothing when ``n`` is 0). Asynchronous."""
    if n <= 0:
        return
    blocks, threads = grid_for(kernel, args, n, per_thread)
    kernel[blocks, threads](*args)


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
