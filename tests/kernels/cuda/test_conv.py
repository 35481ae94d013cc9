"""CUDA Conv1D/Conv2D kernels (im2col + tiled GEMM, gather col2im) against their CPU twins.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes; they also run
on a real GPU (without the simulator) at realistic shapes when NKERNELS_REAL_GPU=1 (conftest.py).
"""
import numpy as np
import pytest

from nkernels.kernels.cpu import conv as cpu
from nkernels.kernels.cuda import conv as gpu

pytestmark = pytest.mark.cuda


@pytest.fixture
def shapes(pick):
    """((N, C, H, W), (O, KH, KW), (stride_h, stride_w), (pad_h, pad_w)) cases."""
    sim = [((2, 1, 5, 5), (3, 3, 3), (1, 1), (1, 1)),
           ((1, 2, 6, 5), (2, 2, 3), (2, 1), (0, 2))]  # stride > 1, uneven pads: gaps in col2im
    real = [((64, 1, 8, 8), (16, 3, 3), (1, 1), (1, 1)),
            ((128, 32, 12, 12), (64, 5, 5), (1, 1), (0, 0)),
            ((16, 3, 33, 31), (8, 4, 3), (2, 3), (1, 2))]
    return pick(sim, real)


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _window_entries(x, kh, kw, sh, sw, ph, pw, oh, ow):
    """Every entry of every convolution window of ``x`` (zeros for the padding), sorted: what an
    im2col matrix holds, whatever its layout."""
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    taps = [padded[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] for i in range(kh) for j in range(kw)]
    return np.sort(np.concatenate([t.ravel() for t in taps]))


def test_conv2d_matches_cpu(shapes, dtype, dev, poison, close):
    rng = np.random.default_rng(0)
    for xs, (o, kh, kw), (sh, sw), (ph, pw) in shapes:
        x = _rand(rng, xs, dtype)
        w = _rand(rng, (o, xs[1], kh, kw), dtype)
        b = _rand(rng, o, dtype)
        out_shape = cpu.conv2d_output_shape(xs, w.shape, sh, sw, ph, pw)
        cs, gs = cpu.conv2d_workspace_shapes(xs, w.shape, sh, sw, ph, pw)
        scale = max(1.0, np.sqrt(xs[1] * kh * kw) / 8)
        out = np.empty(out_shape, dtype)
        cols, gemm = np.empty(cs, dtype), np.empty(gs, dtype)
        cpu.conv2d_forward(x, w, b, sh, sw, ph, pw, cols, gemm, out)
        d_x, d_w = dev(x), dev(w)
        d_cols, d_gemm, d_out = poison(cs, dtype), poison(gs, dtype), poison(out_shape, dtype)
        gpu.conv2d_forward(d_x, d_w, dev(b), sh, sw, ph, pw, d_cols, d_gemm, d_out)
        close(d_out, out, scale)
        # im2col left in cols, as its entries (the CPU's workspace holds only its last chunk of samples
        # where it works chunk by chunk, so the entries are compared with every window's, from NumPy)
        windows = _window_entries(x, kh, kw, sh, sw, ph, pw, out_shape[2], out_shape[3])
        np.testing.assert_array_equal(np.sort(d_cols.copy_to_host(), axis=None), windows)

        dout = _rand(rng, out_shape, dtype)
        for cols_ready in (True, False):
            dx, dw, db = np.empty_like(x), np.empty_like(w), np.empty_like(b)
            cpu.conv2d_forward(x, w, b, sh, sw, ph, pw, cols, gemm, out)
            cpu.conv2d_backward(x, w, dout, sh, sw, ph, pw, True, True, cols, gemm, dx, dw, db)
            if cols_ready:
                gpu.conv2d_forward(d_x, d_w, dev(b), sh, sw, ph, pw, d_cols, d_gemm, d_out)
            else:
                d_cols = poison(cs, dtype)
            d_dx, d_dw, d_db = poison(x.shape, dtype), poison(w.shape, dtype), poison(o, dtype)
            gpu.conv2d_backward(d_x, d_w, dev(dout), sh, sw, ph, pw, True, cols_ready, d_cols,
                                d_gemm, d_dx, d_dw, d_db)
            pscale = max(1.0, np.sqrt(out_shape[0] * out_shape[2] * out_shape[3]) / 8)
            close(d_dx, dx, scale)
            close(d_dw, dw, pscale)
            close(d_db, db, pscale)


