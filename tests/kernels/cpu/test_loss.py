"""The CPU loss kernels (nkernels.kernels.cpu.loss: softmax cross-entropy, count_correct, MSE,
binary cross-entropy on logits) against the
naive references and torch."""
import numpy as np
import pytest

import naive
from nkernels.kernels.cpu import loss

DTYPES = [np.float32, np.float64]
#: (N, C): one row, one class, odd sizes, rows longer than a vector register
SHAPES = [(1, 3), (4, 1), (5, 4), (3, 30)]


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-15)


def make(n, c, dtype, seed=0):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((n, c)) * 3).astype(dtype)
    labels = rng.integers(0, c, n).astype(np.int64)
    return logits, labels


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_cross_entropy_matches_naive(shape, dtype):
    logits, labels = make(*shape, dtype)
    probs = np.full_like(logits, np.nan)
    got = loss.softmax_cross_entropy_forward(logits, labels, probs)
    ref, ref_probs = naive.softmax_cross_entropy(logits, labels)
    np.testing.assert_allclose(got, ref, **tol(dtype))
    np.testing.assert_allclose(probs, ref_probs, **tol(dtype))
    dlogits = np.full_like(logits, np.nan)
    loss.softmax_cross_entropy_backward(probs, labels, dlogits)
    assert probs.dtype == dtype and dlogits.dtype == dtype
    np.testing.assert_allclose(dlogits, naive.softmax_cross_entropy_backward(probs, labels), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_stays_finite_at_large_logits(dtype):
    logits = np.array([[1000.0, -1000.0, 0.0], [-80.0, 80.0, 79.0]], dtype)
    labels = np.array([1, 2], np.int64)
    probs = np.empty_like(logits)
    got = loss.softmax_cross_entropy_forward(logits, labels, probs)
    ref, ref_probs = naive.softmax_cross_entropy(logits, labels)
    assert np.isfinite(got) and np.isfinite(probs).all()
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    np.testing.assert_allclose(probs, ref_probs, rtol=1e-6, atol=1e-30)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_count_correct_matches_naive_with_ties(shape, dtype):
    rng = np.random.default_rng(1)
    logits = rng.integers(0, 3, shape).astype(dtype)  # many ties: the first arg-max counts
    labels = rng.integers(0, shape[1], shape[0]).astype(np.int64)
    labels[: shape[0] // 2] = np.argmax(logits[: shape[0] // 2], axis=1)
    assert loss.count_correct(logits, labels) == naive.count_correct(logits, labels)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2, 37])
def test_mse_matches_naive(n, dtype):
    rng = np.random.default_rng(n)
    pred, target = (rng.standard_normal(n).astype(dtype) for _ in range(2))
    np.testing.assert_allclose(loss.mse_forward(pred, target), naive.mse(pred, target), **tol(dtype))
    dpred = np.full_like(pred, np.nan)
    loss.mse_backward(pred, target, dpred)
    assert dpred.dtype == dtype
    np.testing.assert_allclose(dpred, naive.mse_backward(pred, target), **tol(dtype))


def test_into_variants_write_their_slot_only():
    """The ``*_into`` kernels (a compiled loop keeps per-step values in an array) write ``out[index]`` alone."""
    logits, labels = make(5, 4, np.float64, seed=3)
    losses, counts = np.full(3, -1.0), np.full(3, -1, np.int64)
    loss.softmax_cross_entropy_forward_into(logits, labels, np.empty_like(logits), losses, 1)
    loss.count_correct_into(logits, labels, counts, 2)
    ref, _ = naive.softmax_cross_entropy(logits, labels)
    np.testing.assert_allclose(losses, [-1.0, ref, -1.0], rtol=1e-12)
    np.testing.assert_array_equal(counts, [-1, -1, naive.count_correct(logits, labels)])
    pred, target = logits.reshape(-1), logits[::-1].reshape(-1).copy()
    loss.mse_forward_into(pred, target, losses, 0)
    np.testing.assert_allclose(losses[0], naive.mse(pred, target), rtol=1e-12)


