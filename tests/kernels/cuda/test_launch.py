"""The launch helpers every CUDA kernel family shares (nkernels.kernels.cuda.launch): grid sizing,
typed scalars, cached scratch buffers, device-array checks.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1); they also run on a real GPU (without
the simulator) when NKERNELS_REAL_GPU=1 (conftest.py).
"""
import math

import numpy as np
import pytest
from numba import cuda, njit

from nkernels.kernels.cuda import launch

pytestmark = pytest.mark.cuda


@cuda.jit
def _count_visits(out, per_thread):
    """A grid-stride loop with ``per_thread`` elements per thread and iteration, as the elementwise kernels."""
    start = cuda.grid(1) * per_thread
    for base in range(start, out.shape[0], cuda.gridsize(1) * per_thread):
        for u in range(per_thread):
            if base + u < out.shape[0]:
                out[base + u] += 1


@pytest.mark.parametrize("per_thread", [1, launch.UNROLL])
def test_a_grid_stride_launch_visits_every_element_once(per_thread, dev, pick):
    for n in pick([1, 7, 40, 100], [1, 1000, 3_000_001]):
        blocks, threads = launch.grid_stride(n, per_thread)
        cap = launch.SIM_MAX_BLOCKS if launch.simulator() else launch.sm_count() * launch.BLOCKS_PER_SM
        assert 1 <= blocks <= cap  # one wave at most: the loop covers the rest
        out = dev(np.zeros(n, np.int64))
        _count_visits[blocks, threads](out, per_thread)
        np.testing.assert_array_equal(out.copy_to_host(), 1)


def test_reduce_launches_fit_block_sum():
    for n in (0, 1, 10**9):
        blocks, threads = launch.reduce_grid(n)
        assert blocks >= 1 and threads == launch.reduce_threads()
    assert launch.reduce_threads() & (launch.reduce_threads() - 1) == 0


def test_scalar_and_dtype_of(dev):
    s = launch.scalar(np.float32, 0.1)
    assert type(s) is np.float32 and s == np.float32(0.1)
    assert launch.dtype_of(dev(np.zeros(2, np.float32))) == np.dtype(np.float32)


def test_scratch_buffers_are_reused_per_context_name_and_dtype(monkeypatch):
    """One buffer per (context, name, dtype), grown when a call needs more. The simulator makes a new context
    object at every ``cuda.current_context()`` call, so the test holds the context still, as a GPU does."""
    context = object()
    monkeypatch.setattr(launch, "_scratch", {})
    monkeypatch.setattr(launch.cuda, "current_context", lambda: context)
    a = launch.scratch("test_launch", 5, np.float64)
    assert a.size >= 5 and np.dtype(a.dtype) == np.float64
    assert launch.scratch("test_launch", 3, np.float64) is a  # fits: the same buffer, nothing allocated
    assert launch.scratch("test_launch", 5, np.int64) is not a
    assert launch.scratch("test_launch_other", 5, np.float64) is not a
    bigger = launch.scratch("test_launch", 50, np.float64)
    assert bigger.size >= 50 and launch.scratch("test_launch", 5, np.float64) is bigger
    other_context = object()
    monkeypatch.setattr(launch.cuda, "current_context", lambda: other_context)
    assert launch.scratch("test_launch", 5, np.float64) is not bigger  # a second device gets its own


def test_read_scalar_copies_one_element_as_a_python_number(dev):
    assert launch.read_scalar(dev(np.array([1.5, 2.5])), 1) == 2.5
    value = launch.read_scalar(dev(np.array([3, 4], np.int64)))
    assert value == 3 and type(value) is int


def test_python_function_of_a_compiled_and_of_a_plain_function():
    def twice(x):
        return 2 * x

    assert launch.python_function(njit(twice)) is twice
    assert launch.python_function(twice) is twice  # what @njit returns with NUMBA_DISABLE_JIT=1


def test_device_arrays_checks_each_by_name(dev):
    x, out = launch.device_arrays(x=dev(np.zeros(2)), out=dev(np.zeros(3)))
    assert x.shape == (2,) and out.shape == (3,)
    with pytest.raises(TypeError, match="out is a NumPy array"):
        launch.device_arrays(x=dev(np.zeros(2)), out=np.zeros(3))


