"""CUDA pooling kernels (MaxPool1D/2D, AvgPool2D) against their CPU twins.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes; they also run
on a real GPU (without the simulator) at realistic shapes when NKERNELS_REAL_GPU=1 (conftest.py).
"""
import numpy as np
import pytest

from nkernels.kernels.cpu import pool as cpu
from nkernels.kernels.cuda import pool as gpu

pytestmark = pytest.mark.cuda

# (k, stride): non-overlapping (exact, deterministic), gaps, overlapping windows
WINDOWS = [(2, 2), (2, 3), (3, 2)]


@pytest.fixture
def shapes(pick):
    """(N, C, H, W) images; 1-D pools use (N, C, H*W)."""
    return pick([(2, 2, 5, 7)], [(128, 32, 24, 24), (3, 5, 17, 13)])


def _image(rng, shape, dtype):
    x = rng.integers(-3, 4, shape).astype(dtype)  # many ties: first maximum wins
    x.reshape(-1)[::11] = np.nan                   # a NaN wins its window
    return x


@pytest.mark.parametrize("dims", ["2d", "1d"])
@pytest.mark.parametrize("k, stride", WINDOWS)
def test_maxpool_matches_cpu(dims, k, stride, shapes, dtype, dev, poison):
    """MaxPool2D over the images, MaxPool1D over their rows laid end to end, (N, C, H*W)."""
    rng = np.random.default_rng(0)
    for n, c, h, w in shapes:
        shape = (n, c, h, w) if dims == "2d" else (n, c, h * w)
        x = _image(rng, shape, dtype)
        oshape = getattr(cpu, f"pool{dims}_output_shape")(shape, k, stride)
        out, arg = np.empty(oshape, dtype), np.empty(oshape, np.int64)
        getattr(cpu, f"maxpool{dims}_forward")(x, k, stride, out, arg)
        d_out, d_arg = poison(oshape, dtype), dev(np.full(oshape, -1, np.int64))
        getattr(gpu, f"maxpool{dims}_forward")(dev(x), k, stride, d_out, d_arg)
        np.testing.assert_array_equal(d_out.copy_to_host(), out)
        np.testing.assert_array_equal(d_arg.copy_to_host(), arg)
        dout = rng.standard_normal(oshape).astype(dtype)
        dx = np.empty_like(x)
        getattr(cpu, f"maxpool{dims}_backward")(dout, arg, dx)
        d_dx = poison(shape, dtype)  # the gather writes every element: no zeroing pass
        getattr(gpu, f"maxpool{dims}_backward")(dev(dout), d_arg, d_dx, k, stride)
        np.testing.assert_array_equal(d_dx.copy_to_host(), dx)  # the CPU's sums, overlaps included


@pytest.mark.parametrize("dims", ["2d", "1d"])
def test_maxpool_backward_without_the_window_scatters(dims, dev, poison):
    """The older 3-argument form (window unknown): zeroed, then atomic adds; the same gradient."""
    rng = np.random.default_rng(1)
    shape = (1, 2, 4, 5) if dims == "2d" else (1, 2, 9)
    x = _image(rng, shape, np.float64)
    oshape = getattr(cpu, f"pool{dims}_output_shape")(shape, 3, 2)
    out, arg = np.empty(oshape), np.empty(oshape, np.int64)
    getattr(cpu, f"maxpool{dims}_forward")(x, 3, 2, out, arg)
    dout = rng.standard_normal(oshape)
    dx = np.empty_like(x)
    getattr(cpu, f"maxpool{dims}_backward")(dout, arg, dx)
    d_dx = poison(shape, np.float64)
    getattr(gpu, f"maxpool{dims}_backward")(dev(dout), dev(arg), d_dx)
    np.testing.assert_allclose(d_dx.copy_to_host(), dx, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="both be the forward's window"):
        getattr(gpu, f"maxpool{dims}_backward")(dev(dout), dev(arg), d_dx, 3, 0)


@pytest.mark.parametrize("k, stride", WINDOWS + [(1, 1)])
def test_avgpool2d_matches_cpu(k, stride, shapes, dtype, dev, poison, close):
    rng = np.random.default_rng(2)
    for shape in shapes:
        x = rng.standard_normal(shape).astype(dtype)
        oshape = cpu.pool2d_output_shape(shape, k, stride)
        out = np.empty(oshape, dtype)
        cpu.avgpool2d_forward(x, k, stride, out)
        d_out = poison(oshape, dtype)
        gpu.avgpool2d_forward(dev(x), k, stride, d_out)
        close(d_out, out)  # within an ulp: the CPU's float64 2x2 sum is narrowed to float32 by LLVM
        dout = rng.standard_normal(oshape).astype(dtype)
        dx = np.empty_like(x)
        cpu.avgpool2d_backward(dout, k, stride, dx)
        d_dx = poison(shape, dtype)
        gpu.avgpool2d_backward(dev(dout), k, stride, d_dx)
        close(d_dx, dx)


def test_globalavgpool2d_matches_cpu(shapes, dtype, dev, poison, close):
    rng = np.random.default_rng(3)
    for shape in shapes + [(1, 2, 1, 1)]:
        x = rng.standard_normal(shape).astype(dtype)
        out = np.empty(shape[:2], dtype)
        cpu.globalavgpool2d_forward(x, out)
        d_out = poison(shape[:2], dtype)
        gpu.globalavgpool2d_forward(dev(x), d_out)
        close(d_out, out)
        dout = rng.standard_normal(shape[:2]).astype(dtype)
        dx = np.empty_like(x)
        cpu.globalavgpool2d_backward(dout, dx)
        d_dx = poison(shape, dtype)
        gpu.globalavgpool2d_backward(dev(dout), d_dx)
        close(d_dx, dx)


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_upsample2d_matches_cpu(scale, pick, dtype, dev, poison, close):
    rng = np.random.default_rng(4)
    for n, c, h, w in pick([(2, 1, 3, 2)], [(128, 32, 14, 14), (3, 5, 17, 13)]):
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
        oshape = (n, c, h * scale, w * scale)
        out = np.empty(oshape, dtype)
        cpu.upsample2d_forward(x, scale, out)
        d_out = poison(oshape, dtype)
        gpu.upsample2d_forward(dev(x), scale, d_out)
        np.testing.assert_array_equal(d_out.copy_to_host(), out)  # copies are exact
        dout = rng.standard_normal(oshape).astype(dtype)
        dx = np.empty_like(x)
        cpu.upsample2d_backward(dout, scale, dx)
        d_dx = poison(x.shape, dtype)
        gpu.upsample2d_backward(dev(dout), scale, d_dx)
        close(d_dx, dx)
