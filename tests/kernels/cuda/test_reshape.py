"""CUDA reshape kernels (the last step of a sequence, copies and sums of flat views) against their CPU twins.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes; they also run
on a real GPU (without the simulator) at realistic shapes when NKERNELS_REAL_GPU=1 (conftest.py).
"""
import numpy as np
import pytest

from nkernels.kernels.cpu import reshape as cpu
from nkernels.kernels.cuda import reshape as gpu

pytestmark = pytest.mark.cuda


@pytest.fixture
def shapes(pick):
    """(N, T, H) sequences."""
    return pick([(2, 3, 5), (1, 1, 1)], [(64, 28, 128), (1, 1, 1)])


def test_last_step_matches_cpu(shapes, dtype, dev, poison):
    rng = np.random.default_rng(0)
    for n, t, h in shapes:
        x = rng.standard_normal((n, t, h)).astype(dtype)
        last = np.empty((n, h), dtype)
        cpu.last_step_forward(x, last)
        d_last = poison((n, h), dtype)
        gpu.last_step_forward(dev(x), d_last)
        np.testing.assert_array_equal(d_last.copy_to_host(), last)
        dhs = np.empty_like(x)
        cpu.last_step_backward(last, dhs)
        d_dhs = poison(x.shape, dtype)
        gpu.last_step_backward(d_last, d_dhs)
        np.testing.assert_array_equal(d_dhs.copy_to_host(), dhs)


def test_copy_and_add_flat_match_cpu(shapes, dtype, dev, poison):
    rng = np.random.default_rng(1)
    for shape in shapes:
        n = int(np.prod(shape))
        a, b = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
        dst, out = np.empty(n, dtype), np.empty(n, dtype)
        cpu.copy_flat(a, dst)
        cpu.add_flat(a, b, out)
        d_dst, d_out = poison(n, dtype), poison(n, dtype)
        gpu.copy_flat(dev(a), d_dst)
        gpu.add_flat(dev(a), dev(b), d_out)
        np.testing.assert_array_equal(d_dst.copy_to_host(), dst)
        np.testing.assert_array_equal(d_out.copy_to_host(), out)
