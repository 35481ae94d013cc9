"""Tests for the counter-based RNG (nkernels.kernels.cpu.random) and inverted dropout."""
import warnings

import numpy as np
import pytest

from nkernels.kernels.cpu import dropout, random

# ---------------------------------------------------------------------------------------------
# Slow, readable references: splitmix64 on Python ints with explicit 64-bit masking.
# ---------------------------------------------------------------------------------------------
MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def naive_mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def naive_hash_u64(seed, counter):
    key = naive_mix64((seed + GOLDEN) & MASK64)
    return naive_mix64((key + (counter & MASK64) * GOLDEN) & MASK64)


def naive_hash_uniform(seed, counter):
    return (naive_hash_u64(seed & MASK64, counter) >> 11) / 2.0**53


def naive_dropout(x, p, seed, offset):
    scale = x.dtype.type(1.0 / (1.0 - p))
    mask = np.zeros_like(x)
    for i in range(x.size):
        if naive_hash_uniform(seed, offset + i) >= p:
            mask.flat[i] = scale
    return mask, x * mask


DTYPES = [np.float32, np.float64]


# ---------------------------------------------------------------------------------------------
# RNG
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "seed, counter", [(0, 0), (0, 1), (1, 0), (42, 12345), (-1, 7), (2**62 + 3, 2**40 + 1), (5, -3)]
)
def test_hash_u64_matches_python_int_reference(seed, counter):
    assert int(random.hash_u64(seed, counter)) == naive_hash_u64(seed & MASK64, counter)
    assert random.hash_uniform(seed, counter) == naive_hash_uniform(seed, counter)


def test_py_funcs_run_as_plain_python():
    # What the CUDA simulator (and a cuda.jit(device=True) wrap of .py_func) executes.
    with np.errstate(over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")
        for seed, counter in [(3, 0), (3, 1), (99, 2**40)]:
            c = np.uint64(counter)
            assert random.hash_uniform.py_func(seed, c) == random.hash_uniform(seed, counter)
            assert random.hash_normal.py_func(seed, c) == random.hash_normal(seed, counter)
            assert random.hash_randint.py_func(seed, c, -3, 3) == random.hash_randint(seed, counter, -3, 3)


def test_uniform_distribution():
    n = 1 << 18
    u = np.empty(n)
    random.uniform_fill(2024, 0, u)
    assert u.min() >= 0.0 and u.max() < 1.0
    tol = 5 * np.sqrt(1 / 12 / n)
    assert abs(u.mean() - 0.5) < tol
    assert abs(u.var() - 1 / 12) < 5 * np.sqrt(1 / 180 / n)  # var of (u - 1/2)**2 is 1/180
    # chi-square over 256 equal buckets: ~chi2(255), mean 255, sd ~22.6
    counts = np.bincount((u * 256).astype(np.int64), minlength=256)
    chi2 = ((counts - n / 256) ** 2 / (n / 256)).sum()
    assert 255 - 6 * 22.6 < chi2 < 255 + 6 * 22.6
    # every output bit is a fair coin (53 bits reach the float)
    bits = (u * 2.0**53).astype(np.uint64)
    ones = np.array([((bits >> np.uint64(b)) & np.uint64(1)).mean() for b in range(53)])
    assert np.all(np.abs(ones - 0.5) < 5 * 0.5 / np.sqrt(n))


def test_uniform_independence_of_neighbours_and_seeds():
    n = 1 << 18
    u = np.empty(n)
    random.uniform_fill(7, 1000, u)
    tol = 5 / np.sqrt(n)
    for lag in (1, 2, 64):
        assert abs(np.corrcoef(u[:-lag], u[lag:])[0, 1]) < tol
    # pairs of neighbouring counters fill the unit square evenly: chi2(255) on 16 x 16 cells
    a, b = u[0::2], u[1::2]
    cells = np.bincount((a * 16).astype(np.int64) * 16 + (b * 16).astype(np.int64), minlength=256)
    e = a.size / 256
    chi2 = ((cells - e) ** 2 / e).sum()
    assert 255 - 6 * 22.6 < chi2 < 255 + 6 * 22.6
    # neighbouring seeds, same counters
    v = np.empty(n)
    random.uniform_fill(8, 1000, v)
    assert abs(np.corrcoef(u, v)[0, 1]) < tol


def test_uniform_fill_counter_semantics_and_determinism():
    u = np.empty(1000)
    w = np.empty(1000)
    random.uniform_fill(5, 10, u)
    random.uniform_fill(5, 10, w)
    np.testing.assert_array_equal(u, w)
    random.uniform_fill(5, 13, w)
    np.testing.assert_array_equal(u[3:], w[:-3])
    assert u[0] == random.hash_uniform(5, 10)


def test_uniform_fill_float32_stays_below_one():
    u = np.empty(1 << 16, dtype=np.float32)
    random.uniform_fill(1, 0, u)
    assert u.min() >= 0 and u.max() < 1
    ref = np.empty(u.size)
    random.uniform_fill(1, 0, ref)
    np.testing.assert_allclose(u, ref, rtol=1e-7, atol=1e-7)


def test_normal_distribution():
    n = 1 << 18
    z = np.empty(n)
    random.normal_fill(3, 0, 0.0, 1.0, z)
    assert np.all(np.isfinite(z))
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.std() - 1) < 5 * np.sqrt(0.5 / n)
    assert abs(np.mean(np.abs(z) < 1) - 0.682689) < 5 * np.sqrt(0.22 / n)
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 5 / np.sqrt(n)
    assert z[5] == random.hash_normal(3, 5)
    y = np.empty(16)
    random.normal_fill(3, 0, 2.0, 0.5, y)
    np.testing.assert_allclose(y, 2.0 + 0.5 * z[:16], rtol=1e-15)


def test_randint_range():
    vals = np.array([random.hash_randint(11, c, -2, 3) for c in range(3000)])
    assert vals.min() == -2 and vals.max() == 3
    counts = np.bincount(vals + 2, minlength=6)
    assert np.all(np.abs(counts - 500) < 5 * np.sqrt(500))


# ---------------------------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------------------------
def drop(x, p, seed, offset, mask, out):
    """One dropout_forward call from a fresh counter at ``offset``; returns the counter after it."""
    counter = np.array([offset], np.int64)
    dropout.dropout_forward(x, p, np.array([seed], np.int64), counter, mask, out)
    return int(counter[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_forward_matches_reference(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(777).astype(dtype)
    p, seed, offset = 0.3, 7, 12345
    mask, out = np.empty_like(x), np.empty_like(x)
    assert drop(x, p, seed, offset, mask, out) == offset + x.size  # the kernel advances the counter
    ref_mask, ref_out = naive_dropout(x, p, seed, offset)
    np.testing.assert_array_equal(mask, ref_mask)
    np.testing.assert_array_equal(out, ref_out)
    assert mask.dtype == dtype and out.dtype == dtype


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
