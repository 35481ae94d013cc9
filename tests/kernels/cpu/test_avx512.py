"""nkernels' own AVX-512 product tiles (:mod:`nkernels.kernels.cpu.avx512`) against NumPy, and :func:`gemm`
handing them the products they take."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nkernels.kernels.cpu import avx512, blas
from nkernels.kernels.cpu.avx512 import (DOT_MIN_INNER, INNER_BLOCK, PACK_MIN_COLUMNS, PACK_MIN_ROWS, PACK_STRIDE,
                                         SWAP_MAX_COLUMNS, SWAP_MIN_ROWS, TILES_MAX_A, by_packing, by_swapping,
                                         tiles_fit, tiles_gemm, tiles_rows, transposed)

#: both ways of running products (the ``nk_tiles`` fixture of :mod:`nkernels.testing.fixtures`)
BOTH_WAYS = pytest.mark.parametrize("nk_tiles", [1, 0], indirect=True, ids=["tiles", "blas"])


def _guarded(rows: int, columns: int, dtype, fill: float = np.nan):
    """A (rows, columns) view inside a larger array filled with ``fill``: writes outside the view show."""
    outer = np.full((rows + 2, columns + 40), fill, dtype)
    return outer, outer[1:rows + 1, 3:columns + 3]


def _tiles(transa, alpha, a, b, beta, c, transb=False):
    m, n = c.shape
    k = a.shape[0] if transa else a.shape[1]
    tiles_gemm(transa, transb, m, n, k, alpha, a, a.strides[0] // a.itemsize, b, b.strides[0] // b.itemsize, beta, c,
               c.strides[0] // c.itemsize)


@settings(max_examples=80, deadline=None)
@given(m=st.integers(1, 40), n=st.integers(1, 70), k=st.integers(0, 70), flags=st.sampled_from(["NN", "TN", "NT"]),
       dtype=st.sampled_from([np.float32, np.float64]), beta=st.sampled_from([0.0, 1.0, -0.5]),
       strided_b=st.booleans(), seed=st.integers(0, 2**16))
def test_tiles_compute_the_product_and_write_only_inside_c(m, n, k, flags, dtype, beta, strided_b, seed):
    rng = np.random.default_rng(seed)
    transa, transb = flags[0] == "T", flags[1] == "T"
    a = rng.standard_normal((k, m) if transa else (m, k)).astype(dtype)
    b_shape = (n, k) if transb else (k, n)
    b = rng.standard_normal((b_shape[0], b_shape[1] + 7 * strided_b)).astype(dtype)[:, :b_shape[1]]
    before = rng.standard_normal((m, n)).astype(dtype)
    outer, c = _guarded(m, n, dtype)
    c[...] = np.nan if beta == 0 else before  # beta 0: c is never read, NaN included
    alpha = 0.75
    _tiles(transa, alpha, a, b, beta, c, transb)
    expected = alpha * ((a.T if transa else a).astype(np.float64) @ (b.T if transb else b).astype(np.float64))
    if beta:
        expected += beta * before
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(c, expected, rtol=tolerance, atol=tolerance * max(k, 1))
    c[...] = 0
    assert np.isnan(outer).sum() == outer.size - m * n  # nothing written outside the view


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("beta", [0.0, -0.5])
@pytest.mark.parametrize("m, n, k", [(PACK_MIN_ROWS, PACK_MIN_COLUMNS, 16), (33, 65, 17), (47, 71, 1),
                                     (70, 130, 600), (64, 64, 0)])
def test_packed_tiles_compute_a_times_b_transposed_and_write_only_inside_c(dtype, beta, m, n, k):
    assert by_packing(m, n)
    rng = np.random.default_rng(m + n + k)
    a = rng.standard_normal((m, k + 5)).astype(dtype)[:, :k]  # rows with a stride: the packing reads them
    b = rng.standard_normal((n, k + 3)).astype(dtype)[:, :k]
    before = rng.standard_normal((m, n)).astype(dtype)
    outer, c = _guarded(m, n, dtype)
    c[...] = np.nan if beta == 0 else before
    tiles_gemm(False, True, m, n, k, 1.5, a, k + 5, b, k + 3, beta, c, c.strides[0] // c.itemsize)
    expected = 1.5 * (a.astype(np.float64) @ b.T.astype(np.float64)) + (beta * before if beta else 0)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(c, expected, rtol=tolerance, atol=tolerance * max(k, 1))
    c[...] = 0
    assert np.isnan(outer).sum() == outer.size - m * n


@pytest.mark.needs_jit("the tiles' own order of sums; plain Python multiplies with NumPy")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transa", [False, True])
@pytest.mark.parametrize("m, n, k", [(512, 128, 32), (70, 33, 17), (5, 40, 1), (200, 70, 600), (37, 9, 45), (40, 64, 0)])
def test_operands_with_far_apart_rows_are_copied_first_and_give_the_same_bits(dtype, transa, m, n, k):
    """Rows of ``a`` (for ``a.T @ b``) or ``b`` at least PACK_STRIDE bytes apart (a recurrent layer's per-step
    slices) are copied before the tiles read them: the same sums in the same order as nearby rows give."""
    rng = np.random.default_rng(m + n + k)
    page = PACK_STRIDE // np.dtype(dtype).itemsize
    far = page * (1 + max(m, n, k) // page)  # entries from one row to the next: a multiple of PACK_STRIDE bytes
    a_far = rng.standard_normal(((k, far) if transa else (m, far))).astype(dtype)
    b_far = rng.standard_normal((k, far)).astype(dtype)
    a_far[:, (m if transa else k):] = np.nan  # the tiles read nothing past the operands' rows
    b_far[:, n:] = np.nan
    a, b = (a_far[:, :m] if transa else a_far[:, :k]), b_far[:, :n]
    before = rng.standard_normal((m, n)).astype(dtype)
    for beta in (0.0, 0.5):
        outer, c = _guarded(m, n, dtype)
        c[...] = np.nan if beta == 0 else before
        tiles_gemm(transa, False, m, n, k, 1.5, a_far, far, b_far, far, beta, c, c.strides[0] // c.itemsize)
        nearby = np.full((m, n), np.nan, dtype) if beta == 0 else before.copy()
        _tiles(transa, 1.5, np.ascontiguousarray(a), np.ascontiguousarray(b), beta, nearby)
        assert np.array_equal(c, nearby)
        expected = 1.5 * ((a.T if transa else a).astype(np.float64) @ b.astype(np.float64)) + beta * before
        tolerance = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(c, expected, rtol=tolerance, atol=tolerance * max(k, 1))
        c[...] = 0
        assert np.isnan(outer).sum() == outer.size - m * n


@pytest.mark.parametrize("flags", ["NN", "TN", "NT"])
@pytest.mark.parametrize("k", [0, 1, INNER_BLOCK - 1, INNER_BLOCK, 2 * INNER_BLOCK + 3])
def test_long_inner_dimensions_run_in_blocks_added_to_c(flags, k):
    transa, transb = flags[0] == "T", flags[1] == "T"
    rng = np.random.default_rng(k)
    a = rng.standard_normal((k, 13) if transa else (13, k)).astype(np.float32)
    b = rng.standard_normal((40, k) if transb else (k, 40)).astype(np.float32)
    before = rng.standard_normal((13, 40)).astype(np.float32)
    outer, c = _guarded(13, 40, np.float32)
    c[...] = before
    _tiles(transa, 0.5, a, b, -2.0, c, transb)
    expected = 0.5 * ((a.T if transa else a).astype(np.float64) @ (b.T if transb else b).astype(np.float64)) - 2 * before
    np.testing.assert_allclose(c, expected, rtol=1e-4, atol=1e-4 * max(k, 1) ** 0.5)
    c[...] = 0
    assert np.isnan(outer).sum() == outer.size - c.size


@pytest.mark.needs_jit("the tiles' own order of sums; plain Python multiplies with NumPy")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transb, rows, columns", [(False, (0, 5, 21, 37), (0, 40, 83)),
                                                   (True, (0, 5, 21, 31), (0, 40, 83)),  # dot tiles
                                                   (True, (0, 32, 70), (0, 64, 150))])  # packed tiles
def test_a_product_cut_into_rows_or_columns_gives_the_same_bits_as_the_whole(dtype, transb, rows, columns):
    m, n = rows[-1], columns[-1]
    whole_packs = transb and by_packing(m, n)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, 45)).astype(dtype)
    b = rng.standard_normal((n, 45) if transb else (45, n)).astype(dtype)
    whole, cut = np.zeros((m, n), dtype), np.zeros((m, n), dtype)
    _tiles(False, 1.0, a, b, 0.0, whole, transb)
    for i0, i1 in zip(rows, rows[1:]):
        for j0, j1 in zip(columns, columns[1:]):
            assert not transb or by_packing(i1 - i0, j1 - j0) == whole_packs  # each piece takes the same tiles
            _tiles(False, 1.0, a[i0:i1], b[j0:j1] if transb else b[:, j0:j1], 0.0, cut[i0:i1, j0:j1], transb)
    assert np.array_equal(whole, cut)


@pytest.mark.needs_jit("the swapped product and the tiles' own order of sums; plain Python multiplies with NumPy")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("beta", [0.0, -0.5])
@pytest.mark.parametrize("m, n, k", [(SWAP_MIN_ROWS, 16, 45), (300, 1, 600), (200, SWAP_MAX_COLUMNS, 7), (130, 5, 0)])
def test_narrow_products_of_a_transposed_run_swapped_with_the_bits_of_direct_tiles(dtype, beta, m, n, k):
    """A tall, narrow ``a.T @ b`` is computed as ``(b.T @ a).T`` through a buffer: the product NumPy gives,
    nothing written outside ``c``, and the same bits as pieces of fewer rows, which run by ``c``'s own tiles."""
    assert by_swapping(m, n) and not by_swapping(SWAP_MIN_ROWS - 1, n)
    rng = np.random.default_rng(m + n + k)
    a = rng.standard_normal((k, m + 3)).astype(dtype)[:, :m]
    b = rng.standard_normal((k, n + 5)).astype(dtype)[:, :n]
    before = rng.standard_normal((m, n)).astype(dtype)
    outer, c = _guarded(m, n, dtype)
    c[...] = np.nan if beta == 0 else before  # beta 0: c is never read, NaN included
    _tiles(True, 0.75, a, b, beta, c)
    expected = 0.75 * (a.T.astype(np.float64) @ b.astype(np.float64)) + (beta * before if beta else 0)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(c, expected, rtol=tolerance, atol=tolerance * max(k, 1))
    pieces = before.copy()
    for i in range(0, m, SWAP_MIN_ROWS // 2):
        _tiles(True, 0.75, a[:, i:i + SWAP_MIN_ROWS // 2], b, beta, pieces[i:i + SWAP_MIN_ROWS // 2])
    assert np.array_equal(c, pieces)
    c[...] = 0
    assert np.isnan(outer).sum() == outer.size - m * n


def test_narrow_products_of_a_transposed_go_to_the_tiles_when_their_swapped_product_fits():
    rows = 4 * TILES_MAX_A // INNER_BLOCK  # too many for c's own tiles
    assert not tiles_fit(True, False, rows, INNER_BLOCK)
    assert blas.tiles_take(True, False, rows, 16, INNER_BLOCK) == tiles_fit(True, False, 16, INNER_BLOCK)
    assert not by_swapping(rows, SWAP_MAX_COLUMNS + 1) and not by_swapping(SWAP_MIN_ROWS - 1, 1)
    assert not blas.tiles_take(True, False, rows, SWAP_MAX_COLUMNS + 1, INNER_BLOCK)


@BOTH_WAYS
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(512, 128), (512, 16), (37, 53), (16, 8), (1, 1), (0, 5), (100, 3)])
@pytest.mark.parametrize("inner_step", [1, 2])
def test_transposed_copies_any_matrix_into_a_new_aligned_array(nk_tiles, dtype, shape, inner_step):
    """avx512.transposed (a recurrent layer's weights for its forward): a.T, C-contiguous, on a cache line,
    from rows with a stride and entries with one; blocks in registers or entry by entry, the same values."""
    rows, columns = shape
    a = np.random.default_rng(rows).standard_normal((rows, inner_step * columns + 5)).astype(dtype)
    a = a[:, :inner_step * columns:inner_step]
    t = transposed(a)
    assert np.array_equal(t, a.T) and t.flags.c_contiguous and t.dtype == dtype
    assert t.size == 0 or t.ctypes.data % 64 == 0


@BOTH_WAYS
def test_a_transposed_product_too_tall_for_the_tiles_runs_by_tiles_in_pieces_of_rows(nk_tiles):
    """blas.gemm_row_pieces: an a.T @ b whose a.T is too large for the tiles (a recurrent layer's W_hh gradient
    over all its steps) runs in pieces of tiles_rows rows, each by tiles; without tiles, whole by BLAS."""
    k = INNER_BLOCK + 37
    rows = tiles_rows(k)
    assert rows % 8 == 0 and rows * INNER_BLOCK <= TILES_MAX_A < (rows + 8) * INNER_BLOCK
    m, n = 2 * rows + 40, 96
    assert not blas.tiles_take(True, False, m, n, k)
    rng = np.random.default_rng(2)
    a = rng.standard_normal((k, m)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c = np.full((m, n), np.nan, np.float32)
    blas.gemm_row_pieces(True, 1.0, a, b, 0.0, c)
    np.testing.assert_allclose(c, a.T.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)
    if nk_tiles:
        pieces = np.empty_like(c)
        for i in range(0, m, rows):
            _tiles(True, 1.0, np.ascontiguousarray(a[:, i:i + rows]), b, 0.0, pieces[i:i + rows])
        assert np.array_equal(c, pieces)
    else:
        whole = np.empty_like(c)
        blas._row_major_gemm(True, False, m, n, k, 1.0, a, m, b, n, 0.0, whole, n)
        assert np.array_equal(c, whole)


def test_products_with_b_transposed_pack_a_from_their_least_rows_and_columns():
    assert by_packing(PACK_MIN_ROWS, PACK_MIN_COLUMNS)
    assert not by_packing(PACK_MIN_ROWS - 1, 10 * PACK_MIN_COLUMNS) and not by_packing(10 * PACK_MIN_ROWS, PACK_MIN_COLUMNS - 1)


@BOTH_WAYS
def test_tiles_fit_the_products_of_a_training_step_and_leave_larger_ones_to_blas(nk_tiles):
    fits = bool(nk_tiles)
    for transa, transb in [(False, False), (True, False), (False, True)]:
        assert tiles_fit(transa, transb, 32, 128) == fits and tiles_fit(transa, transb, 25, 20_000) == fits
        assert tiles_fit(transa, transb, TILES_MAX_A // INNER_BLOCK, 10 * INNER_BLOCK) == fits
        assert not tiles_fit(transa, transb, TILES_MAX_A // INNER_BLOCK + 1, INNER_BLOCK)
        assert not tiles_fit(transa, transb, TILES_MAX_A // 64 + 1, 64)
    assert not tiles_fit(True, True, 32, 128)  # both transposed: BLAS
    assert tiles_fit(False, False, 32, 3) == fits and not tiles_fit(False, True, 32, DOT_MIN_INNER - 1)


@pytest.mark.parametrize("nk_small_kernels", [1, 0], indirect=True, ids=["avx512-blas", "other-blas"])
def test_products_with_b_transposed_go_to_dot_tiles_only_where_openblas_lacks_its_avx512_kernels(nk_small_kernels):
    fits = tiles_fit(False, True, 32, 128)
    assert blas.tiles_take(False, True, 32, 10, 128) == (fits and not nk_small_kernels)  # dot tiles
    assert blas.tiles_take(False, True, 32, 64, 128) == fits  # packed tiles
    assert blas.tiles_take(False, False, 32, 10, 128) == tiles_fit(False, False, 32, 128)


@BOTH_WAYS
@pytest.mark.parametrize("flags", ["NN", "TN", "NT"])
@pytest.mark.parametrize("shape", [(32, 128, 128), (10, 32, 128), (33, 20, 7), (64, 800, 64), (600, 300, 40),
                                   (25, 1300, 32), (40, 64, 70)])
def test_gemm_hands_the_tiles_what_they_take_and_blas_the_rest(nk_tiles, flags, shape):
    m, k, n = shape
    transa, transb = flags[0] == "T", flags[1] == "T"
    rng = np.random.default_rng(1)
    a = rng.standard_normal((k, m) if transa else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if transb else (k, n)).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    through_gemm, by_tiles, by_blas = c0.copy(), c0.copy(), c0.copy()
    blas.gemm(transa, transb, 0.5, a, b, 1.0, through_gemm)
    _tiles(transa, 0.5, a, b, 1.0, by_tiles, transb)
    blas._row_major_gemm(transa, transb, m, n, k, 0.5, a, a.shape[1], b, b.shape[1], 1.0, by_blas, n)
    expected = by_tiles if blas.tiles_take(transa, transb, m, n, k) else by_blas
    assert np.array_equal(through_gemm, expected)
    np.testing.assert_allclose(by_tiles, by_blas, rtol=1e-4, atol=1e-4)


def test_tiles_follow_the_cpu():
    import llvmlite.binding as llvm
    from numba import config

    has = bool(llvm.get_host_cpu_features().get("avx512f")) and config.CPU_NAME in (None, "host")
    assert avx512._cpu_has_avx512() == has
