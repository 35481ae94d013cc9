"""Tests of the normalization CPU kernels (nkernels.kernels.cpu.normalization) against NumPy references.

(The layers' agreement with torch.nn is in tests/test_normalization.py and tests/test_layers.py.)
"""
import numpy as np
import pytest

from nkernels.kernels.cpu import normalization as kernels

TOL = {np.float32: 1e-5, np.float64: 1e-12}


def channels_last(x, channels):
    """(N, C * L) rows as (C, N * L): each channel's values in one row."""
    n = x.shape[0]
    return x.reshape(n, channels, -1).transpose(1, 0, 2).reshape(channels, -1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cumulative", [False, True])
def test_batchnorm_train_eval_and_backward_match_numpy(dtype, cumulative):
    rng = np.random.default_rng(0)
    n, c, length = 3, 4, 5
    x = (rng.standard_normal((n, c * length)) * 2 + 1).astype(dtype)
    w, b = rng.uniform(0.5, 1.5, c).astype(dtype), rng.standard_normal(c).astype(dtype)
    rm, rv, tracked = np.full(c, 0.5, dtype), np.full(c, 2.0, dtype), np.array([3], np.int64)
    mean, invstd, out = np.empty(c, dtype), np.empty(c, dtype), np.empty_like(x)
    kernels.batchnorm_forward_train(x, c, w, b, 1e-5, 0.25, cumulative, rm, rv, tracked, mean, invstd, out)
    per = channels_last(x.astype(np.float64), c)
    mu, var = per.mean(axis=1), per.var(axis=1)
    tol = TOL[dtype]
    np.testing.assert_allclose(mean, mu, rtol=tol)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(var + 1e-5), rtol=tol)
    xhat = (per - mu[:, None]) / np.sqrt(var + 1e-5)[:, None]
    expected = (xhat * w[:, None] + b[:, None]).reshape(c, n, length).transpose(1, 0, 2).reshape(n, -1)
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)
    assert tracked[0] == 4
    f = 1 / 4 if cumulative else 0.25
    np.testing.assert_allclose(rm, (1 - f) * 0.5 + f * mu, rtol=tol)
    np.testing.assert_allclose(rv, (1 - f) * 2.0 + f * per.var(axis=1, ddof=1), rtol=tol)

    evaluated = np.empty_like(x)
    kernels.batchnorm_forward_eval(x, c, w, b, 1e-5, rm, rv, evaluated)
    scale = w / np.sqrt(rv.astype(np.float64) + 1e-5)
    expected = ((per - rm[:, None]) * scale[:, None] + b[:, None]).reshape(c, n, length).transpose(1, 0, 2)
    np.testing.assert_allclose(evaluated, expected.reshape(n, -1), rtol=tol, atol=tol)

    dy = rng.standard_normal(x.shape).astype(dtype)
    g = channels_last(dy.astype(np.float64), c)
    dx, dw, db = np.full_like(x, np.nan), np.empty(c, dtype), np.empty(c, dtype)
    kernels.batchnorm_backward(x, dy, c, w, mean, invstd, False, dx, dw, db)
    assert np.isnan(dx).all()  # need_dx=False leaves dx alone
    np.testing.assert_allclose(db, g.sum(axis=1), rtol=tol, atol=tol)
    np.testing.assert_allclose(dw, (g * xhat).sum(axis=1), rtol=10 * tol, atol=10 * tol)
    kernels.batchnorm_backward(x, dy, c, w, mean, invstd, True, dx, dw, db)
    m = n * length
    ref = w[:, None] / np.sqrt(var + 1e-5)[:, None] / m * (m * g - g.sum(axis=1, keepdims=True)
                                                           - xhat * (g * xhat).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(dx, ref.reshape(c, n, length).transpose(1, 0, 2).reshape(n, -1), rtol=10 * tol,
                               atol=10 * tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("variant", ["plain", "scale", "affine"])
def test_layernorm_variants_match_numpy(dtype, variant):
    rng = np.random.default_rng(1)
    rows, d = 6, 7
    x = (rng.standard_normal(rows * d) * 3 + 2).astype(dtype)
    w, b = rng.uniform(0.5, 1.5, d).astype(dtype), rng.standard_normal(d).astype(dtype)
    mean, invstd, out = np.empty(rows, dtype), np.empty(rows, dtype), np.empty_like(x)
    params = {"plain": (), "scale": (w,), "affine": (w, b)}[variant]
    prefix = {"plain": "layernorm", "scale": "layernorm_scale", "affine": "layernorm_affine"}[variant]
    getattr(kernels, prefix + "_forward")(x, d, *params, 1e-5, mean, invstd, out)
    x2 = x.astype(np.float64).reshape(rows, d)
    mu, var = x2.mean(axis=1, keepdims=True), x2.var(axis=1, keepdims=True)
    xhat = (x2 - mu) / np.sqrt(var + 1e-5)
    expected = xhat * (w if params else 1) + (b if variant == "affine" else 0)
    tol = TOL[dtype]
    np.testing.assert_allclose(out.reshape(rows, d), expected, rtol=tol, atol=tol)

    dy = rng.standard_normal(x.shape).astype(dtype)
    g = dy.astype(np.float64).reshape(rows, d)
    grads = {"plain": (), "scale": (np.empty(d, dtype),), "affine": (np.empty(d, dtype), np.empty(d, dtype))}[variant]
    dx = np.empty_like(x)
    getattr(kernels, prefix + "_backward")(x, dy, d, *params[:1], mean, invstd, True, dx, *grads)
    gw = g * (w if params else 1)
    ref = (gw - gw.mean(axis=1, keepdims=True) - xhat * (gw * xhat).mean(axis=1, keepdims=True)) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(dx.reshape(rows, d), ref, rtol=10 * tol, atol=10 * tol)
    if grads:
        np.testing.assert_allclose(grads[0], (g * xhat).sum(axis=0), rtol=10 * tol, atol=10 * tol)
    if variant == "affine":
        np.testing.assert_allclose(grads[1], g.sum(axis=0), rtol=10 * tol, atol=10 * tol)
