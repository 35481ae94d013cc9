"""Numba kernels of forward-forward: the goodness of every layer, its local gradient, scoring every
label, and whole runs of mini-batches.

Every layer reads its input length-normalised (``x / (||x|| + EPS)``, row by row), so that the
goodness of the layer below (the squared length of its output) cannot carry over: a layer must
find its own features. A layer's goodness is the sum of its squared ReLU outputs. The dense
products, the ReLU, the weight gradients and the optimizer updates are nkernels' own kernels.
"""
import numpy as np
from numba import njit

from nkernels.kernels.calls import by_address
from nkernels.kernels.cpu.activation import relu_forward
from nkernels.kernels.cpu.batching import gather_labels, gather_rows
from nkernels.kernels.cpu.dense import dense_backward, dense_forward
from nkernels.kernels.cpu.optim import apply_updates

# Compiled on their own and called by address, not compiled again into every fused loop below
(dense_forward, dense_backward, apply_updates) = (
    by_address(k) for k in (dense_forward, dense_backward, apply_updates))

#: added to each row's length before dividing by it
EPS = 1e-4


@njit(cache=True, error_model="numpy")
def normalize_rows(x, out):
    """``out[i] = x[i] / (||x[i]|| + EPS)``; x and out (N, F)."""
    n, f = x.shape
    for i in range(n):
        total = 0.0
        for j in range(f):
            total += x[i, j] * x[i, j]
        scale = 1.0 / (np.sqrt(total) + EPS)
        for j in range(f):
            out[i, j] = x[i, j] * scale


@njit(cache=True, error_model="numpy")
def embed_labels(features, labels, n_classes, out, first):
    """``out[first + i] = [features[i], one_hot(labels[i])]``: the label joined to the features."""
    n, f = features.shape
    for i in range(n):
        row = first + i
        for j in range(f):
            out[row, j] = features[i, j]
        for c in range(n_classes):
            out[row, f + c] = 0.0
        out[row, f + labels[i]] = 1.0


@njit(cache=True, error_model="numpy")
def row_goodness(a, goodness_l):
    """``goodness_l[i]`` = the sum of the squares of row i of ``a``."""
    for i in range(a.shape[0]):
        total = 0.0
        for j in range(a.shape[1]):
            total += a[i, j] * a[i, j]
        goodness_l[i] = total


@njit(cache=True, error_model="numpy")
def chain_goodness(x, weights, biases, normed, acts, goodness, first):
    """The forward pass of the chain from layer ``first`` on: for each layer l, ``normed[l]`` its
    normalised input (``x`` (R, F + C) for layer 0, ``acts[l - 1]`` above), ``acts[l]`` its ReLU
    output (R, width) and ``goodness[l]`` (R,) the sum of the squares of that output."""
    for l in range(first, len(weights)):
        normalize_rows(x if l == 0 else acts[l - 1], normed[l])
        dense_forward(normed[l], weights[l], biases[l], acts[l])
        flat = acts[l].reshape(acts[l].size)
        relu_forward(flat, flat)
        row_goodness(acts[l], goodness[l])


@njit(cache=True, error_model="numpy")
def score_labels(features, n_classes, skip_first, weights, biases, feature_weight, projected, normed, acts,
                 goodness, scores):
    """``scores[i, c]``: the total goodness of sample i with label c joined, summed over the layers
    (from the second when ``skip_first`` and there are two or more).

    The layer buffers hold n * C rows, every sample with every label (row i * C + c). The first
    layer needs one product for all labels: a one-hot label adds 1 to the squared length of every
    sample and the label's column of the weight to the product, so its pre-activation is
    ``(W_features @ x_i + W[:, F + c]) / (sqrt(||x_i||^2 + 1) + EPS) + b``. ``feature_weight``
    (width, F) receives ``W[:, :F]`` and ``projected`` (n, width) the product.
    """
    n, f = features.shape
    weight, bias, act = weights[0], biases[0], acts[0]
    width = weight.shape[0]
    for u in range(width):
        for j in range(f):
            feature_weight[u, j] = weight[u, j]
    np.dot(features, feature_weight.T, projected)
    for i in range(n):
        total = 1.0
        for j in range(f):
            total += features[i, j] * features[i, j]
        scale = 1.0 / (np.sqrt(total) + EPS)
        for c in range(n_classes):
            row = i * n_classes + c
            for u in range(width):
                v = (projected[i, u] + weight[u, f + c]) * scale
                if bias.shape[0] > 0:
                    v += bias[u]
                act[row, u] = v if v > 0 else 0.0
    row_goodness(act, goodness[0])
    chain_goodness(act, weights, biases, normed, acts, goodness, 1)
    first = 1 if skip_first and len(weights) > 1 else 0
    for i in range(n):
        for c in range(n_classes):
            total = 0.0
            for l in range(first, len(weights)):
                total += goodness[l, i * n_classes + c]
            scores[i, c] = total


@njit(cache=True, error_model="numpy")
def softplus(z):
    """``log(1 + exp(z))`` without overflow."""
    return max(z, 0.0) + np.log1p(np.exp(-abs(z)))


