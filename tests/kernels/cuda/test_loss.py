"""CUDA loss kernels (softmax cross-entropy, count_correct, MSE, binary cross-entropy on logits) against their CPU twins.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes (the staged row
kernels then use 24-element chunks, so rows span several chunks and blocks); they also run on a
real GPU (without the simulator) at realistic shapes when NKERNELS_REAL_GPU=1 (conftest.py).
"""
import math

import numpy as np
import pytest

from nkernels.kernels.cpu import loss as cpu
from nkernels.kernels.cuda import loss as gpu

pytestmark = pytest.mark.cuda

#: the backward kernels agree with the CPU's bit for bit; in float32 that holds for compiled CPU code only
BITWISE_DTYPES = pytest.mark.parametrize("dtype", [
    pytest.param(np.dtype(np.float32), id="f32", marks=pytest.mark.needs_jit(
        "the CPU backward scales float32 by 1/N or 2/N, a Python float that Numba types as float64 (one rounding); as "
        "plain Python NumPy 2 multiplies in float32, one ulp away from the bits compared here")),
    pytest.param(np.dtype(np.float64), id="f64")])


@pytest.fixture
def shapes(pick):
    """(N, C) cases; the last has rows longer than the simulator's staging chunk (24)."""
    return pick([(3, 5), (13, 10), (4, 30)], [(3, 5), (4096, 10), (512, 1000), (8, 5000)])


@BITWISE_DTYPES
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


@BITWISE_DTYPES
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


def test_into_variants_match_cpu(shapes, dtype, dev):
    """The ``*_into`` launchers keep the value on the device, in ``out[index]``, and write nothing else. They
    share their first pass with the launchers above, tested at every shape: the last shape is enough here."""
    rng = np.random.default_rng(3)
    for n, c in shapes[-1:]:
        logits = (rng.standard_normal((n, c)) * 3).astype(dtype)
        labels = rng.integers(0, c, n).astype(np.int64)
        losses, counts = np.full(3, -1.0), np.full(3, -1, np.int64)
        cpu.softmax_cross_entropy_forward_into(logits, labels, np.empty_like(logits), losses, 1)
        cpu.count_correct_into(logits, labels, counts, 2)
        pred, target = logits.reshape(-1), logits[::-1].reshape(-1).copy()
        cpu.mse_forward_into(pred, target, losses, 0)
        d_losses, d_counts = dev(np.full(3, -1.0)), dev(np.full(3, -1, np.int64))
        gpu.softmax_cross_entropy_forward_into(dev(logits), dev(labels), dev(np.empty_like(logits)), d_losses, 1)
        gpu.count_correct_into(dev(logits), dev(labels), d_counts, 2)
        gpu.mse_forward_into(dev(pred), dev(target), d_losses, 0)
        np.testing.assert_allclose(d_losses.copy_to_host(), losses, rtol=1e-5 if dtype == np.float32 else 1e-12)
        np.testing.assert_array_equal(d_counts.copy_to_host(), counts)


def test_an_empty_batch_gives_nan_means_and_no_correct_rows(dtype, dev):
    """N = 0, as the compiled CPU kernels: the means are NaN (their 0 / 0), no row is correct, the gradients
    are empty; the launchers divide by nothing and launch nothing."""
    logits, labels, grads = dev(np.zeros((0, 4), dtype)), dev(np.zeros(0, np.int64)), dev(np.zeros((0, 4), dtype))
    assert math.isnan(gpu.softmax_cross_entropy_forward(logits, labels, dev(np.zeros((0, 4), dtype))))
    gpu.softmax_cross_entropy_backward(logits, labels, grads)
    assert gpu.count_correct(logits, labels) == 0
    empty = dev(np.zeros(0, dtype))
    assert math.isnan(gpu.mse_forward(empty, empty))
    gpu.mse_backward(empty, empty, dev(np.zeros(0, dtype)))


def test_bce_with_logits_matches_cpu(shapes, dtype, dev, poison):
    rng = np.random.default_rng(4)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for n, c in shapes:
        logits = (rng.standard_normal((n, c)) * 4).astype(dtype)
        target = rng.random((n, c)).astype(dtype)
        target[: n // 2] = np.round(target[: n // 2])
        x, t = logits.reshape(-1), target.reshape(-1)
        np.testing.assert_allclose(gpu.bce_with_logits_forward(dev(x), dev(t)), cpu.bce_with_logits_forward(x, t),
                                   rtol=rtol)
        dx = np.empty_like(x)
        cpu.bce_with_logits_backward(x, t, dx)
        d_dx = poison(n * c, dtype)
        gpu.bce_with_logits_backward(dev(x), dev(t), d_dx)
        np.testing.assert_allclose(d_dx.copy_to_host(), dx, rtol=rtol, atol=1e-7 if dtype == np.float32 else 1e-15)
        got = gpu.count_binary_correct(dev(logits), dev(target))
        assert isinstance(got, int) and got == cpu.count_binary_correct(logits, target)
        losses, counts = np.full(2, -1.0), np.full(2, -1, np.int64)
        cpu.bce_with_logits_forward_into(x, t, losses, 1)
        cpu.count_binary_correct_into(logits, target, counts, 0)
        d_losses, d_counts = dev(np.full(2, -1.0)), dev(np.full(2, -1, np.int64))
        gpu.bce_with_logits_forward_into(dev(x), dev(t), d_losses, 1)
        gpu.count_binary_correct_into(dev(logits), dev(target), d_counts, 0)
        np.testing.assert_allclose(d_losses.copy_to_host(), losses, rtol=rtol)
        np.testing.assert_array_equal(d_counts.copy_to_host(), counts)


def test_the_fused_softmax_cross_entropy_step_matches_the_three_cpu_kernels(shapes, dtype, dev, poison, close,
                                                                           monkeypatch):
    """Loss, gradient and correct count in one launch; more rows than one block takes go through
    partials (the threshold lowered so the simulator reaches that path too)."""
    rng = np.random.default_rng(5)
    for single in (True, False):
        monkeypatch.setattr(gpu, "FUSED_SINGLE_BLOCK_ROWS", 10**9 if single else 1)
        for n, c in shapes:
            logits = (rng.standard_normal((n, c)) * 3).astype(dtype)
            logits[0, 1] = logits[0, 0] = logits[0].max() + 1  # a tie: the first arg-max counts
            labels = rng.integers(0, c, n).astype(np.int64)
            labels[0] = 1
            probs, dl = np.empty_like(logits), np.empty_like(logits)
            ref = cpu.softmax_cross_entropy_forward(logits, labels, probs)
            cpu.softmax_cross_entropy_backward(probs, labels, dl)
            losses, counts = dev(np.full(3, np.nan)), dev(np.full(3, -1, np.int64))
            d_dl = poison((n, c), dtype)
            gpu.softmax_cross_entropy_step(dev(logits), dev(labels), d_dl, losses, counts, 1)
            np.testing.assert_allclose(losses.copy_to_host()[1], ref, rtol=1e-5 if dtype == np.float32 else 1e-12)
            assert counts.copy_to_host()[1] == cpu.count_correct(logits, labels)
            assert np.isnan(losses.copy_to_host()[[0, 2]]).all()  # only losses[index] is written
            close(d_dl, dl, 4.0)
