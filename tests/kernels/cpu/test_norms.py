"""The CPU norm kernels (nkernels.kernels.cpu.norms: gradient clipping by global norm, max-norm rows) against
the naive references and torch."""
import math

import numpy as np
import pytest

import naive
from nkernels.kernels.cpu import norms

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 2e-6, np.float64: 1e-12}
SHAPES = [(8, 5), (8,), (4, 3, 3, 3), (1,)]


def make_grads(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def kernel_clip(grads, max_norm):
    sum_sq = sum(norms.sum_of_squares(g.reshape(-1)) for g in grads)
    total = math.sqrt(sum_sq)
    factor = norms.clip_factor(sum_sq, max_norm)
    if factor != 1.0:
        for g in grads:
            norms.scale_inplace(g.reshape(-1), factor)
    return total


# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_of_squares(dtype):
    a = np.random.default_rng(0).standard_normal(10_001).astype(dtype)
    got = norms.sum_of_squares(a)
    assert isinstance(got, float)
    np.testing.assert_allclose(got, np.sum(a.astype(np.float64) ** 2), rtol=1e-12)
    assert norms.sum_of_squares(a[:0]) == 0.0


@pytest.mark.parametrize("dtype", [np.float64, pytest.param(np.float32, marks=pytest.mark.needs_jit(
    "Numba types the Python float factor as float64, so a float32 element is scaled in float64 and rounded once; "
    "as plain Python NumPy 2 multiplies a float32 by a Python float in float32"))])
def test_scale_inplace(dtype):
    a = np.random.default_rng(1).standard_normal(1000).astype(dtype)
    ref = (a.astype(np.float64) * 0.37).astype(dtype)
    norms.scale_inplace(a, 0.37)
    np.testing.assert_array_equal(a, ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_combine_halves_weights_the_two_gradients(dtype):
    rng = np.random.default_rng(2)
    grad, other = rng.standard_normal(101).astype(dtype), rng.standard_normal(101).astype(dtype)
    expected = 0.625 * grad.astype(np.float64) + 0.375 * other.astype(np.float64)
    out = np.full_like(grad, np.nan)
    norms.combine_halves(grad, other, 0.625, 0.375, out)
    np.testing.assert_allclose(out, expected, rtol=1e-6 if dtype == np.float32 else 1e-15)
    swapped = np.full_like(grad, np.nan)
    norms.combine_halves(other, grad, 0.375, 0.625, swapped)  # the second thread's join: the same bits
    np.testing.assert_array_equal(swapped, out)
    norms.combine_halves(grad, other, 0.625, 0.375, grad)  # in place
    np.testing.assert_array_equal(grad, out)


def test_clip_factor():
    assert norms.clip_factor(1.0, 5.0) == 1.0
    assert norms.clip_factor(100.0, 5.0) == 5.0 / (10.0 + 1e-6)
    assert norms.clip_factor(25.0, 5.0) == 5.0 / (5.0 + 1e-6)  # as torch: clamp(coef, max=1)
    assert math.isnan(norms.clip_factor(math.nan, 5.0))
    assert norms.clip_factor(math.inf, 5.0) == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("max_norm", [1.0, 1e3])  # clips / leaves alone
def test_clip_grad_norm_matches_numpy(dtype, max_norm):
    grads, ref = make_grads(dtype), make_grads(dtype)
    total = kernel_clip(grads, max_norm)
    ref_total = naive.clip_grad_norm(ref, max_norm)
    np.testing.assert_allclose(total, ref_total, rtol=1e-12)
    for g, r in zip(grads, ref):
        np.testing.assert_allclose(g, r, rtol=RTOL[dtype], atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("max_norm", [1.0, 1e3])
def test_clip_grad_norm_matches_torch(dtype, max_norm):
    torch = pytest.importorskip("torch")
    grads = make_grads(dtype, seed=3)
    params = []
    for g in grads:
        p = torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype, requires_grad=True)
        p.grad = torch.from_numpy(g.copy())
        params.append(p)
    torch_total = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    total = kernel_clip(grads, max_norm)
    np.testing.assert_allclose(total, torch_total, rtol=RTOL[dtype])
    for g, p in zip(grads, params):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=RTOL[dtype] * 2, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_norm_rows_matches_numpy_and_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    w = rng.standard_normal((16, 9)).astype(dtype)
    w[3] *= 1e-3  # some rows well below, some well above max_norm
    w[5] *= 10
    max_norm = 2.5
    ref = naive.renorm(w, max_norm)
    expected = torch.renorm(torch.from_numpy(w), 2, 0, max_norm).numpy()
    got = w.copy()
    norms.max_norm_rows(got, max_norm)
    np.testing.assert_allclose(got, ref, rtol=RTOL[dtype], atol=0)
    np.testing.assert_allclose(got, expected, rtol=RTOL[dtype] * 2, atol=0)
    row_norms = np.linalg.norm(got.astype(np.float64), axis=1)
    assert np.all(row_norms <= max_norm * (1 + 1e-6))
    below = np.linalg.norm(w.astype(np.float64), axis=1) <= max_norm
    assert below.any() and (~below).any()
    np.testing.assert_array_equal(got[below], w[below])  # untouched


def test_max_norm_rows_conv_weight_view():
    torch = pytest.importorskip("torch")
    w = np.random.default_rng(5).standard_normal((6, 3, 3, 3))
    got = w.copy()
    norms.max_norm_rows(got.reshape(got.shape[0], -1), 3.0)  # in place through the view
    expected = torch.renorm(torch.from_numpy(w), 2, 0, 3.0).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