def test_blocks_per_sm_from_registers():
    """64K registers per multiprocessor, allocated 8 per thread at a time, 2048 threads at most."""
    assert launch.blocks_per_sm_from_registers(32, 256) == 8
    assert launch.blocks_per_sm_from_registers(56, 256) == 4   # what ptxas gives some elementwise kernels
    assert launch.blocks_per_sm_from_registers(34, 256) == 6   # rounded up to 40 registers
    assert launch.blocks_per_sm_from_registers(160, 256) == 1  # the 128 x 128 GEMM
    assert launch.blocks_per_sm_from_registers(16, 64) == 32   # capped by the resident-block limit
    assert launch.blocks_per_sm_from_registers(32, 512, max_threads_per_block=256) == 0


class _Compiled:
    """Stands in for a compiled kernel: registers per thread, maximum block, and the driver's answer."""

    def __init__(self, regs, per_sm=None):
        self.regs_per_thread, self.max_threads_per_block, self.per_sm = regs, 1024, per_sm

    def max_cooperative_grid_blocks(self, threads):
        if self.per_sm is None:
            raise RuntimeError("no occupancy calculator")
        return self.per_sm * launch.sm_count()


class _Kernel:
    def __init__(self, compiled):
        self.compiled, self.compiles = compiled, 0
        self.py_func = test_blocks_per_sm_from_registers

    def typeof_pyval(self, value):
        return type(value)

    def compile(self, argtypes):
        self.compiles += 1
        return self.compiled


def test_grids_are_sized_from_the_compiled_kernels_occupancy(monkeypatch):
    """On a GPU a grid-stride grid is one wave of the blocks the compiled kernel keeps resident (the driver's
    occupancy, read once per kernel and argument types), not of 8 blocks per SM assumed for 32 registers."""
    monkeypatch.setattr(launch, "simulator", lambda: False)
    monkeypatch.setattr(launch, "_sm_count", 132)
    monkeypatch.setattr(launch, "_occupancy", {})
    kernel = _Kernel(_Compiled(56, per_sm=3))
    args = (np.zeros(4, np.float32), 2)
    assert launch.grid_for(kernel, args, 10**9) == (132 * 3, launch.THREADS)
    assert launch.grid_for(kernel, args, 300, per_thread=1) == (2, launch.THREADS)  # fewer items than a wave
    assert kernel.compiles == 1  # the occupancy is cached
    launch.grid_for(kernel, (np.zeros(4, np.float64), 2), 10**9)
    assert kernel.compiles == 2  # another dtype is another compiled kernel
    fallback = _Kernel(_Compiled(56))  # the calculator fails: the registers decide, with a warning
    with pytest.warns(RuntimeWarning, match="registers per thread"):
        assert launch.grid_for(fallback, args, 10**9) == (132 * 4, launch.THREADS)


def test_a_kernel_that_cannot_hold_a_block_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(launch, "simulator", lambda: False)
    monkeypatch.setattr(launch, "_sm_count", 132)
    monkeypatch.setattr(launch, "_occupancy", {})
    with pytest.raises(ValueError, match="cannot run blocks of 256 threads"):
        launch.grid_for(_Kernel(_Compiled(255, per_sm=0)), (1,), 10**6)


def test_launch_covers_every_element_under_the_simulator(dev):
    out = dev(np.zeros(37, np.int64))
    launch.launch(_count_visits, 37, out, 1)
    launch.launch(_count_visits, 0, out, 1)  # nothing to do: no launch
    np.testing.assert_array_equal(out.copy_to_host(), 1)


def test_python_function_refuses_numpy_ufuncs_a_gpu_cannot_compile():
    """A CPU function compiled for CUDA too (``python_function``) must call ``math``'s functions: numba-cuda
    compiles no NumPy ufunc (the ES kernels' ``np.exp`` failed so on an H200), and the simulator would not tell."""
    @njit
    def with_ufuncs(v):
        return np.exp(-v) + np.tanh(v) + np.exp(v)

    @njit
    def with_math(v, out):
        out[0] = np.float64(math.exp(-abs(v)))  # a dtype's constructor is no ufunc
        return out.shape[0]

    with pytest.raises(TypeError, match="with_ufuncs calls NumPy's exp, tanh.*math.exp"):
        launch.python_function(with_ufuncs)
    body = getattr(with_math, "py_func", with_math)  # @njit leaves it plain under NUMBA_DISABLE_JIT=1
    assert launch.python_function(with_math) is body and launch.numpy_ufuncs_called(body) == []
