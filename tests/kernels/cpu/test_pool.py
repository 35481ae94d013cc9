"""Tests of the pooling CPU kernels (nkernels.kernels.cpu.pool).

The naive references (tests/naive.py) are the specification; the kernels must agree with them
(float32: rtol 1e-4, float64: rtol 1e-10; argmax exactly), and with torch.nn.functional in
float64. Shapes are tiny and only two dtypes are used, so each kernel compiles twice at most.
"""
import numpy as np
import pytest

import naive
from nkernels.kernels.cpu import pool


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------

DTYPES = [np.float32, np.float64]

# (N, C, H, W, k, stride)
CASES_2D = [
    (2, 3, 7, 7, 2, 2),  # odd sizes: the last row/column is dropped (floor)
    (1, 2, 6, 5, 3, 1),  # batch of 1, overlapping windows (stride < k)
    (2, 1, 8, 9, 3, 2),  # overlapping windows, stride > 1
    (3, 2, 5, 9, 2, 3),  # gaps between windows (stride > k)
    (1, 1, 4, 4, 4, 1),  # one window covering the whole plane
]

# (N, C, L, k, stride)
CASES_1D = [
    (2, 3, 9, 2, 2),
    (1, 2, 10, 3, 1),  # overlapping
    (3, 1, 11, 4, 3),  # overlapping, odd
    (2, 2, 7, 2, 3),  # gaps
]


def tol(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


def make(shape, out_shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    dout = rng.standard_normal(out_shape).astype(dtype)
    return x, dout


def dims(shape):
    """``"2d"`` for an NCHW shape, ``"1d"`` for an NCL one: the suffix of the kernels that pool it."""
    return "2d" if len(shape) == 4 else "1d"


def run_maxpool(x, k, stride, dout):
    """MaxPool2D or MaxPool1D (by ``x.ndim``), forward and backward into filled outputs: (out, argmax, dx)."""
    oshape = getattr(pool, f"pool{dims(x.shape)}_output_shape")(x.shape, k, stride)
    out = np.full(oshape, np.nan, x.dtype)
    argmax = np.full(oshape, -1, np.int64)
    getattr(pool, f"maxpool{dims(x.shape)}_forward")(x, k, stride, out, argmax)
    dx = np.full_like(x, np.nan)
    getattr(pool, f"maxpool{dims(x.shape)}_backward")(dout, argmax, dx, k, stride)
    return out, argmax, dx


def run_avgpool2d(x, k, stride, dout):
    out = np.full(pool.pool2d_output_shape(x.shape, k, stride), np.nan, x.dtype)
    pool.avgpool2d_forward(x, k, stride, out)
    dx = np.full_like(x, np.nan)
    pool.avgpool2d_backward(dout, k, stride, dx)
    return out, dx


def test_shape_helpers():
    assert pool.pool2d_output_shape((2, 3, 7, 7), 2, 2) == (2, 3, 3, 3)
    assert pool.pool2d_output_shape((1, 2, 6, 5), 3, 1) == (1, 2, 4, 3)
    assert pool.pool1d_output_shape((3, 1, 11), 4, 3) == (3, 1, 3)
    assert pool.pool_output_length(5, 2, 3) == 2
    assert pool.pool_workspace_size((2, 3, 7, 7), 2, 2) == 0


# ----------------------------------------------------------------------------------------------
# Against the naive references
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES_2D + CASES_1D)
def test_maxpool_matches_naive(case, dtype):
    *shape, k, s = case
    x, dout = make(shape, getattr(pool, f"pool{dims(shape)}_output_shape")(tuple(shape), k, s), dtype)
    out, argmax, dx = run_maxpool(x, k, s, dout)
    ref_out, ref_argmax = getattr(naive, f"maxpool{dims(shape)}_forward")(x, k, s)
    np.testing.assert_array_equal(out, ref_out)  # a max is exact
    np.testing.assert_array_equal(argmax, ref_argmax)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, getattr(naive, f"maxpool{dims(shape)}_backward")(x, k, s, dout), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES_2D)
def test_avgpool2d_matches_naive(case, dtype):
    n, c, h, w, k, s = case
    x, dout = make((n, c, h, w), pool.pool2d_output_shape((n, c, h, w), k, s), dtype)
    out, dx = run_avgpool2d(x, k, s, dout)
    assert out.dtype == dtype and dx.dtype == dtype
    np.testing.assert_allclose(out, naive.avgpool2d_forward(x, k, s), **tol(dtype))
    np.testing.assert_allclose(dx, naive.avgpool2d_backward(x, k, s, dout), **tol(dtype))


