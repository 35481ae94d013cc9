"""Loss kernels: softmax cross-entropy, mean squared error and binary cross-entropy on logits,
forward and backward."""
import numpy as np
from numba import njit
from numba.extending import overload

from .vecmath import exp


@njit(cache=True, error_model="numpy")
def softmax_cross_entropy_forward(logits, labels, probs):
    """Mean cross-entropy of ``softmax(logits)`` against integer ``labels``.

    logits (N, C); labels (N,) int64 in [0, C); probs (N, C) receives the softmax, which
    :func:`softmax_cross_entropy_backward` needs. Returns the mean loss as a float. The
    exponentials are :func:`.vecmath.exp`'s (within 2 ulp of libm's), all of them in one loop
    (a row at a time they ran 2.5x slower for the digits' 10 classes).
    """
    n, c = logits.shape
    total = 0.0
    for i in range(n):
        m = logits[i, 0]
        for j in range(1, c):
            if logits[i, j] > m:
                m = logits[i, j]
        for j in range(c):
            probs[i, j] = logits[i, j] - m
        total += m - logits[i, labels[i]]
    _exp_in_place(probs)
    for i in range(n):
        s = 0.0
        for j in range(c):
            s += probs[i, j]
        for j in range(c):
            probs[i, j] /= s
        total += np.log(s)
    return total / n


def _exp_in_place(a):
    """``a = exp(a)`` for a 2-D array (plain Python; compiled code takes the overload below)."""
    np.exp(a, out=a)


@overload(_exp_in_place)
def _ov_exp_in_place(a):
    if a.layout == "C":  # one loop over every entry: it runs a vector at a time

        def flat(a):
            entries = a.reshape(-1)
            for k in range(entries.shape[0]):
                entries[k] = exp(entries[k])

        return flat

    def rows(a):
        for i in range(a.shape[0]):
            for j in range(a.shape[1]):
                a[i, j] = exp(a[i, j])

    return rows


@njit(cache=True, error_model="numpy")
def softmax_cross_entropy_backward(probs, labels, dlogits):
    """Gradient of the mean loss: ``(probs - onehot(labels)) / N`` into ``dlogits`` (N, C)."""
    n, c = probs.shape
    scale = 1.0 / n
    for i in range(n):
        for j in range(c):
            dlogits[i, j] = probs[i, j] * scale
        dlogits[i, labels[i]] -= scale


@njit(cache=True, error_model="numpy")
def count_correct(logits, labels):
    """Number of rows whose arg-max (first on ties) equals the label."""
    n, c = logits.shape
    correct = 0
    for i in range(n):
        best = 0
        for j in range(1, c):
            if logits[i, j] > logits[i, best]:
                best = j
        if best == labels[i]:
            correct += 1
    return correct


@njit(cache=True, error_model="numpy")
def mse_forward(pred, target):
    """Mean of ``(pred - target)**2`` over every element; both 1-D of equal length."""
    total = 0.0
    for i in range(pred.shape[0]):
        d = pred[i] - target[i]
        total += d * d
    return total / pred.shape[0]


@njit(cache=True, error_model="numpy")
def mse_backward(pred, target, dpred):
    """``dpred = 2 * (pred - target) / numel``; all 1-D of equal length."""
    scale = 2.0 / pred.shape[0]
    for i in range(pred.shape[0]):
        dpred[i] = (pred[i] - target[i]) * scale


@njit(cache=True, error_model="numpy")
def softmax_cross_entropy_forward_into(logits, labels, probs, losses, index):
    """:func:`softmax_cross_entropy_forward` writing the mean loss to ``losses[index]`` (float64)
    instead of returning it: on a GPU the value then stays on the device."""
    losses[index] = softmax_cross_entropy_forward(logits, labels, probs)


@njit(cache=True, error_model="numpy")
def count_correct_into(logits, labels, counts, index):
    """:func:`count_correct` writing the count to ``counts[index]`` (int64)."""
    counts[index] = count_correct(logits, labels)


@njit(cache=True, error_model="numpy")
def mse_forward_into(pred, target, losses, index):
    """:func:`mse_forward` writing the mean to ``losses[index]`` (float64)."""
    losses[index] = mse_forward(pred, target)


@njit(cache=True, error_model="numpy")
def bce_with_logits_forward(logits, target):
    """Mean binary cross-entropy of ``sigmoid(logits)`` against ``target`` (values in [0, 1]) over
    every element; both 1-D of equal length. Computed stably as
    ``max(x, 0) - x * t + log1p(exp(-|x|))``, finite for any finite logit."""
    total = 0.0
    for i in range(logits.shape[0]):
        x = np.float64(logits[i])
        total += max(x, 0.0) - x * target[i] + np.log1p(np.exp(-abs(x)))
    return total / logits.shape[0]


@njit(cache=True, error_model="numpy")
def bce_with_logits_backward(logits, target, dlogits):
    """``dlogits = (sigmoid(logits) - target) / numel``; all 1-D of equal length."""
    scale = 1.0 / logits.shape[0]
    for i in range(logits.shape[0]):
        x = np.float64(logits[i])
        if x >= 0:
            p = 1.0 / (1.0 + np.exp(-x))
        else:
            e = np.exp(x)
            p = e / (1.0 + e)
        dlogits[i] = (p - target[i]) * scale


@njit(cache=True, error_model="numpy")
def bce_with_logits_forward_into(logits, target, losses, index):
    """:func:`bce_with_logits_forward` writing the mean to ``losses[index]`` (float64)."""
    losses[index] = bce_with_logits_forward(logits, target)


@njit(cache=True, error_model="numpy")
def count_binary_correct(logits, target):
    """Rows of ``logits`` (N, C) whose every decision ``logit > 0`` matches ``target >= 0.5``
    (exact-match accuracy: one answer per sample, as for a binary classifier's (N, 1))."""
    n, c = logits.shape
    correct = 0
    for i in range(n):
        ok = True
        for j in range(c):
            if (logits[i, j] > 0) != (target[i, j] >= 0.5):
                ok = False
                break
        if ok:
            correct += 1
    return correct


@njit(cache=True, error_model="numpy")
def count_binary_correct_into(logits, target, counts, index):
    """:func:`count_binary_correct` writing the count to ``counts[index]`` (int64)."""
    counts[index] = count_binary_correct(logits, target)
