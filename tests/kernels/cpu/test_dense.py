"""The CPU dense kernels (nkernels.kernels.cpu.dense) against the naive references and torch."""
import numpy as np
import pytest

import naive
from nkernels.kernels.cpu import dense

DTYPES = [np.float32, np.float64]
#: (N, in, out): a batch of one, odd sizes, one input feature
SHAPES = [(1, 1, 1), (1, 6, 3), (5, 7, 4), (3, 1, 9)]


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


def make(n, k_in, k_out, dtype, bias=True, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, k_in)).astype(dtype)
    weight = rng.standard_normal((k_out, k_in)).astype(dtype)
    b = rng.standard_normal(k_out).astype(dtype) if bias else np.zeros(0, dtype)
    dy = rng.standard_normal((n, k_out)).astype(dtype)
    return x, weight, b, dy


def run(x, weight, b, dy, need_dx=True):
    """Forward and backward into NaN-filled outputs: (out, dx, dweight, dbias)."""
    out = np.full((x.shape[0], weight.shape[0]), np.nan, x.dtype)
    dense.dense_forward(x, weight, b, out)
    dx, dw, db = np.full_like(x, np.nan), np.full_like(weight, np.nan), np.full_like(b, np.nan)
    dense.dense_backward(x, dy, weight, need_dx, dx, dw, db)
    return out, dx, dw, db


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_dense_matches_naive(shape, bias, dtype):
    x, weight, b, dy = make(*shape, dtype, bias=bias)
    out, dx, dw, db = run(x, weight, b, dy)
    ref_dx, ref_dw, ref_db = naive.dense_backward(x, dy, weight)
    for got, ref in [(out, naive.dense_forward(x, weight, b)), (dx, ref_dx), (dw, ref_dw)]:
        assert got.dtype == dtype
        np.testing.assert_allclose(got, ref, **tol(dtype))
    if bias:
        np.testing.assert_allclose(db, ref_db, **tol(dtype))
    else:
        assert db.shape == (0,)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_backward_without_dx_and_repeated(dtype):
    """need_dx=False leaves dx untouched; a second call overwrites the gradients, never adds to them."""
    x, weight, b, dy = make(4, 3, 2, dtype, seed=1)
    _, ref_dx, ref_dw, ref_db = run(x, weight, b, dy)
    _, dx, dw, db = run(x, weight, b, dy, need_dx=False)
    assert np.isnan(dx).all()
    np.testing.assert_array_equal(dw, ref_dw)
    np.testing.assert_array_equal(db, ref_db)
    dense.dense_backward(x, dy, weight, True, dx, dw, db)
    dense.dense_backward(x, dy, weight, True, dx, dw, db)
    np.testing.assert_array_equal(dx, ref_dx)
    np.testing.assert_array_equal(dw, ref_dw)
    np.testing.assert_array_equal(db, ref_db)


def test_dense_matches_torch():
    torch = pytest.importorskip("torch")
    x, weight, b, dy = make(5, 7, 4, np.float64, seed=2)
    out, dx, dw, db = run(x, weight, b, dy)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, weight, b))
    yt = torch.nn.functional.linear(xt, wt, bt)
    yt.backward(torch.tensor(dy))
    for got, ref in [(out, yt), (dx, xt.grad), (dw, wt.grad), (db, bt.grad)]:
        np.testing.assert_allclose(got, ref.detach().numpy(), rtol=1e-12, atol=1e-12)


#: (N, in, out) at or above blas.SPLIT_MULTIPLY_ADDS: with two Numba threads the forward halves the
#: output's columns (N < out) or rows (N >= out), the backward runs dweight beside dx, or halves of
#: dweight's rows when dx is not wanted; odd sizes give unequal halves
SPLIT_SHAPES = [(48, 64, 97), (101, 64, 40), (2, 4096, 17)]


@pytest.mark.parametrize("shape", SPLIT_SHAPES)
def test_dense_on_two_threads_matches_naive_and_one_thread(shape):
    import numba

    from nkernels.kernels.cpu.blas import SPLIT_MULTIPLY_ADDS

    n, k_in, k_out = shape
    assert n * k_in * k_out >= SPLIT_MULTIPLY_ADDS
    if numba.get_num_threads() < 2:
        pytest.skip("Numba has one thread here (NUMBA_NUM_THREADS=1): nothing runs on two")
    x, weight, b, dy = make(n, k_in, k_out, np.float64, seed=4)
    ref_dx, ref_dw, ref_db = naive.dense_backward(x, dy, weight)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = [run(x, weight, b, dy, need_dx) for need_dx in (True, False)]
    finally:
        numba.set_num_threads(threads)
    for need_dx, ones in zip((True, False), one):
        out, dx, dw, db = run(x, weight, b, dy, need_dx)
        refs = [naive.dense_forward(x, weight, b), ref_dx if need_dx else np.full_like(x, np.nan), ref_dw, ref_db]
        for got, ref, single in zip((out, dx, dw, db), refs, ones):
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(got, single, rtol=1e-13, atol=1e-13)