def test_maxpool_ties_and_nans():
    """As PyTorch: ties go to the first element in row-major window order, a NaN wins its
    window, and of several NaNs the last one."""
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = 1.0  # tie in the first 2x2 window
    x[0, 0, 2, 3] = np.nan
    x[0, 0, 3, 2] = 5.0  # larger than the NaN's window-mates, still loses to the NaN
    dout = np.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    out, argmax, dx = run_maxpool(x, 2, 2, dout)
    ref_out, ref_argmax = naive.maxpool2d_forward(x, 2, 2)
    np.testing.assert_array_equal(argmax, ref_argmax)
    assert argmax[0, 0, 0, 0] == 1 and argmax[0, 0, 1, 1] == 2 * 4 + 3
    np.testing.assert_array_equal(out, ref_out)  # NaN == NaN for assert_array_equal
    np.testing.assert_array_equal(dx, naive.maxpool2d_backward(x, 2, 2, dout))

    # The general (k != 2) path, with NaNs, infinities of both signs and ties.
    x3 = np.random.default_rng(3).standard_normal((1, 2, 6, 5))
    x3[0, 0, 2, 3] = x3[0, 0, 3, 1] = x3[0, 0, 3, 2] = np.nan
    x3[0, 1, 1, 1] = np.inf
    x3[0, 1, 3, 2] = -np.inf
    x3[0, 1, 4, 4] = x3[0, 1, 5, 0] = 9.0
    dout3 = np.ones(pool.pool2d_output_shape(x3.shape, 3, 1))
    out3, argmax3, dx3 = run_maxpool(x3, 3, 1, dout3)
    ref_out3, ref_argmax3 = naive.maxpool2d_forward(x3, 3, 1)
    np.testing.assert_array_equal(argmax3, ref_argmax3)
    np.testing.assert_array_equal(out3, ref_out3)
    np.testing.assert_array_equal(dx3, naive.maxpool2d_backward(x3, 3, 1, dout3))

    x1 = np.array([[[0.0, 2.0, 2.0, np.nan, 1.0, np.nan, 3.0]]])
    out1, argmax1, _ = run_maxpool(x1, 3, 1, np.ones((1, 1, 5)))
    np.testing.assert_array_equal(argmax1, naive.maxpool1d_forward(x1, 3, 1)[1])
    np.testing.assert_array_equal(argmax1[0, 0], [1, 3, 3, 5, 5])


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxpool_2x2_rows_of_many_windows_keep_the_rules(dtype):
    """2 x 2 windows at stride 2 run a row's windows a vector at a time, without branches: rows of 35
    windows (vector bodies and remainders), values from a few integers (ties everywhere), NaNs and
    infinities of both signs in some rows, against the naive scan and PyTorch's indices."""
    rng = np.random.default_rng(11)
    x = rng.integers(-2, 3, (2, 3, 11, 70)).astype(dtype)
    for n, c, h, w in rng.integers((0, 0, 0, 0), x.shape, (12, 4)):
        x[n, c, h, w] = rng.choice([np.nan, np.inf, -np.inf])
    dout = rng.standard_normal(pool.pool2d_output_shape(x.shape, 2, 2)).astype(dtype)
    out, argmax, dx = run_maxpool(x, 2, 2, dout)
    ref_out, ref_argmax = naive.maxpool2d_forward(x, 2, 2)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(argmax, ref_argmax)
    np.testing.assert_array_equal(dx, naive.maxpool2d_backward(x, 2, 2, dout))
    torch = pytest.importorskip("torch")
    _, indices = torch.nn.functional.max_pool2d(torch.tensor(x), 2, 2, return_indices=True)
    np.testing.assert_array_equal(argmax, indices.numpy())


def test_maxpool_nans_match_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(5).standard_normal((2, 2, 6, 6))
    x[0, 0, 1, 1] = x[0, 0, 1, 0] = x[1, 1, 4, 4] = x[1, 1, 5, 5] = x[0, 1, 0, 0] = np.nan
    for k, s in [(2, 2), (3, 1), (2, 1)]:
        _, argmax, _ = run_maxpool(x, k, s, np.ones(pool.pool2d_output_shape(x.shape, k, s)))
        _, it = torch.nn.functional.max_pool2d(torch.tensor(x), k, s, return_indices=True)
        np.testing.assert_array_equal(argmax, it.numpy())
    x1 = x.reshape(2, 2, 36)
    for k, s in [(2, 2), (4, 1)]:
        _, argmax, _ = run_maxpool(x1, k, s, np.ones(pool.pool1d_output_shape(x1.shape, k, s)))
        _, it = torch.nn.functional.max_pool1d(torch.tensor(x1), k, s, return_indices=True)
        np.testing.assert_array_equal(argmax, it.numpy())


def test_backward_overwrites_dx():
    """Backward kernels zero dx first: calling twice gives the same result, not the double."""
    n, c, h, w, k, s = CASES_2D[1]
    x, dout = make((n, c, h, w), pool.pool2d_output_shape((n, c, h, w), k, s), np.float64)
    _, argmax, dx_ref = run_maxpool(x, k, s, dout)
    dx = np.full_like(x, 7.0)
    pool.maxpool2d_backward(dout, argmax, dx)
    pool.maxpool2d_backward(dout, argmax, dx)
    np.testing.assert_array_equal(dx, dx_ref)
    _, dxa_ref = run_avgpool2d(x, k, s, dout)
    dxa = np.full_like(x, 7.0)
    pool.avgpool2d_backward(dout, k, s, dxa)
    np.testing.assert_array_equal(dxa, dxa_ref)


