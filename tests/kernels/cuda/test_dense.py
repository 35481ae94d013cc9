"""CUDA dense kernels against their CPU twins (the GEMM under them: test_gemm.py).

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes, with small
GEMM tiles so that odd sizes cover several full and partial tiles. They also run on a real GPU
(without the simulator) at realistic shapes when NKERNELS_REAL_GPU=1: see conftest.py.
"""
import numpy as np
import pytest

from nkernels.kernels.cpu import dense as cpu
from nkernels.kernels.cuda import dense as gpu

pytestmark = pytest.mark.cuda


@pytest.fixture
def shapes(pick):
    """(N, in, out) cases: sizes that do not divide the tiles (16 under the simulator, 64/128 on a GPU)."""
    return pick([(3, 5, 4), (19, 7, 21)], [(3, 5, 4), (257, 300, 129), (1024, 784, 512)])


def test_dense_forward_and_backward_match_cpu(shapes, dtype, dev, poison, close):
    rng = np.random.default_rng(0)
    for n, k_in, m_out in shapes:
        x = rng.standard_normal((n, k_in)).astype(dtype)
        w = rng.standard_normal((m_out, k_in)).astype(dtype)
        b = rng.standard_normal(m_out).astype(dtype)
        dy = rng.standard_normal((n, m_out)).astype(dtype)
        scale = max(1.0, np.sqrt(k_in) / 8)
        out = np.empty((n, m_out), dtype)
        cpu.dense_forward(x, w, b, out)
        d_out = poison((n, m_out), dtype)
        gpu.dense_forward(dev(x), dev(w), dev(b), d_out)
        close(d_out, out, scale)

        dx, dw, db = np.empty_like(x), np.empty_like(w), np.empty_like(b)
        cpu.dense_backward(x, dy, w, True, dx, dw, db)
        d_dx, d_dw, d_db = poison(x.shape, dtype), poison(w.shape, dtype), poison(b.shape, dtype)
        gpu.dense_backward(dev(x), dev(dy), dev(w), True, d_dx, d_dw, d_db)
        close(d_dx, dx, scale)
        close(d_dw, dw, max(1.0, np.sqrt(n) / 8))
        close(d_db, db, max(1.0, np.sqrt(n) / 8))


def test_dense_without_bias_and_without_dx(dtype, dev, poison, close):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3)).astype(dtype)
    w = rng.standard_normal((2, 3)).astype(dtype)
    dy = rng.standard_normal((5, 2)).astype(dtype)
    none = np.empty(0, dtype)
    d_out = poison((5, 2), dtype)
    gpu.dense_forward(dev(x), dev(w), dev(none), d_out)
    close(d_out, x @ w.T)
    d_dx = poison(x.shape, dtype)
    d_dw = poison(w.shape, dtype)
    gpu.dense_backward(dev(x), dev(dy), dev(w), False, d_dx, d_dw, dev(none))
    close(d_dw, dy.T @ x)
    assert np.isnan(d_dx.copy_to_host()).all()  # need_dx=False leaves dx untouched


def test_dense_rejects_numpy_arrays(dev):
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="device arrays"):
        gpu.dense_forward(x, dev(np.zeros((4, 3), np.float32)), dev(np.zeros(4, np.float32)),
                          dev(np.zeros((2, 4), np.float32)))