def test_conv1d_matches_cpu_without_bias_and_dx(dtype, dev, poison, close, pick):
    rng = np.random.default_rng(1)
    (n, c, length), (o, k), stride, pad = pick(((2, 2, 7), (3, 3), 2, 1), ((64, 16, 100), (32, 5), 2, 2))
    x, w = _rand(rng, (n, c, length), dtype), _rand(rng, (o, c, k), dtype)
    none = np.empty(0, dtype)
    out_shape = cpu.conv1d_output_shape(x.shape, w.shape, stride, pad)
    cs, gs = cpu.conv1d_workspace_shapes(x.shape, w.shape, stride, pad)
    out, cols, gemm = np.empty(out_shape, dtype), np.empty(cs, dtype), np.empty(gs, dtype)
    cpu.conv1d_forward(x, w, none, stride, pad, cols, gemm, out)
    d_cols, d_gemm, d_out = poison(cs, dtype), poison(gs, dtype), poison(out_shape, dtype)
    gpu.conv1d_forward(dev(x), dev(w), dev(none), stride, pad, d_cols, d_gemm, d_out)
    close(d_out, out, 2.0)
    dout = _rand(rng, out_shape, dtype)
    dx, dw = np.empty_like(x), np.empty_like(w)
    cpu.conv1d_backward(x, w, dout, stride, pad, True, True, cols, gemm, dx, dw, none)
    d_dx, d_dw = poison(x.shape, dtype), poison(w.shape, dtype)
    gpu.conv1d_backward(dev(x), dev(w), dev(dout), stride, pad, True, True, d_cols, d_gemm, d_dx,
                        d_dw, dev(none))
    close(d_dx, dx, 2.0)
    close(d_dw, dw, 4.0)
    d_dx2 = poison(x.shape, dtype)
    gpu.conv1d_backward(dev(x), dev(w), dev(dout), stride, pad, False, False, d_cols, d_gemm,
                        d_dx2, d_dw, dev(none))
    close(d_dw, dw, 4.0)
    assert np.isnan(d_dx2.copy_to_host()).all()  # need_dx=False leaves dx untouched


