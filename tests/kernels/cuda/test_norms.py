"""CUDA norm kernels (global-norm clipping, max-norm rows) against their CPU twins.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes; they also run
on a real GPU (without the simulator) at realistic shapes when NKERNELS_REAL_GPU=1 (conftest.py).
"""
import math

import numpy as np
import pytest

from nkernels.kernels.cpu import norms as cpu
from nkernels.kernels.cuda import norms as gpu

pytestmark = pytest.mark.cuda


@pytest.fixture
def shapes(pick):
    """Flat lengths for the sums, (rows, cols) for max-norm."""
    return pick({"flat": [1, 29], "rows": [(5, 7)]},
                {"flat": [1, 10_000_001], "rows": [(4096, 4096), (10, 3)]})


@pytest.mark.parametrize("dtype", [
    pytest.param(np.dtype(np.float32), id="f32", marks=pytest.mark.needs_jit(
        "the CPU scale_inplace multiplies float32 by a Python float that Numba types as float64 (one rounding); "
        "as plain Python NumPy 2 multiplies in float32, one ulp away from the bits compared here")),
    pytest.param(np.dtype(np.float64), id="f64")])
def test_sum_of_squares_and_scale_match_cpu(shapes, dtype, dev):
    rng = np.random.default_rng(0)
    for n in shapes["flat"]:
        a = rng.standard_normal(n).astype(dtype)
        got = gpu.sum_of_squares(dev(a))
        assert isinstance(got, float)
        np.testing.assert_allclose(got, cpu.sum_of_squares(a), rtol=1e-12)
        d_a = dev(a)
        gpu.scale_inplace(d_a, 0.37)
        ref = a.copy()
        cpu.scale_inplace(ref, 0.37)
        np.testing.assert_array_equal(d_a.copy_to_host(), ref)
    assert gpu.sum_of_squares(dev(np.zeros(0, dtype))) == 0.0


def test_combine_halves_matches_cpu(shapes, dtype, dev, close):
    """Within rounding, not bit for bit: on a GPU, NVVM fuses ``w * grad + v * other`` into one
    multiply-add (one rounding fewer than the CPU's two products and a sum)."""
    rng = np.random.default_rng(2)
    for n in shapes["flat"]:
        grad, other = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
        d_grad, d_out = dev(grad), dev(np.zeros_like(grad))
        gpu.combine_halves(d_grad, dev(other), 0.625, 0.375, d_out)
        gpu.combine_halves(d_grad, dev(other), 0.625, 0.375, d_grad)  # in place
        cpu.combine_halves(grad, other, 0.625, 0.375, grad)
        close(d_out, grad)
        close(d_grad, grad)


def test_clip_factor_matches_cpu():
    for sum_sq, max_norm in [(1.0, 5.0), (100.0, 5.0), (25.0, 5.0), (2.0, 0.5), (math.inf, 5.0)]:
        assert gpu.clip_factor(sum_sq, max_norm) == cpu.clip_factor(sum_sq, max_norm)
    assert math.isnan(gpu.clip_factor(math.nan, 5.0))


def test_max_norm_rows_matches_cpu(shapes, dtype, dev, close):
    rng = np.random.default_rng(1)
    for rows, cols in shapes["rows"]:
        w = rng.standard_normal((rows, cols)).astype(dtype)
        w[::2] *= 1e-2  # some rows below max_norm, untouched
        ref = w.copy()
        cpu.max_norm_rows(ref, 1.0)
        d_w = dev(w)
        gpu.max_norm_rows(d_w, 1.0)
        close(d_w, ref)
        np.testing.assert_array_equal(d_w.copy_to_host()[::2], w[::2])
