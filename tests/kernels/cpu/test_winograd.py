"""Tests of Winograd's F(2x2, 3x3) path of the Conv2D CPU kernels (nkernels.kernels.cpu.winograd).

``conv.conv2d_forward`` and ``conv.conv2d_backward`` take it where ``winograd_applies``; every case here
asserts that they do, so that a change of the rule cannot quietly send these tests down the im2col path.
The naive references (tests/naive.py) are the specification (float32: rtol 1e-4, float64: 1e-10), and
torch.nn.functional in float64.
"""
import numpy as np
import pytest

import naive
from nkernels.kernels.cpu import conv, winograd

DTYPES = [np.float32, np.float64]

# (N, C, H, W, O, pad): stride 1, 3x3 kernels, even output sizes
CASES = [
    (2, 16, 4, 4, 16, 1),  # "same", two one-sample chunks
    (3, 16, 4, 6, 16, 1),  # a rectangle; chunks of 1 and 2 samples
    (2, 16, 6, 8, 20, 0),  # no padding (2 x 3 tiles of a 4 x 6 output), more outputs than inputs
    (2, 16, 2, 2, 16, 2),  # padding wider than the kernel: border tiles read only zeros
]

#: 33 samples of 4 x 4 x 64: two chunks of 16 and 17 samples, several tiles each
TWO_BIG_CHUNKS = (33, 64, 4, 4, 64, 1)


def tol(dtype):
    return dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)


def make(case, dtype, bias=True, seed=0):
    n, c, h, w, o, pad = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((o, c, 3, 3)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if bias else np.zeros(0, dtype)
    opts = (1, 1, pad, pad)
    oshape = conv.conv2d_output_shape(x.shape, weight.shape, *opts)
    assert winograd.winograd_applies(n, c, o, 3, 3, 1, 1, oshape[2], oshape[3]), "the case must take the path"
    return x, weight, b, rng.standard_normal(oshape).astype(dtype), opts


def run(x, weight, b, dout, opts, need_dx=True, cols_ready=True):
    """Forward and backward through the public kernels, workspaces and outputs full of NaN (garbage in
    them must not matter); with ``cols_ready`` false the columns are spoilt between the two passes."""
    cs, gs = conv.conv2d_workspace_shapes(x.shape, weight.shape, *opts)
    cols, gemm = np.full(cs, np.nan, x.dtype), np.full(gs, np.nan, x.dtype)
    out = np.full(conv.conv2d_output_shape(x.shape, weight.shape, *opts), np.nan, x.dtype)
    conv.conv2d_forward(x, weight, b, *opts, cols, gemm, out)
    if not cols_ready:
        cols.fill(np.nan)
        gemm.fill(np.nan)
    dx, dw, db = np.full_like(x, np.nan), np.full_like(weight, np.nan), np.full_like(b, np.nan)
    conv.conv2d_backward(x, weight, dout, *opts, need_dx, cols_ready, cols, gemm, dx, dw, db)
    return out, dx, dw, db


@pytest.mark.parametrize("shape, applies", [
    ((32, 32, 32, 8, 8), True),  # the resnet preset's blocks
    ((32, 32, 32, 4, 4), True),
    ((64, 16, 16, 8, 8), True),
    ((16, 8, 8, 8, 8), False),  # too few channels to gain
    ((32, 32, 32, 7, 8), False),  # an odd output height: no whole tiles
    ((128, 64, 64, 32, 32), False),  # the transformed input would not stay in cache
    ((1, 16, 16, 4, 4), False),  # its scratch would not fit in the workspace
    ((32, 16, 64, 4, 4), False),  # 4x the output channels: neither
])
def test_winograd_applies_where_it_gains_and_fits(shape, applies):
    n, c, o, oh, ow = shape
    assert winograd.winograd_applies(n, c, o, 3, 3, 1, 1, oh, ow) is applies
    assert not winograd.winograd_applies(n, c, o, 3, 3, 2, 1, oh, ow)  # stride 2
    assert not winograd.winograd_applies(n, c, o, 5, 5, 1, 1, oh, ow)  # 5x5


@pytest.mark.parametrize("cols_ready", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_conv2d_by_winograd_matches_naive(case, dtype, cols_ready):
    x, weight, b, dout, opts = make(case, dtype)
    got = run(x, weight, b, dout, opts, cols_ready=cols_ready)
    ref_out = naive.conv2d_forward(x, weight, b, *opts)
    ref_dx, ref_dw, ref_db = naive.conv2d_backward(x, weight, dout, *opts)
    for g, ref in zip(got, (ref_out, ref_dx, ref_dw, ref_db)):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, ref, **tol(dtype))


def test_conv2d_by_winograd_without_bias_or_input_gradient():
    """No bias: the output has none; need_dx false: dx untouched, the weight gradient the same."""
    x, weight, b, dout, opts = make(CASES[1], np.float64, bias=False)
    out, dx, dw, db = run(x, weight, b, dout, opts, need_dx=False)
    np.testing.assert_allclose(out, naive.conv2d_forward(x, weight, b, *opts), **tol(np.float64))
    assert np.isnan(dx).all() and db.shape == (0,)
    np.testing.assert_allclose(dw, naive.conv2d_backward(x, weight, dout, *opts)[1], **tol(np.float64))


@pytest.mark.parametrize("case", CASES + [TWO_BIG_CHUNKS])
def test_conv2d_by_winograd_matches_torch(case):
    torch = pytest.importorskip("torch")
    x, weight, b, dout, opts = make(case, np.float64, seed=1)
    out, dx, dw, db = run(x, weight, b, dout, opts)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, weight, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, padding=opts[2])
    yt.backward(torch.tensor(dout))
    for got, ref in [(out, yt), (dx, xt.grad), (dw, wt.grad), (db, bt.grad)]:
        np.testing.assert_allclose(got, ref.detach().numpy(), rtol=1e-10, atol=1e-10)


def test_conv2d_by_winograd_does_not_depend_on_the_thread_count(on_one_thread):
    """The same bits from one Numba thread as from all of them (one partial sum of the weight gradient per
    chunk, added in chunk order)."""
    x, weight, b, dout, opts = make(TWO_BIG_CHUNKS, np.float32, seed=3)
    one = on_one_thread(run, x, weight, b, dout, opts)
    for got, ref in zip(run(x, weight, b, dout, opts), one):
        np.testing.assert_array_equal(got, ref)
