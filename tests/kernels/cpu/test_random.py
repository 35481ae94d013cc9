"""The counter-based random generator (nkernels.kernels.cpu.random) against the naive references on Python
integers, and statistical tests of its draws."""
import warnings

import numpy as np
import pytest

import naive
from nkernels.kernels.cpu import random

DTYPES = [np.float32, np.float64]
STATISTICAL = pytest.mark.needs_jit("a statistical test over 2**16 to 2**18 draws takes 10-30 s as plain Python; the "
                                    "tests against the naive references run the same lines")
NEGATIVE = pytest.mark.needs_jit("negative seeds and counters wrap modulo 2**64 in compiled code only; as plain "
                                 "Python np.uint64(-1) raises (nkernels.kernels.cpu.random.hash_u64 says so)")


# ---------------------------------------------------------------------------------------------
# Against the naive references
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed, counter", [
    (0, 0), (0, 1), (1, 0), (42, 12345), (2**62 + 3, 2**40 + 1),
    pytest.param(-1, 7, marks=NEGATIVE), pytest.param(5, -3, marks=NEGATIVE),
])
def test_hash_u64_matches_python_int_reference(seed, counter):
    assert int(random.hash_u64(seed, counter)) == naive.hash_u64(seed & naive.MASK64, counter)
    assert random.hash_uniform(seed, counter) == naive.hash_uniform(seed, counter)


def test_mix64_fixes_zero_and_u64_to_uniform_stays_below_one():
    assert int(random.mix64(0)) == naive.mix64(0) == 0
    assert int(random.mix64(12345)) == naive.mix64(12345)
    assert random.u64_to_uniform(np.uint64(2**64 - 1)) == 1.0 - 2.0**-53
    assert random.u64_to_uniform(np.uint64(2**11 - 1)) == 0.0  # the low 11 bits never reach the float


@pytest.mark.parametrize("low, high", [(-2, 3), (0, 0), (5, 6)])
def test_randint_matches_reference_and_covers_the_range(low, high):
    vals = np.array([random.hash_randint(11, c, low, high) for c in range(300)])
    np.testing.assert_array_equal(vals, [naive.hash_randint(11, c, low, high) for c in range(300)])
    assert set(vals.tolist()) == set(range(low, high + 1))


def test_hash_normal_matches_reference():
    got = [random.hash_normal(3, c) for c in range(50)]
    np.testing.assert_allclose(got, [naive.hash_normal(3, c) for c in range(50)], rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, offset", [(1, 0), (37, 2**40 + 5)])
def test_uniform_and_normal_fill_match_reference(dtype, n, offset):
    u = np.full(n, np.nan, dtype)
    random.uniform_fill(9, offset, u)
    np.testing.assert_array_equal(u, naive.uniform_fill(9, offset, n, dtype))
    z = np.full(n, np.nan, dtype)
    random.normal_fill(9, offset, 2.0, 0.5, z)
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(z, naive.normal_fill(9, offset, 2.0, 0.5, n), rtol=rtol)


def test_float32_uniform_that_rounds_to_one_stays_below_one():
    counter = 26683239  # seed 0 draws within 2**-25 of 1 here: float32 rounds that to 1.0
    assert np.float32(naive.hash_uniform(0, counter)) == 1.0
    u = np.empty(1, np.float32)
    random.uniform_fill(0, counter, u)
    assert u[0] == np.nextafter(np.float32(1), np.float32(0))
    np.testing.assert_array_equal(u, naive.uniform_fill(0, counter, 1, np.float32))


def test_uniform_fill_counter_semantics_and_determinism():
    u = np.empty(1000)
    w = np.empty(1000)
    random.uniform_fill(5, 10, u)
    random.uniform_fill(5, 10, w)
    np.testing.assert_array_equal(u, w)
    random.uniform_fill(5, 13, w)
    np.testing.assert_array_equal(u[3:], w[:-3])
    assert u[0] == random.hash_uniform(5, 10)


@pytest.mark.needs_jit("compares each compiled helper with its .py_func body; with the JIT off there is only "
                       "the Python function")
def test_py_funcs_run_as_plain_python():
    # What the CUDA simulator (and a cuda.jit(device=True) wrap of .py_func) executes.
    with np.errstate(over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")
        for seed, counter in [(3, 0), (3, 1), (99, 2**40)]:
            c = np.uint64(counter)
            assert random.hash_uniform.py_func(seed, c) == random.hash_uniform(seed, counter)
            assert random.hash_normal.py_func(seed, c) == random.hash_normal(seed, counter)
            assert random.hash_randint.py_func(seed, c, -3, 3) == random.hash_randint(seed, counter, -3, 3)


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------
@STATISTICAL
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


@STATISTICAL
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


@STATISTICAL
def test_uniform_fill_float32_stays_below_one():
    u = np.empty(1 << 16, dtype=np.float32)
    random.uniform_fill(1, 0, u)
    assert u.min() >= 0 and u.max() < 1
    ref = np.empty(u.size)
    random.uniform_fill(1, 0, ref)
    np.testing.assert_allclose(u, ref, rtol=1e-7, atol=1e-7)


@STATISTICAL
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