@njit(cache=True, error_model="numpy")
def goodness_gradient(goodness_l, acts_l, n_positive, theta, dz):
    """The local loss of one layer and its gradient with respect to the pre-activation.

    Rows ``[0, n_positive)`` are positive data, the rest negative. The loss is the mean over rows
    of ``softplus(-(g - theta))`` for positive rows and ``softplus(g - theta)`` for negative ones,
    with g the row's goodness; returns it, and writes ``dz = dloss/dg * 2 * a`` (the ReLU's
    derivative is in ``a``, zero where the unit is off)."""
    rows, width = acts_l.shape
    t = dz.dtype.type
    total = 0.0
    for i in range(rows):
        margin = goodness_l[i] - theta
        # the slope of softplus(-m) is -sigmoid(-m) = -exp(-softplus(m)), that of softplus(m) is
        # exp(-softplus(-m)), and softplus(m) = softplus(-m) + m: one softplus per row, exp of <= 0 only
        if i < n_positive:
            loss = softplus(-margin)
            slope = -np.exp(-(loss + margin))
        else:
            loss = softplus(margin)
            slope = np.exp(-(loss - margin))
        total += loss
        scale = t(2.0 * slope / rows)
        for j in range(width):
            dz[i, j] = scale * acts_l[i, j]
    return total / rows


@njit(cache=True, error_model="numpy")
def pick_negatives(scores, labels, negatives):
    """The hardest wrong label of each row (the highest score but the true one's) into ``negatives``;
    returns how many rows the scores already classify right."""
    correct = 0
    for i in range(scores.shape[0]):
        best, best_c, hard, hard_c = -np.inf, 0, -np.inf, 0
        for c in range(scores.shape[1]):
            s = scores[i, c]
            if s > best:
                best, best_c = s, c
            if c != labels[i] and s > hard:
                hard, hard_c = s, c
        if best_c == labels[i]:
            correct += 1
        negatives[i] = hard_c
    return correct


@njit(cache=True, error_model="numpy")
def ff_batches(X, labels, order, start, n_batches, offsets, n_classes, hardest, skip_first, theta,
               weights, biases, gweights, gbiases, batch_x, batch_y, negatives, x, normed, acts, dz, goodness,
               feature_weight, projected, score_normed, score_acts, score_goodness, scores, no_dx,
               update, params, grads, optimizer, hyper, flag, state_a, state_b, step0, losses, correct):
    """``n_batches`` consecutive mini-batches of forward-forward, each ending with the optimizer update.

    Batch b holds rows ``order[start + b * B: start + (b + 1) * B]`` of ``X`` (N, F), B =
    ``len(batch_y)``. Per batch: the positive data (each sample with its label) and the negative
    data (with a wrong label: the hardest one by :func:`score_labels` when ``hardest``, else
    ``(label + offsets[b * B + i]) % n_classes``, offsets drawn in [1, n_classes)), stacked into
    ``x`` (2B, F + C); the forward pass (:func:`chain_goodness`); every layer's local loss and
    gradient (:func:`goodness_gradient`, then nkernels' ``dense_backward`` into ``gweights[l]``,
    ``gbiases[l]``: no gradient crosses from a layer to the one below); when ``update``, the
    update of every parameter by nkernels' ``apply_updates`` (``optimizer``, ``hyper``, ``flag``
    from ``Optimizer.fused_form()``) at step ``step0 + b + 1``.

    Buffers: ``batch_x`` (B, F), ``batch_y``/``negatives`` (B,); ``normed``/``acts``/``dz`` one
    per layer of 2B rows, ``goodness`` (layers, 2B); the ``score_`` buffers the same for B * C
    rows, ``feature_weight`` (width 0, F), ``projected`` (B, width 0) and ``scores`` (B, C)
    (see :func:`score_labels`; unused unless ``hardest``). ``params``/``grads``/``state_a``/
    ``state_b`` are flat views in the order weight 0, bias 0, weight 1, ...

    Writes each batch's loss (the sum over layers of their mean local loss) to ``losses[b]`` and,
    when ``hardest``, the number of its rows the goodness already classified right to
    ``correct[b]``; returns the number of batches done (fewer when a loss stops being finite,
    before that batch's update).
    """
    size = batch_y.shape[0]
    for b in range(n_batches):
        first = start + b * size
        gather_rows(X, order, first, batch_x)
        gather_labels(labels, order, first, batch_y)
        if hardest:
            score_labels(batch_x, n_classes, skip_first, weights, biases, feature_weight, projected, score_normed,
                         score_acts, score_goodness, scores)
            correct[b] = pick_negatives(scores, batch_y, negatives)
        else:
            for i in range(size):
                negatives[i] = (batch_y[i] + offsets[b * size + i]) % n_classes
            correct[b] = 0
        embed_labels(batch_x, batch_y, n_classes, x, 0)
        embed_labels(batch_x, negatives, n_classes, x, size)
        chain_goodness(x, weights, biases, normed, acts, goodness, 0)
        loss = 0.0
        for l in range(len(weights)):
            loss += goodness_gradient(goodness[l], acts[l], size, theta, dz[l])
            dense_backward(normed[l], dz[l], weights[l], False, no_dx, gweights[l], gbiases[l])
        if not np.isfinite(loss):
            return b
        losses[b] = loss
        if update:
            apply_updates(optimizer, params, grads, state_a, state_b, hyper, flag, step0 + b + 1)
    return n_batches
