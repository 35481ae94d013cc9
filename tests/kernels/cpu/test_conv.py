"""Tests of the Conv1D/Conv2D CPU kernels (nkernels.kernels.cpu.conv).

The naive references (tests/naive.py) are the specification; the kernels must agree with them
(float32: rtol 1e-4, float64: rtol 1e-10), and with torch.nn.functional in float64.
Shapes are tiny and only two dtypes are used, so each kernel compiles twice at most.
"""
import numpy as np
import pytest

import naive
from nkernels.kernels.cpu import conv


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------

DTYPES = [np.float32, np.float64]

# (N, C, H, W, O, KH, KW, stride_h, stride_w, pad_h, pad_w)
CASES_2D = [
    (2, 3, 7, 6, 4, 3, 2, 2, 1, 1, 2),  # odd sizes, stride in h only, asymmetric padding
    (1, 2, 5, 5, 3, 5, 5, 1, 1, 0, 0),  # batch of 1, kernel covers the whole input
    (3, 1, 9, 8, 2, 3, 3, 3, 2, 2, 1),  # strides > 1 with padding, leftover rows
    (2, 2, 4, 5, 3, 1, 1, 1, 1, 0, 0),  # 1x1 kernel
    (1, 1, 3, 4, 2, 2, 2, 1, 2, 3, 3),  # padding wider than the kernel: all-zero windows
    # stride 1 and OW == W: each column row is one shifted run of the input plane
    (2, 3, 6, 5, 4, 3, 3, 1, 1, 1, 1),  # "same" 3x3
    (2, 2, 5, 4, 3, 3, 5, 1, 1, 0, 2),  # OW == W but OH < H
    (1, 2, 3, 3, 2, 1, 3, 1, 1, 2, 1),  # OH > H: output rows that read only padding
    (1, 2, 1, 4, 2, 3, 3, 1, 1, 1, 1),  # one row, "same" 3x3: kernel rows kh = 0, 2 read only padding
    (2, 2, 1, 1, 2, 3, 3, 1, 1, 1, 1),  # one pixel, "same" 3x3: every kernel row and column but the middle
    # the kernels work in chunks of samples whose im2col fits conv.CHUNK_ELEMENTS (32768):
    (3, 4, 16, 16, 3, 5, 5, 1, 1, 0, 0),  # 100 x 144 columns a sample: two chunks, of 1 and 2 samples
    (3, 4, 20, 20, 3, 5, 5, 1, 1, 0, 0),  # 100 x 256 columns a sample: one-sample chunks
    (2, 9, 16, 16, 2, 5, 5, 1, 1, 3, 3),  # 225 x 324 columns a sample: one-sample chunks, padded
    (3, 4, 16, 16, 3, 5, 5, 1, 1, 2, 2),  # the same, "same" padding: each patch plane one shifted run
]

# (N, C, L, O, K, stride, pad)
CASES_1D = [
    (2, 3, 11, 4, 3, 1, 1),
    (1, 2, 8, 3, 4, 3, 2),
    (3, 1, 5, 2, 5, 1, 0),
]


def tol(dtype):
    return dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)