def test_convtranspose2d_matches_cpu(dtype, dev, poison, close, pick):
    """Forward (with and without bias), then backward with gemm as the forward left it and rebuilt."""
    rng = np.random.default_rng(2)
    cases = pick([((2, 2, 3, 2), (3, 3, 2), (2, 1), (1, 0), (1, 0)),
                  ((1, 1, 2, 2), (2, 4, 4), (2, 2), (1, 1), (0, 0))],
                 [((64, 32, 7, 7), (16, 4, 4), (2, 2), (1, 1), (0, 0)),
                  ((16, 8, 13, 11), (8, 3, 3), (2, 3), (1, 0), (1, 2))])
    for bias, (xs, (o, kh, kw), (sh, sw), (ph, pw), (oph, opw)) in zip((True, False), cases):
        x, w = _rand(rng, xs, dtype), _rand(rng, (xs[1], o, kh, kw), dtype)
        b = _rand(rng, o, dtype) if bias else np.empty(0, dtype)
        out_shape = cpu.convtranspose2d_output_shape(xs, w.shape, sh, sw, ph, pw, oph, opw)
        cs, gs = cpu.convtranspose2d_workspace_shapes(xs, w.shape)
        out, cols, gemm = np.empty(out_shape, dtype), np.empty(cs, dtype), np.empty(gs, dtype)
        cpu.convtranspose2d_forward(x, w, b, sh, sw, ph, pw, cols, gemm, out)
        d_x, d_w, d_b = dev(x), dev(w), dev(b)
        d_cols, d_gemm, d_out = poison(cs, dtype), poison(gs, dtype), poison(out_shape, dtype)
        gpu.convtranspose2d_forward(d_x, d_w, d_b, sh, sw, ph, pw, d_cols, d_gemm, d_out)
        scale = max(1.0, np.sqrt(xs[1] * kh * kw) / 8)
        close(d_out, out, scale)

        dout = _rand(rng, out_shape, dtype)
        dx, dw, db = np.empty_like(x), np.empty_like(w), np.empty_like(b)
        cpu.convtranspose2d_backward(x, w, dout, sh, sw, ph, pw, True, True, cols, gemm, dx, dw, db)
        pscale = max(1.0, np.sqrt(xs[0] * xs[2] * xs[3]) / 8)
        for gemm_ready in (True, False):
            if not gemm_ready:
                d_gemm = poison(gs, dtype)
            d_dx, d_dw, d_db = poison(x.shape, dtype), poison(w.shape, dtype), poison(b.shape, dtype)
            gpu.convtranspose2d_backward(d_x, d_w, dev(dout), sh, sw, ph, pw, True, gemm_ready, d_cols, d_gemm,
                                         d_dx, d_dw, d_db)
            close(d_dx, dx, max(1.0, np.sqrt(o * kh * kw) / 8))
            close(d_dw, dw, pscale)
            if bias:
                close(d_db, db, max(1.0, np.sqrt(out_shape[0] * out_shape[2] * out_shape[3]) / 8))
        d_dx = poison(x.shape, dtype)
        gpu.convtranspose2d_backward(d_x, d_w, dev(dout), sh, sw, ph, pw, False, False, d_cols, d_gemm, d_dx,
                                     d_dw, d_db)
        assert np.isnan(d_dx.copy_to_host()).all()  # need_dx=False leaves dx untouched
        close(d_dw, dw, pscale)


def test_forward_with_an_epilogue_activation_writes_forward_then_activation(dev, poison):
    """``conv2d_forward_activation``, ``conv1d_forward_activation`` and ``dense_forward_activation`` (the step
    plan's fused Conv/Dense -> activation): bit for bit the plain forward followed by the activation's kernel."""
    from nkernels.kernels.cuda import activation
    from nkernels.kernels.cuda import dense

    rng = np.random.default_rng(3)
    x2, w2, b = _rand(rng, (2, 1, 4, 4), np.float32), _rand(rng, (2, 1, 3, 3), np.float32), _rand(rng, 2, np.float32)
    x1, w1 = _rand(rng, (2, 2, 5), np.float32), _rand(rng, (2, 2, 3), np.float32)
    xd, wd = _rand(rng, (3, 4), np.float32), _rand(rng, (2, 4), np.float32)
    cases = [(gpu.conv2d_forward, gpu.conv2d_forward_activation, (dev(x2), dev(w2), dev(b), 1, 1, 1, 1),
              cpu.conv2d_workspace_shapes(x2.shape, w2.shape, 1, 1, 1, 1),
              cpu.conv2d_output_shape(x2.shape, w2.shape, 1, 1, 1, 1), "relu"),
             (gpu.conv1d_forward, gpu.conv1d_forward_activation, (dev(x1), dev(w1), dev(np.empty(0, np.float32)), 1, 1),
              cpu.conv1d_workspace_shapes(x1.shape, w1.shape, 1, 1), cpu.conv1d_output_shape(x1.shape, w1.shape, 1, 1),
              "tanh"),
             (dense.dense_forward, dense.dense_forward_activation, (dev(xd), dev(wd), dev(b)), None, (3, 2), "sigmoid")]
    for plain, fused, args, spaces, out_shape, act in cases:
        work = [poison(s, np.float32) for s in spaces] if spaces else []
        want, got = poison(out_shape, np.float32), poison(out_shape, np.float32)
        plain(*args, *work, want)
        flat = want.reshape(-1)
        getattr(activation, act + "_forward")(flat, flat)
        fused(*args, *work, got, act)
        np.testing.assert_array_equal(got.copy_to_host(), want.copy_to_host())
