"""The CPU reshape kernels (nkernels.kernels.cpu.reshape: the last step of a sequence, copies and sums of
flat views) against the naive references."""
import numpy as np
import pytest

import naive
from nkernels.kernels.cpu import reshape

DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, t, h", [(2, 3, 5), (1, 1, 1), (1, 4, 2), (3, 1, 7)])
def test_last_step_matches_naive(dtype, n, t, h):
    rng = np.random.default_rng(n * 100 + t * 10 + h)
    hs = rng.standard_normal((n, t, h)).astype(dtype)
    last = np.full((n, h), np.nan, dtype)
    reshape.last_step_forward(hs, last)
    np.testing.assert_array_equal(last, naive.last_step(hs))
    dy = rng.standard_normal((n, h)).astype(dtype)
    dhs = np.full((n, t, h), np.nan, dtype)  # every element is written: the earlier steps get zeros
    reshape.last_step_backward(dy, dhs)
    np.testing.assert_array_equal(dhs, naive.last_step_backward(dy, t))
    assert dhs.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 37])
def test_copy_and_add_flat_match_naive(dtype, n):
    rng = np.random.default_rng(n)
    a, b = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    dst = np.full(n, np.nan, dtype)
    reshape.copy_flat(a, dst)
    np.testing.assert_array_equal(dst, a)
    out = np.full(n, np.nan, dtype)
    reshape.add_flat(a, b, out)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, naive.add(a, b))