def make_2d(case, dtype, bias=True, seed=0):
    n, c, h, w, o, kh, kw, sh, sw, ph, pw = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((o, c, kh, kw)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if bias else np.zeros(0, dtype)
    oshape = conv.conv2d_output_shape(x.shape, weight.shape, sh, sw, ph, pw)
    dout = rng.standard_normal(oshape).astype(dtype)
    return x, weight, b, dout, (sh, sw, ph, pw)


def make_1d(case, dtype, bias=True, seed=0):
    n, c, length, o, k, s, p = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, length)).astype(dtype)
    weight = rng.standard_normal((o, c, k)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if bias else np.zeros(0, dtype)
    oshape = conv.conv1d_output_shape(x.shape, weight.shape, s, p)
    dout = rng.standard_normal(oshape).astype(dtype)
    return x, weight, b, dout, (s, p)


#: (make, case) of every 2-D and 1-D case
BOTH = [pytest.param(make_2d, c, id=f"2d-{i}") for i, c in enumerate(CASES_2D)] + [
    pytest.param(make_1d, c, id=f"1d-{i}") for i, c in enumerate(CASES_1D)]


def prefix(x):
    """``"conv2d"`` for an NCHW input, ``"conv1d"`` for an NCL one: the prefix of the kernels that convolve it."""
    return "conv2d" if x.ndim == 4 else "conv1d"


def workspaces(x, weight, opts):
    """The two workspaces, full of NaN: garbage in them must not matter."""
    cs, gs = getattr(conv, prefix(x) + "_workspace_shapes")(x.shape, weight.shape, *opts)
    return np.full(cs, np.nan, x.dtype), np.full(gs, np.nan, x.dtype)


def run_conv(x, weight, b, dout, opts, need_dx=True, cols_ready=False):
    """Conv2D or Conv1D (by ``x.ndim``), forward and backward into NaN-filled outputs: (out, dx, dw, db)."""
    cols, gemm = workspaces(x, weight, opts)
    out = np.full(getattr(conv, prefix(x) + "_output_shape")(x.shape, weight.shape, *opts), np.nan, x.dtype)
    getattr(conv, prefix(x) + "_forward")(x, weight, b, *opts, cols, gemm, out)
    dx = np.full_like(x, np.nan)
    dw = np.full_like(weight, np.nan)
    db = np.full_like(b, np.nan)
    getattr(conv, prefix(x) + "_backward")(x, weight, dout, *opts, need_dx, cols_ready, cols, gemm, dx, dw, db)
    return out, dx, dw, db


# ----------------------------------------------------------------------------------------------
# Shape helpers
# ----------------------------------------------------------------------------------------------


def test_shape_helpers():
    assert conv.conv2d_output_shape((2, 3, 7, 6), (4, 3, 3, 2), 2, 1, 1, 2) == (2, 4, 4, 9)
    assert conv.conv1d_output_shape((2, 3, 11), (4, 3, 3), 2, 1) == (2, 4, 6)
    assert conv.conv2d_workspace_shapes((2, 3, 7, 6), (4, 3, 3, 2), 2, 1, 1, 2) == (
        (2 * 4 * 9, 3 * 3 * 2), (4, 2 * 4 * 9))
    assert conv.conv1d_workspace_shapes((2, 3, 11), (4, 3, 3), 2, 1) == ((12, 9), (4, 12))
    assert conv.conv2d_workspace_size((2, 3, 7, 6), (4, 3, 3, 2), 2, 1, 1, 2) == 72 * 18 + 4 * 72
    assert conv.conv1d_workspace_size((2, 3, 11), (4, 3, 3), 2, 1) == 12 * 9 + 4 * 12


# ----------------------------------------------------------------------------------------------
# Against the naive references
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make, case", BOTH)
def test_conv_matches_naive(make, case, dtype):
    x, weight, b, dout, opts = make(case, dtype)
    out, dx, dw, db = run_conv(x, weight, b, dout, opts)
    ref_out = getattr(naive, prefix(x) + "_forward")(x, weight, b, *opts)
    ref_dx, ref_dw, ref_db = getattr(naive, prefix(x) + "_backward")(x, weight, dout, *opts)
    for got, ref in [(out, ref_out), (dx, ref_dx), (dw, ref_dw), (db, ref_db)]:
        assert got.dtype == dtype
        np.testing.assert_allclose(got, ref, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_without_bias(dtype):
    x, weight, b, dout, opts = make_2d(CASES_2D[0], dtype, bias=False)
    out, dx, dw, db = run_conv(x, weight, b, dout, opts)
    assert db.shape == (0,)
    np.testing.assert_allclose(out, naive.conv2d_forward(x, weight, b, *opts), **tol(dtype))
    ref_dx, ref_dw, _ = naive.conv2d_backward(x, weight, dout, *opts)
    np.testing.assert_allclose(dx, ref_dx, **tol(dtype))
    np.testing.assert_allclose(dw, ref_dw, **tol(dtype))


def test_conv1d_without_bias():
    x, weight, b, dout, opts = make_1d(CASES_1D[1], np.float64, bias=False)
    out, dx, dw, db = run_conv(x, weight, b, dout, opts)
    np.testing.assert_allclose(out, naive.conv1d_forward(x, weight, b, *opts), rtol=1e-10)
    ref_dx, ref_dw, _ = naive.conv1d_backward(x, weight, dout, *opts)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw, ref_dw, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_backward_options(dtype):
    """need_dx=False leaves dx untouched; cols_ready=True (cols from the forward) and repeated
    calls (outputs are overwritten, never accumulated) give the same gradients."""
    x, weight, b, dout, opts = make_2d(CASES_2D[2], dtype)
    _, ref_dx, ref_dw, ref_db = run_conv(x, weight, b, dout, opts)

    _, dx, dw, db = run_conv(x, weight, b, dout, opts, need_dx=False)
    assert np.isnan(dx).all()
    np.testing.assert_array_equal(dw, ref_dw)
    np.testing.assert_array_equal(db, ref_db)

    _, dx, dw, db = run_conv(x, weight, b, dout, opts, cols_ready=True)
    np.testing.assert_array_equal(dx, ref_dx)
    np.testing.assert_array_equal(dw, ref_dw)

    cols, gemm = workspaces(x, weight, opts)
    dx, dw, db = np.empty_like(x), np.empty_like(weight), np.empty_like(b)
    for _ in range(2):
        conv.conv2d_backward(x, weight, dout, *opts, True, False, cols, gemm, dx, dw, db)
    np.testing.assert_array_equal(dx, ref_dx)
    np.testing.assert_array_equal(dw, ref_dw)
    np.testing.assert_array_equal(db, ref_db)


def test_conv1d_backward_options():
    x, weight, b, dout, opts = make_1d(CASES_1D[0], np.float64)
    _, ref_dx, ref_dw, ref_db = run_conv(x, weight, b, dout, opts)
    _, dx, dw, db = run_conv(x, weight, b, dout, opts, need_dx=False, cols_ready=True)
    assert np.isnan(dx).all()
    np.testing.assert_array_equal(dw, ref_dw)
    np.testing.assert_array_equal(db, ref_db)


# ----------------------------------------------------------------------------------------------
# Against PyTorch (float64, autograd)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make, case", BOTH)
def test_conv_matches_torch(make, case):
    torch = pytest.importorskip("torch")
    x, weight, b, dout, opts = make(case, np.float64, seed=1)
    out, dx, dw, db = run_conv(x, weight, b, dout, opts)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, weight, b))
    if x.ndim == 4:
        sh, sw, ph, pw = opts
        yt = torch.nn.functional.conv2d(xt, wt, bt, stride=(sh, sw), padding=(ph, pw))
    else:
        yt = torch.nn.functional.conv1d(xt, wt, bt, stride=opts[0], padding=opts[1])
    yt.backward(torch.tensor(dout))
    for got, ref in [(out, yt), (dx, xt.grad), (dw, wt.grad), (db, bt.grad)]:
        np.testing.assert_allclose(got, ref.detach().numpy(), rtol=1e-10, atol=1e-10)


