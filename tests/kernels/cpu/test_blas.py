"""Direct BLAS gemm (nkernels.kernels.cpu.blas) against np.dot: flags, dtypes, alpha/beta, strided views,
bad input, use from cached @njit code and its load from the cache by a fresh process."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit

from nkernels.kernels.cpu import blas
from nkernels.kernels.cpu.blas import (
    SMALL_PRODUCT, gemm, gemm_column_pieces, gemm_inner_pieces, gemm_row_pieces, gemm_transposed_tiles, small_piece)

DTYPES = [np.float32, np.float64]


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


def operands(m, n, k, transa, transb, dtype, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if transa else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if transb else (k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    return a, b, c


def expected(transa, transb, alpha, a, b, beta, c):
    return alpha * np.dot(a.T if transa else a, b.T if transb else b) + beta * c


@njit(cache=True)
def scaled_product_in_njit(transa, transb, alpha, a, b, beta, c):
    """gemm called from cached @njit code (also loaded from the cache by a fresh process below)."""
    gemm(transa, transb, alpha, a, b, beta, c)
    return c


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("transa", [False, True])
@pytest.mark.parametrize("transb", [False, True])
@pytest.mark.parametrize("alpha, beta", [(1.0, 0.0), (0.5, 2.0)])
def test_gemm_matches_np_dot(transa, transb, alpha, beta, dtype):
    a, b, c = operands(5, 3, 7, transa, transb, dtype)
    want = expected(transa, transb, alpha, a, b, beta, c)
    gemm(transa, transb, alpha, a, b, beta, c)
    np.testing.assert_allclose(c, want, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("transa", [False, True])
@pytest.mark.parametrize("transb", [False, True])
def test_gemm_in_cached_njit_matches_np_dot(transa, transb, dtype):
    a, b, c = operands(4, 6, 2, transa, transb, dtype, seed=1)
    want = expected(transa, transb, -1.5, a, b, 0.25, c)
    np.testing.assert_allclose(scaled_product_in_njit(transa, transb, -1.5, a, b, 0.25, c), want, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_reads_and_writes_row_strided_views_only_where_told(dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((9, 10)).astype(dtype)  # a = x[1::2, 2:5] (rows and columns sliced)
    w = rng.standard_normal((6, 4)).astype(dtype)  # b = w[:, :3], used transposed: op(b) is (3, 6)
    big = np.full((7, 8), 7.0, dtype)  # c = big[2:6, 1:7], the rest untouched
    a, b, c = x[1::2, 2:5], w[:, :3], big[2:6, 1:7]
    want = expected(False, True, 1.0, a, b, 0.5, c)
    gemm(False, True, 1.0, a, b, 0.5, c)
    np.testing.assert_allclose(c, want, **tol(dtype))
    outside = big.copy()
    outside[2:6, 1:7] = 7.0
    np.testing.assert_array_equal(outside, 7.0)
    c2 = np.zeros((3, 6), dtype)  # dweight-style: a (N, out) transposed against b (N, in) sliced
    gemm(True, False, 1.0, x[:, 2:5], x[:, 4:10], 0.0, c2)
    np.testing.assert_allclose(c2, np.dot(x[:, 2:5].T, x[:, 4:10]), **tol(dtype))


def test_gemm_with_beta_zero_ignores_nan_in_c_and_k_zero_scales_c():
    a, b, _ = operands(3, 4, 5, False, False, np.float64)
    c = np.full((3, 4), np.nan)
    gemm(False, False, 1.0, a, b, 0.0, c)
    np.testing.assert_allclose(c, np.dot(a, b), rtol=1e-12)
    c = np.ones((3, 4))
    gemm(False, False, 1.0, np.zeros((3, 0)), np.zeros((0, 4)), 3.0, c)
    np.testing.assert_array_equal(c, 3.0)


@pytest.mark.parametrize("call, error, words", [
    (lambda a, b, c: gemm(False, True, 1.0, a, b, 0.0, c), ValueError, "shapes do not match"),
    (lambda a, b, c: gemm(False, False, 1.0, a, np.asfortranarray(b), 0.0, c), ValueError, "inner \\(column\\) stride"),
    (lambda a, b, c: gemm(False, False, 1.0, a[::-1], b, 0.0, c), ValueError, "run backwards"),
    (lambda a, b, c: gemm(False, False, 1.0, a, b, 0.0, a[:, :4]), ValueError, "shares memory"),
    (lambda a, b, c: gemm(False, False, 1.0, a.astype(np.float32), b, 0.0, c), TypeError, "one dtype"),
    (lambda a, b, c: gemm(False, False, 1.0, a.astype(int), b.astype(int), 0.0, c.astype(int)), TypeError,
     "float32 or float64"),
    (lambda a, b, c: gemm(False, False, 1.0, a.ravel(), b, 0.0, c), TypeError, "2-D"),
])
def test_gemm_refuses_bad_operands_before_blas_runs(call, error, words):
    a, b, c = operands(3, 4, 5, False, False, np.float64)
    keep = c.copy()
    with pytest.raises(error, match=words):
        call(a, b, c)
    np.testing.assert_array_equal(c, keep)


@pytest.mark.needs_jit("bad leading dims must raise inside compiled code, where nothing bounds-checks BLAS")
def test_gemm_in_njit_refuses_mismatched_shapes():
    a, b, c = operands(3, 4, 5, False, False, np.float64)
    with pytest.raises(ValueError, match="shapes do not match"):
        scaled_product_in_njit(False, False, 1.0, a, b, 0.0, c[:, :3])
    with pytest.raises(ValueError, match="inner"):
        scaled_product_in_njit(False, False, 1.0, a, np.asfortranarray(b), 0.0, c)


@pytest.mark.needs_jit("the on-disk cache holds compiled code only")
def test_a_fresh_process_loads_gemm_callers_from_the_cache_and_gets_the_right_product():
    a, b, c = operands(4, 3, 5, True, False, np.float64, seed=3)
    scaled_product_in_njit(True, False, 2.0, a, b, 1.0, c.copy())  # compiles (or loads) and writes the cache
    code = ("import numpy as np, test_blas as t\n"
            "a, b, c = t.operands(4, 3, 5, True, False, np.float64, seed=3)\n"
            "want = t.expected(True, False, 2.0, a, b, 1.0, c)\n"
            "got = t.scaled_product_in_njit(True, False, 2.0, a, b, 1.0, c)\n"
            "print('MAXERR', float(np.abs(got - want).max()))\n")
    here = Path(__file__).parent
    env = dict(os.environ, NUMBA_DEBUG_CACHE="1",
               PYTHONPATH=os.pathsep.join([str(here), *sys.path]))
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    loaded = [line for line in run.stdout.splitlines() if "data loaded" in line and "scaled_product_in_njit" in line]
    saved = [line for line in run.stdout.splitlines() if "data saved" in line and "scaled_product_in_njit" in line]
    assert loaded and not saved, run.stdout[-2000:]
    maxerr = float(run.stdout.split("MAXERR")[1])
    assert maxerr < 1e-12


# ----------------------------------------------------------------------------------------------
# Products cut into pieces for OpenBLAS's small-matrix kernels
# ----------------------------------------------------------------------------------------------


#: both ways of running products, whatever this CPU's OpenBLAS runs (the ``nk_small_kernels`` fixture of
#: :mod:`nkernels.testing.fixtures`)
BOTH_WAYS = pytest.mark.parametrize("nk_small_kernels", [1, 0], indirect=True, ids=["small-kernels", "whole"])


def test_small_kernels_follow_openblas_core_type():
    from threadpoolctl import threadpool_info

    cores = {info.get("architecture") for info in threadpool_info() if info.get("internal_api") == "openblas"}
    assert blas.small_kernels.value == int(bool(cores) and cores <= set(blas.SMALL_KERNEL_CORES))
    assert blas.small_kernels_in_use() == bool(blas.small_kernels.value)


@BOTH_WAYS
def test_products_stay_whole_without_small_kernels(nk_small_kernels):
    if not nk_small_kernels:
        assert small_piece(64, 64, 800) == 64 and small_piece(32, 512, 128) == 512


@BOTH_WAYS
def test_small_piece_keeps_small_products_whole_and_cuts_large_ones_into_powers_of_two(nk_small_kernels):
    if not nk_small_kernels:
        return  # the other parameter checks this rule; here the products stay whole (test above)
    assert small_piece(32, 512, 16) == 512  # 262,144 multiply-adds: whole
    assert small_piece(32, 512, 128) == 128  # an LSTM(->128) step's product: 4 pieces of 128 columns
    assert small_piece(64, 64, 800) == 16  # LeNet's second convolution, a sample: 4 pieces of 16 rows
    assert small_piece(4096, 64, 4096) == 64  # pieces would be narrower than 8: whole
    for m, n, k in [(32, 512, 128), (64, 64, 800), (64, 800, 64), (50, 300, 70)]:
        piece = small_piece(m, n, k)
        assert piece == n or (m * piece * k <= SMALL_PRODUCT < m * 2 * piece * k and piece & (piece - 1) == 0)


@njit(cache=True)
def products_in_pieces(transa, a, b, c_rows, c_columns, c_inner):
    """The three cut products, from cached @njit code as the kernels call them."""
    gemm_row_pieces(transa, 0.5, a, b, 2.0, c_rows)
    gemm_column_pieces(0.5, a if not transa else a.T.copy(), b, 2.0, c_columns)
    gemm_inner_pieces(0.5, a if not transa else a.T.copy(), b, c_inner)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("transa", [False, True])
@pytest.mark.parametrize("m, n, k", [(64, 64, 800), (64, 800, 64), (100, 30, 700), (3, 4, 5)])
@BOTH_WAYS
def test_products_in_pieces_match_np_dot(m, n, k, transa, dtype, nk_small_kernels):
    """Rows, columns or inner dimension cut (uneven last pieces included), strided views of the pieces
    passed to BLAS: the same product as one np.dot."""
    a, b, c = operands(m, n, k, transa, False, dtype, seed=2)
    rows, columns = c.copy(), c.copy()
    inner = np.full_like(c, np.nan)  # overwritten: the first piece's product ignores c
    products_in_pieces(transa, a, b, rows, columns, inner)
    close = tol(dtype) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-3)  # float32 sums of up to 800 terms
    np.testing.assert_allclose(rows, expected(transa, False, 0.5, a, b, 2.0, c), **close)
    np.testing.assert_allclose(columns, expected(transa, False, 0.5, a, b, 2.0, c), **close)
    np.testing.assert_allclose(inner, expected(transa, False, 0.5, a, b, 0.0, c), **close)


@njit(cache=True)
def transposed_product_in_tiles(a, b, c):
    gemm_transposed_tiles(0.5, a, b, 2.0, c)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, n, k", [(32, 128, 128), (50, 70, 40), (64, 33, 100), (65, 128, 128), (32, 128, 10),
                                     (3, 4, 5)])
@BOTH_WAYS
def test_transposed_product_in_tiles_matches_np_dot(m, n, k, dtype, nk_small_kernels):
    """``a @ b.T`` in 32 x 32 tiles of c where they pay (uneven last tiles, strided views of c's
    tiles), whole where they do not (more than 64 rows, an inner dimension under 32, few entries):
    the same product as one np.dot."""
    a, b, c = operands(m, n, k, False, True, dtype, seed=4)
    out = c.copy()
    transposed_product_in_tiles(a, b, out)
    close = tol(dtype) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out, expected(False, True, 0.5, a, b, 2.0, c), **close)

