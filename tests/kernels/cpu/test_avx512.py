"""nkernels' own AVX-512 product tiles (:mod:`nkernels.kernels.cpu.avx512`) against NumPy, and :func:`gemm`
handing them the products they take."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nkernels.kernels.cpu import avx512, blas
from nkernels.kernels.cpu.avx512 import TILES_MAX_A, TILES_MAX_INNER, tiles_gemm, tiles_take

#: both ways of running products (the ``nk_tiles`` fixture of :mod:`nkernels.testing.fixtures`)
BOTH_WAYS = pytest.mark.parametrize("nk_tiles", [1, 0], indirect=True, ids=["tiles", "blas"])


def _guarded(rows: int, columns: int, dtype, fill: float = np.nan):
    """A (rows, columns) view inside a larger array filled with ``fill``: writes outside the view show."""
    outer = np.full((rows + 2, columns + 40), fill, dtype)
    return outer, outer[1:rows + 1, 3:columns + 3]


def _tiles(transa, alpha, a, b, beta, c):
    m, n = c.shape
    k = a.shape[0] if transa else a.shape[1]
    tiles_gemm(transa, m, n, k, alpha, a, a.strides[0] // a.itemsize, b, b.strides[0] // b.itemsize, beta, c,
               c.strides[0] // c.itemsize)


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 40), n=st.integers(1, 70), k=st.integers(0, 40), transa=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), beta=st.sampled_from([0.0, 1.0, -0.5]),
       strided_b=st.booleans(), seed=st.integers(0, 2**16))
def test_tiles_compute_the_product_and_write_only_inside_c(m, n, k, transa, dtype, beta, strided_b, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if transa else (m, k)).astype(dtype)
    b_outer = rng.standard_normal((k, n + 7 * strided_b)).astype(dtype)
    b = b_outer[:, :n]
    before = rng.standard_normal((m, n)).astype(dtype)
    outer, c = _guarded(m, n, dtype)
    c[...] = np.nan if beta == 0 else before  # beta 0: c is never read, NaN included
    alpha = 0.75
    _tiles(transa, alpha, a, b, beta, c)
    expected = alpha * ((a.T if transa else a).astype(np.float64) @ b.astype(np.float64))
    if beta:
        expected += beta * before
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(c, expected, rtol=tolerance, atol=tolerance * max(k, 1))
    c[...] = 0
    assert np.isnan(outer).sum() == outer.size - m * n  # nothing written outside the view


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_product_cut_into_rows_or_columns_gives_the_same_bits_as_the_whole(dtype):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((37, 45)).astype(dtype), rng.standard_normal((45, 83)).astype(dtype)
    whole, cut = np.zeros((37, 83), dtype), np.zeros((37, 83), dtype)
    _tiles(False, 1.0, a, b, 0.0, whole)
    for i, j in [(0, 0), (0, 40), (5, 0), (5, 40), (21, 0), (21, 40)]:
        rows, columns = slice(i, {0: 5, 5: 21, 21: 37}[i]), slice(j, 40 if j == 0 else 83)
        _tiles(False, 1.0, a[rows], b[:, columns], 0.0, cut[rows, columns])
    assert np.array_equal(whole, cut)


@BOTH_WAYS
def test_tiles_take_the_products_of_a_training_step_and_leave_larger_ones_to_blas(nk_tiles):
    taken = bool(nk_tiles)
    assert tiles_take(False, 32, 128) == taken and tiles_take(False, 64, TILES_MAX_INNER) == taken
    assert not tiles_take(True, 32, 128)  # b transposed: BLAS
    assert not tiles_take(False, 32, TILES_MAX_INNER + 1)
    assert not tiles_take(False, TILES_MAX_A // 64 + 1, 64)


@BOTH_WAYS
@pytest.mark.parametrize("transa", [False, True])
@pytest.mark.parametrize("shape", [(32, 128, 128), (10, 32, 128), (33, 20, 7), (64, 800, 64), (600, 300, 40)])
def test_gemm_hands_the_tiles_what_they_take_and_blas_the_rest(nk_tiles, transa, shape):
    m, k, n = shape
    rng = np.random.default_rng(1)
    a = rng.standard_normal((k, m) if transa else (m, k)).astype(np.float32)
    b, c0 = rng.standard_normal((k, n)).astype(np.float32), rng.standard_normal((m, n)).astype(np.float32)
    through_gemm, by_tiles, by_blas = c0.copy(), c0.copy(), c0.copy()
    blas.gemm(transa, False, 0.5, a, b, 1.0, through_gemm)
    _tiles(transa, 0.5, a, b, 1.0, by_tiles)
    blas._row_major_gemm(transa, False, m, n, k, 0.5, a, a.shape[1], b, n, 1.0, by_blas, n)
    expected = by_tiles if tiles_take(False, m, k) else by_blas
    assert np.array_equal(through_gemm, expected)
    np.testing.assert_allclose(by_tiles, by_blas, rtol=1e-4, atol=1e-4)


def test_tiles_follow_the_cpu():
    import llvmlite.binding as llvm
    from numba import config

    has = bool(llvm.get_host_cpu_features().get("avx512f")) and config.CPU_NAME in (None, "host")
    assert avx512._cpu_has_avx512() == has