#: 19 samples of 100 x 400 columns: 19 one-sample chunks, more than conv.ROUND_CHUNKS, so later rounds
#: add into the first one's partial sums of the weight gradient
MANY_CHUNKS = (19, 4, 20, 20, 3, 5, 5, 1, 1, 2, 2)


def test_conv2d_over_rounds_of_chunks():
    """Chunks run in rounds, their GEMMs side by side; the summed partial weight gradients equal PyTorch's."""
    torch = pytest.importorskip("torch")
    assert conv._chunk_count(MANY_CHUNKS[0], 4 * 5 * 5, 20 * 20) > conv.ROUND_CHUNKS
    x, weight, b, dout, opts = make_2d(MANY_CHUNKS, np.float64, seed=2)
    out, dx, dw, db = run_conv(x, weight, b, dout, opts)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, weight, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, padding=opts[2:])
    yt.backward(torch.tensor(dout))
    for got, ref in [(out, yt), (dx, xt.grad), (dw, wt.grad), (db, bt.grad)]:
        np.testing.assert_allclose(got, ref.detach().numpy(), rtol=1e-10, atol=1e-10)


#: 11 samples of 100 x 1024 columns: more column entries than conv.KEPT_COLUMNS in more chunks than
#: conv.ROUND_CHUNKS, so the chunks share stretches of the workspaces and the backward builds its columns again
SHARED_STRETCHES = (11, 4, 36, 36, 3, 5, 5, 1, 1, 0, 0)


@pytest.mark.parametrize("cols_ready", [False, True])
def test_conv2d_with_shared_workspace_stretches_matches_torch(cols_ready):
    """A batch too large to keep its columns: the forward runs in rounds over shared stretches, and the
    backward is right even when told the columns are ready (they hold the last round's only)."""
    torch = pytest.importorskip("torch")
    n, c, h, w, o, kh, kw = SHARED_STRETCHES[:7]
    r_size, ohw = c * kh * kw, (h - kh + 1) * (w - kw + 1)
    n_chunks = conv._chunk_count(n, r_size, ohw)
    assert n_chunks > conv.ROUND_CHUNKS and n * r_size * ohw > conv.KEPT_COLUMNS
    x, weight, b, dout, opts = make_2d(SHARED_STRETCHES, np.float64, seed=4)
    out, dx, dw, db = run_conv(x, weight, b, dout, opts, cols_ready=cols_ready)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, weight, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt)
    yt.backward(torch.tensor(dout))
    for got, ref in [(out, yt), (dx, xt.grad), (dw, wt.grad), (db, bt.grad)]:
        np.testing.assert_allclose(got, ref.detach().numpy(), rtol=1e-10, atol=1e-10)