# ----------------------------------------------------------------------------------------------
# Against PyTorch (float64, autograd)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES_2D)
def test_pool2d_matches_torch(case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    n, c, h, w, k, s = case
    x, dout = make((n, c, h, w), pool.pool2d_output_shape((n, c, h, w), k, s), np.float64, seed=1)

    out, argmax, dx = run_maxpool(x, k, s, dout)
    xt = torch.tensor(x, requires_grad=True)
    yt, it = F.max_pool2d(xt, k, s, return_indices=True)
    yt.backward(torch.tensor(dout))
    np.testing.assert_array_equal(out, yt.detach().numpy())
    np.testing.assert_array_equal(argmax, it.numpy())
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)

    out, dx = run_avgpool2d(x, k, s, dout)
    xt = torch.tensor(x, requires_grad=True)
    yt = F.avg_pool2d(xt, k, s)
    yt.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES_1D)
def test_maxpool1d_matches_torch(case):
    torch = pytest.importorskip("torch")
    n, c, length, k, s = case
    x, dout = make((n, c, length), pool.pool1d_output_shape((n, c, length), k, s), np.float64,
                   seed=1)
    out, argmax, dx = run_maxpool(x, k, s, dout)
    xt = torch.tensor(x, requires_grad=True)
    yt, it = torch.nn.functional.max_pool1d(xt, k, s, return_indices=True)
    yt.backward(torch.tensor(dout))
    np.testing.assert_array_equal(out, yt.detach().numpy())
    np.testing.assert_array_equal(argmax, it.numpy())
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# GlobalAvgPool2D and Upsample2D
# ----------------------------------------------------------------------------------------------

# (N, C, H, W)
SHAPES_GLOBAL = [(2, 3, 5, 4), (1, 1, 1, 1), (3, 2, 1, 7)]
# (N, C, H, W, scale)
CASES_UPSAMPLE = [(2, 3, 3, 4, 2), (1, 2, 2, 1, 3), (2, 1, 3, 2, 1)]


def run_globalavgpool2d(x, dout):
    out = np.full(x.shape[:2], np.nan, x.dtype)
    pool.globalavgpool2d_forward(x, out)
    dx = np.full_like(x, np.nan)
    pool.globalavgpool2d_backward(dout, dx)
    return out, dx


def run_upsample2d(x, scale, dout):
    n, c, h, w = x.shape
    out = np.full((n, c, h * scale, w * scale), np.nan, x.dtype)
    pool.upsample2d_forward(x, scale, out)
    dx = np.full_like(x, np.nan)
    pool.upsample2d_backward(dout, scale, dx)
    return out, dx


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES_GLOBAL)
def test_globalavgpool2d_matches_naive(shape, dtype):
    x, dout = make(shape, shape[:2], dtype)
    out, dx = run_globalavgpool2d(x, dout)
    assert out.dtype == dtype and dx.dtype == dtype
    np.testing.assert_allclose(out, x.astype(np.float64).mean(axis=(2, 3)), **tol(dtype))
    ref_dx = np.broadcast_to(dout[:, :, None, None] / (shape[2] * shape[3]), shape)
    np.testing.assert_allclose(dx, ref_dx, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES_UPSAMPLE)
def test_upsample2d_matches_naive(case, dtype):
    *shape, s = case
    n, c, h, w = shape
    x, dout = make(shape, (n, c, h * s, w * s), dtype)
    out, dx = run_upsample2d(x, s, dout)
    np.testing.assert_array_equal(out, x.repeat(s, axis=2).repeat(s, axis=3))  # copies are exact
    ref_dx = dout.astype(np.float64).reshape(n, c, h, s, w, s).sum(axis=(3, 5))
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, ref_dx, **tol(dtype))


@pytest.mark.parametrize("case", CASES_UPSAMPLE)
def test_upsample2d_and_globalavgpool2d_match_torch(case):
    torch = pytest.importorskip("torch")
    *shape, s = case
    n, c, h, w = shape
    x, dout = make(shape, (n, c, h * s, w * s), np.float64, seed=1)
    out, dx = run_upsample2d(x, s, dout)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.Upsample(scale_factor=s, mode="nearest")(xt)
    yt.backward(torch.tensor(dout))
    np.testing.assert_array_equal(out, yt.detach().numpy())
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)

    g = np.random.default_rng(2).standard_normal((n, c))
    out, dx = run_globalavgpool2d(x, g)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.adaptive_avg_pool2d(xt, 1).flatten(1)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_globalavgpool1d_matches_numpy(dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 3)).astype(dtype)
    out = np.empty((2, 3), dtype)
    pool.globalavgpool1d_forward(x, out)
    np.testing.assert_allclose(out, x.astype(np.float64).mean(axis=1), rtol=1e-6)
    dout = rng.standard_normal((2, 3)).astype(dtype)
    dx = np.empty_like(x)
    pool.globalavgpool1d_backward(dout, dx)
    np.testing.assert_allclose(dx, np.repeat(dout[:, None] / 5, 5, axis=1), rtol=1e-6)
