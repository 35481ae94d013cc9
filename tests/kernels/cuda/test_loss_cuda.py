"""CUDA loss kernels (softmax cross-entropy, count_correct, MSE) against their CPU twins.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes (the staged row
kernels then use 24-element chunks, so rows span several chunks and blocks); they also run on a
real GPU (without the simulator) at realistic shapes when NKERNELS_REAL_GPU=1 (conftest.py).
"""
import numpy as np
import pytest

from nkernels.kernels.cpu import loss as cpu
from nkernels.kernels.cuda import loss as gpu

pytestmark = pytest.mark.cuda


@pytest.fixture
def shapes(pick):
    """(N, C) cases; the last has rows longer than the simulator's staging chunk (24)."""
    return pick([(3, 5), (13, 10), (4, 30)], [(3, 5), (4096, 10), (512, 1000), (8, 5000)])


def test_softmax_cross_entropy_matches_cpu(shapes, dtype, dev, poison, close):
    rng = np.random.default_rng(0)
    for n, c in shapes:
        logits = (rng.standard_normal((n, c)) * 3).astype(dtype)
        labels = rng.integers(0, c, n).astype(np.int64)
        probs = np.empty_like(logits)
        ref = cpu.softmax_cross_entropy_forward(logits, labels, probs)
        d_probs = poison((n, c), dtype)
        d_labels = dev(labels)
        got = gpu.softmax_cross_entropy_forward(dev(logits), d_labels, d_probs)
        assert isinstance(got, float)
        np.testing.assert_allclose(got, ref, rtol=1e-5 if dtype == np.float32 else 1e-12)
        close(d_probs, probs, 4.0)
        dl = np.empty_like(logits)
        cpu.softmax_cross_entropy_backward(probs, labels, dl)
        d_dl = poison((n, c), dtype)
        gpu.softmax_cross_entropy_backward(dev(probs), d_labels, d_dl)
        np.testing.assert_array_equal(d_dl.copy_to_host(), dl)  # same arithmetic, same bits


def test_count_correct_matches_cpu(shapes, dtype, dev):
    rng = np.random.default_rng(1)
    for n, c in shapes:
        logits = rng.integers(0, 3, (n, c)).astype(dtype)  # many ties: first arg-max wins
        labels = rng.integers(0, c, n).astype(np.int64)
        labels[: n // 2] = np.argmax(logits[: n // 2], axis=1)
        got = gpu.count_correct(dev(logits), dev(labels))
        assert isinstance(got, int)
        assert got == cpu.count_correct(logits, labels)


def test_mse_matches_cpu(shapes, dtype, dev, poison, close):
    rng = np.random.default_rng(2)
    for n, c in shapes:
        pred = rng.standard_normal(n * c).astype(dtype)
        target = rng.standard_normal(n * c).astype(dtype)
        ref = cpu.mse_forward(pred, target)
        got = gpu.mse_forward(dev(pred), dev(target))
        np.testing.assert_allclose(got, ref, rtol=1e-6 if dtype == np.float32 else 1e-12)
        dp = np.empty_like(pred)
        cpu.mse_backward(pred, target, dp)
        d_dp = poison(n * c, dtype)
        gpu.mse_backward(dev(pred), dev(target), d_dp)
        np.testing.assert_array_equal(d_dp.copy_to_host(), dp)