#: LeNet's second convolution on 2 samples: a sample's products (64 x 800 by 800 x 64) exceed
#: blas.SMALL_PRODUCT, so with OpenBLAS's small-matrix kernels they go in pieces of 16 rows
LENET_CONV2 = (2, 32, 12, 12, 64, 5, 5, 1, 1, 0, 0)


#: "same" 3x3 convolutions of 16 to 32 channels on 4x4 images: six samples in one chunk, and a weight gradient
#: of 144 x 32 entries, which OpenBLAS's small kernels take only by the transposed copy of dout
SAME_3X3_CHUNKED = (6, 16, 4, 4, 32, 3, 3, 1, 1, 1, 1)


@pytest.mark.parametrize("nk_small_kernels", [1, 0], indirect=True)
@pytest.mark.parametrize("case", [LENET_CONV2, SAME_3X3_CHUNKED], ids=["lenet-conv2", "same-3x3-chunked"])
def test_conv2d_products_in_pieces_match_torch(nk_small_kernels, case):
    """Forward and backward with the products cut for OpenBLAS's small kernels (and the weight gradient by
    a transposed copy of dout) and whole, against torch."""
    torch = pytest.importorskip("torch")
    from nkernels.kernels.cpu import blas

    assert (blas.small_piece(64, 64, 800) < 64) == bool(nk_small_kernels)
    x, weight, b, dout, opts = make_2d(case, np.float64, seed=5)
    out, dx, dw, db = run_conv(x, weight, b, dout, opts)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, weight, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride=opts[:2], padding=opts[2:])
    yt.backward(torch.tensor(dout))
    for got, ref in [(out, yt), (dx, xt.grad), (dw, wt.grad), (db, bt.grad)]:
        np.testing.assert_allclose(got, ref.detach().numpy(), rtol=1e-10, atol=1e-10)


def test_conv2d_on_an_empty_batch_gives_zero_weight_gradients():
    x, weight, b, dout, opts = make_2d((0,) + CASES_2D[0][1:], np.float64)
    out, dx, dw, db = run_conv(x, weight, b, dout, opts)
    assert out.shape[0] == 0 and dx.shape[0] == 0
    np.testing.assert_array_equal(dw, np.zeros_like(dw))
    np.testing.assert_array_equal(db, np.zeros_like(db))


def test_conv2d_results_do_not_depend_on_the_thread_count(on_one_thread):
    """The same bits from one Numba thread as from all of them (the weight gradient's partial sums are fixed)."""
    for case in (MANY_CHUNKS, SHARED_STRETCHES):
        x, weight, b, dout, opts = make_2d(case, np.float32, seed=3)
        one = on_one_thread(run_conv, x, weight, b, dout, opts)
        for got, ref in zip(run_conv(x, weight, b, dout, opts), one):
            np.testing.assert_array_equal(got, ref)


# ----------------------------------------------------------------------------------------------
# ConvTranspose2D: the adjoint of Conv2D (checked against the naive Conv2D and against PyTorch)
# ----------------------------------------------------------------------------------------------

# (N, C, H, W, O, KH, KW, stride_h, stride_w, pad_h, pad_w, out_pad_h, out_pad_w)
CASES_T = [
    (2, 3, 4, 5, 2, 3, 3, 1, 1, 0, 0, 0, 0),  # stride 1: a full correlation
    (2, 3, 4, 5, 4, 3, 2, 2, 3, 1, 0, 1, 2),  # uneven strides, padding and output padding
    (1, 2, 3, 3, 3, 4, 4, 3, 2, 2, 1, 2, 0),  # stride below the kernel in w only, padding > stride - 1
    (3, 2, 4, 4, 2, 4, 4, 2, 2, 1, 1, 0, 0),  # the usual doubling (k4 s2 p1)
    (1, 2, 2, 3, 2, 3, 3, 2, 2, 1, 1, 1, 1),  # the other doubling (k3 s2 p1, output padding 1)
    (2, 1, 1, 1, 2, 1, 1, 1, 1, 0, 0, 0, 0),  # 1x1 input and kernel
]