def test_losses_match_torch():
    torch = pytest.importorskip("torch")
    logits, labels = make(6, 4, np.float64, seed=2)
    probs, dlogits = np.empty_like(logits), np.empty_like(logits)
    got = loss.softmax_cross_entropy_forward(logits, labels, probs)
    loss.softmax_cross_entropy_backward(probs, labels, dlogits)
    tl = torch.tensor(logits, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(tl, torch.tensor(labels))
    ref.backward()
    np.testing.assert_allclose(got, ref.item(), rtol=1e-12)
    np.testing.assert_allclose(dlogits, tl.grad.numpy(), rtol=1e-12, atol=1e-15)

    pred, target = logits.reshape(-1), np.linspace(-1, 1, logits.size)
    dpred = np.empty_like(pred)
    got = loss.mse_forward(pred, target)
    loss.mse_backward(pred, target, dpred)
    tp = torch.tensor(pred, requires_grad=True)
    ref = torch.nn.functional.mse_loss(tp, torch.tensor(target))
    ref.backward()
    np.testing.assert_allclose(got, ref.item(), rtol=1e-12)
    np.testing.assert_allclose(dpred, tp.grad.numpy(), rtol=1e-12)


def make_binary(n, c, dtype, seed=0):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((n, c)) * 4).astype(dtype)
    target = rng.random((n, c)).astype(dtype)
    target[: n // 2] = np.round(target[: n // 2])  # hard 0/1 labels and soft targets
    return logits, target


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_bce_with_logits_matches_naive(shape, dtype):
    logits, target = make_binary(*shape, dtype)
    flat_x, flat_t = logits.reshape(-1), target.reshape(-1)
    np.testing.assert_allclose(loss.bce_with_logits_forward(flat_x, flat_t), naive.bce_with_logits(logits, target),
                               **tol(dtype))
    dx = np.full_like(flat_x, np.nan)
    loss.bce_with_logits_backward(flat_x, flat_t, dx)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, naive.bce_with_logits_backward(flat_x, flat_t), **tol(dtype))
    assert loss.count_binary_correct(logits, target) == naive.count_binary_correct(logits, target)
    losses, counts = np.full(2, -1.0), np.full(2, -1, np.int64)
    loss.bce_with_logits_forward_into(flat_x, flat_t, losses, 1)
    loss.count_binary_correct_into(logits, target, counts, 0)
    np.testing.assert_allclose(losses, [-1.0, naive.bce_with_logits(logits, target)], **tol(dtype))
    np.testing.assert_array_equal(counts, [naive.count_binary_correct(logits, target), -1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_with_logits_stays_finite_at_large_logits(dtype):
    logits = np.array([1000.0, -1000.0, 88.0, -88.0, 0.0], dtype)
    target = np.array([0.0, 1.0, 1.0, 0.0, 0.5], dtype)
    got = loss.bce_with_logits_forward(logits, target)
    np.testing.assert_allclose(got, naive.bce_with_logits(logits, target), rtol=1e-6)
    dx = np.empty_like(logits)
    loss.bce_with_logits_backward(logits, target, dx)
    np.testing.assert_allclose(dx, [0.2, -0.2, 0.0, 0.0, 0.0], atol=1e-7)


def test_bce_with_logits_matches_torch():
    torch = pytest.importorskip("torch")
    logits, target = make_binary(7, 3, np.float64, seed=5)
    x, t = logits.reshape(-1), target.reshape(-1)
    dx = np.empty_like(x)
    got = loss.bce_with_logits_forward(x, t)
    loss.bce_with_logits_backward(x, t, dx)
    tx = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(tx, torch.tensor(t))
    ref.backward()
    np.testing.assert_allclose(got, ref.item(), rtol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, atol=1e-16)
