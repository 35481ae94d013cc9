"""The CPU inverted-dropout kernels (nkernels.kernels.cpu.dropout) against the naive reference."""
import numpy as np
import pytest

import naive
from nkernels.kernels.cpu import dropout

DTYPES = [np.float32, np.float64]


def drop(x, p, seed, offset, mask, out):
    """One dropout_forward call from a fresh counter at ``offset``; returns the counter after it."""
    counter = np.array([offset], np.int64)
    dropout.dropout_forward(x, p, np.array([seed], np.int64), counter, mask, out)
    return int(counter[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 777])
def test_dropout_forward_matches_reference(dtype, n):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n).astype(dtype)
    p, seed, offset = 0.3, 7, 12345
    mask, out = np.empty_like(x), np.empty_like(x)
    assert drop(x, p, seed, offset, mask, out) == offset + x.size  # the kernel advances the counter
    ref_mask, ref_out = naive.dropout(x, p, seed, offset)
    np.testing.assert_array_equal(mask, ref_mask)
    np.testing.assert_array_equal(out, ref_out)
    assert mask.dtype == dtype and out.dtype == dtype


@pytest.mark.needs_jit("a statistical test over 200,000 draws takes 10-20 s as plain Python; "
                       "test_dropout_forward_matches_reference runs the same lines")
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_kept_fraction_and_scale(dtype):
    n, p = 200_000, 0.25
    x = np.ones(n, dtype=dtype)
    mask, out = np.empty_like(x), np.empty_like(x)
    drop(x, p, 1, 0, mask, out)
    kept = mask != 0
    assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_array_equal(mask[kept], dtype(1 / (1 - p)))
    # inverted dropout keeps the expectation
    assert abs(out.mean() - 1.0) < 5 * np.sqrt(p / (1 - p) / n)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_determinism_offsets_and_seeds(dtype):
    x = np.arange(1, 4001, dtype=dtype)
    m1, m2, m3, m4, out = (np.empty_like(x) for _ in range(5))
    drop(x, 0.5, 9, 100, m1, out)
    drop(x, 0.5, 9, 100, m2, out)
    np.testing.assert_array_equal(m1, m2)
    drop(x, 0.5, 9, 100 + x.size, m3, out)  # next call of the layer
    assert np.mean(m1 == m3) < 0.6
    drop(x, 0.5, 10, 100, m4, out)
    assert np.mean(m1 == m4) < 0.6
    drop(x, 0.5, 9, 103, m2, out)  # counter semantics: shift by 3
    np.testing.assert_array_equal(m1[3:], m2[:-3])


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_backward(dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 5)).astype(dtype)  # layer shape; kernel sees flat views
    dy = rng.standard_normal(x.shape).astype(dtype)
    mask, out, dx = np.empty_like(x), np.empty_like(x), np.full_like(x, np.nan)
    drop(x.reshape(-1), 0.4, 2, 0, mask.reshape(-1), out.reshape(-1))
    dropout.dropout_backward(dy.reshape(-1), mask.reshape(-1), dx.reshape(-1))
    np.testing.assert_array_equal(dx, dy * mask)
    np.testing.assert_array_equal(out, x * mask)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_p0_identity_and_p1_zero(dtype):
    x = np.random.default_rng(2).standard_normal(1000).astype(dtype)
    mask, out = np.empty_like(x), np.empty_like(x)
    drop(x, 0.0, 3, 0, mask, out)
    np.testing.assert_array_equal(mask, 1)
    np.testing.assert_array_equal(out, x)
    drop(x, 1.0, 3, 0, mask, out)
    np.testing.assert_array_equal(mask, 0)
    np.testing.assert_array_equal(out, 0)