def make_t(case, dtype, bias=True, seed=0):
    n, c, h, w, o, kh, kw, sh, sw, ph, pw, oph, opw = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((c, o, kh, kw)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if bias else np.zeros(0, dtype)
    oshape = conv.convtranspose2d_output_shape(x.shape, weight.shape, sh, sw, ph, pw, oph, opw)
    dout = rng.standard_normal(oshape).astype(dtype)
    return x, weight, b, dout, (sh, sw, ph, pw), (oph, opw)


def run_convtranspose2d(x, weight, b, dout, opts, need_dx=True, gemm_ready=False):
    cs, gs = conv.convtranspose2d_workspace_shapes(x.shape, weight.shape)
    cols, gemm = np.full(cs, np.nan, x.dtype), np.full(gs, np.nan, x.dtype)  # garbage must not matter
    out = np.full(dout.shape, np.nan, x.dtype)
    conv.convtranspose2d_forward(x, weight, b, *opts, cols, gemm, out)
    dx, dw, db = np.full_like(x, np.nan), np.full_like(weight, np.nan), np.full_like(b, np.nan)
    conv.convtranspose2d_backward(x, weight, dout, *opts, need_dx, gemm_ready, cols, gemm, dx, dw, db)
    return out, dx, dw, db


def test_convtranspose2d_shape_helpers():
    assert conv.convtranspose2d_output_shape((2, 3, 4, 5), (3, 6, 3, 2), 2, 3, 1, 0, 1, 2) == (2, 6, 8, 16)
    assert conv.convtranspose2d_workspace_shapes((2, 3, 4, 5), (3, 6, 3, 2)) == ((40, 36), (3, 40))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES_T)
def test_convtranspose2d_is_the_adjoint_of_conv2d(case, dtype):
    """Forward = the naive Conv2D's input gradient (plus the bias); dx = the naive Conv2D's forward
    of dout; dweight = the naive Conv2D's weight gradient with x as its output gradient."""
    x, weight, b, dout, opts, _ = make_t(case, dtype)
    out, dx, dw, db = run_convtranspose2d(x, weight, b, dout, opts)
    conv_view = naive.conv2d_backward(np.zeros(dout.shape), weight, x, *opts)
    ref_out = conv_view[0] + b[None, :, None, None]
    ref_dx = naive.conv2d_forward(dout, weight, np.zeros(0), *opts)
    ref_dw = naive.conv2d_backward(dout, weight, x, *opts)[1]
    for got, ref in [(out, ref_out), (dx, ref_dx), (dw, ref_dw), (db, dout.sum(axis=(0, 2, 3)))]:
        assert got.dtype == dtype
        np.testing.assert_allclose(got, ref, **tol(dtype))


@pytest.mark.parametrize("case", CASES_T)
def test_convtranspose2d_matches_torch(case):
    torch = pytest.importorskip("torch")
    x, weight, b, dout, opts, out_pad = make_t(case, np.float64, seed=1)
    sh, sw, ph, pw = opts
    out, dx, dw, db = run_convtranspose2d(x, weight, b, dout, opts)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, weight, b))
    yt = torch.nn.functional.conv_transpose2d(xt, wt, bt, stride=(sh, sw), padding=(ph, pw), output_padding=out_pad)
    yt.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_convtranspose2d_backward_options(dtype):
    """No bias; need_dx=False leaves dx untouched; gemm_ready=True (gemm as the forward left it)
    and repeated calls (outputs overwritten, never accumulated) give the same gradients."""
    x, weight, b, dout, opts, _ = make_t(CASES_T[1], dtype, bias=False)
    out, ref_dx, ref_dw, db = run_convtranspose2d(x, weight, b, dout, opts)
    assert db.shape == (0,)
    np.testing.assert_allclose(out, naive.conv2d_backward(np.zeros(dout.shape), weight, x, *opts)[0], **tol(dtype))

    _, dx, dw, _ = run_convtranspose2d(x, weight, b, dout, opts, need_dx=False)
    assert np.isnan(dx).all()
    np.testing.assert_array_equal(dw, ref_dw)

    _, dx, dw, _ = run_convtranspose2d(x, weight, b, dout, opts, gemm_ready=True)
    np.testing.assert_array_equal(dx, ref_dx)
    np.testing.assert_array_equal(dw, ref_dw)

    cs, gs = conv.convtranspose2d_workspace_shapes(x.shape, weight.shape)
    cols, gemm = np.empty(cs, dtype), np.empty(gs, dtype)
    dx, dw = np.empty_like(x), np.empty_like(weight)
    for _ in range(2):
        conv.convtranspose2d_backward(x, weight, dout, *opts, True, False, cols, gemm, dx, dw, b)
    np.testing.assert_array_equal(dx, ref_dx)
    np.testing.assert_array_equal(dw, ref_dw)
