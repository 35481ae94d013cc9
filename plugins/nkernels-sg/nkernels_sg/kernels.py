"""Numba kernels of synthetic gradients: one mini-batch step, and whole runs of them with the updates fused in.

The blocks' forward and backward passes, the loss and the optimizer updates reuse nkernels' own
kernels; what is new here is the gradient predictors' forward pass, their regression onto the
gradients that arrive from above, and the order in which the two meet.

Scale: a predictor predicts the gradient of one sample's loss with respect to its block's output
(``N`` times the gradient of the batch's mean loss), so that what it learns does not depend on the
batch size; its block uses the prediction divided by ``N``, as it would the true gradient.
"""
import numpy as np
from numba import njit

from nkernels.kernels.calls import by_address
from nkernels.kernels.cpu.activation import IDENTITY, RELU, SIGMOID, TANH  # noqa: F401 (the blocks' codes)
from nkernels.kernels.cpu.activation import activation_backward_by_code as activation_backward
from nkernels.kernels.cpu.activation import activation_forward_by_code as activate
from nkernels.kernels.cpu.activation import relu_backward, relu_forward
from nkernels.kernels.cpu.batching import gather_labels, gather_rows
from nkernels.kernels.cpu.dense import dense_backward, dense_forward
from nkernels.kernels.cpu.loss import count_correct, softmax_cross_entropy_backward, softmax_cross_entropy_forward
from nkernels.kernels.cpu.optim import apply_updates

# Compiled on their own and called by address, not compiled again into every fused loop below
(dense_forward, dense_backward, apply_updates, activate, activation_backward) = (
    by_address(k) for k in (dense_forward, dense_backward, apply_updates, activate, activation_backward))

@njit(cache=True, error_model="numpy")
def conditioned_input(h, labels, out):
    """``out = [h, onehot(labels)]``: a block's output (N, W) and the one-hot label, side by side in (N, W + C)."""
    n, w = h.shape
    for i in range(n):
        for j in range(w):
            out[i, j] = h[i, j]
        for j in range(w, out.shape[1]):
            out[i, j] = 0.0
        out[i, w + labels[i]] = 1.0


@njit(cache=True, error_model="numpy")
def regression_error(prediction, truth, scale):
    """The predictor's loss, ``mean((prediction - scale * truth)**2)``, returned; ``prediction`` is
    overwritten with its gradient, ``2 (prediction - scale * truth) / prediction.size``."""
    n, w = prediction.shape
    factor = 2.0 / (n * w)
    total = 0.0
    for i in range(n):
        for j in range(w):
            e = prediction[i, j] - scale * truth[i, j]
            total += e * e
            prediction[i, j] = factor * e
    return total / (n * w)


@njit(cache=True, error_model="numpy")
def block_output(l, xb, codes, pre, post):
    """What block ``l`` hands on (its activation's output, or its Dense output without one); ``xb`` for l = -1."""
    if l < 0:
        return xb
    return pre[l] if codes[l] == IDENTITY else post[l]


@njit(cache=True, error_model="numpy")
def sg_step(xb, yb, weights, biases, gweights, gbiases, codes, pweights, pbiases, gpweights, gpbiases, conditioned,
            pin, phidden, dphidden, pre, post, delta, synth, truth, probs, dout, no_dx):
    """The gradients of one mini-batch of synthetic-gradient training, written into ``gweights``/``gbiases``
    (blocks) and ``gpweights``/``gpbiases`` (predictors); returns (loss, correct rows, predictors' loss).

    Forward: every block (nkernels' dense and activation kernels), then softmax cross-entropy on
    the labels ``yb``. Backward, from the top: the output block gets the loss's true gradient and
    sends the gradient for its input down as the true gradient of the last hidden block. Each
    hidden block ``l`` takes its predictor's output ``synth[l] = P_l([h_l, onehot(y)])`` (just
    ``h_l`` unless ``conditioned``) as the gradient of its output, computes its weight gradients
    from it and sends the gradient for its input down as the true gradient ``truth[l - 1]`` of
    the block below; predictor ``l`` regresses (mean squared error) onto ``truth[l]``. Every
    gradient uses the weights of before the step, so the updates that follow may all run at once.

    Lists: blocks l = 0..L-1 (``weights``/``gweights`` (out, in), ``biases``/``gbiases`` (out,) or
    0-length, ``pre``/``post``/``delta`` (N, out)); hidden blocks l = 0..L-2 (``pin`` (N, W + C)
    when conditioned (else unused), ``synth``/``truth`` (N, W), and for predictors with a hidden
    ReLU layer of width H its output ``phidden[l]`` and gradient ``dphidden[l]`` (N, H), else
    unused). The predictors' layers ``pweights``/``gpweights``, ``pbiases``/``gpbiases``: one per
    hidden block (W, I) and (W,), I = W + C when conditioned else W; or, when ``phidden[0]`` has
    columns, two per hidden block, its hidden layer (H, I), (H,) then its output layer (W, H), (W,).
    ``probs`` and ``dout`` (N, C). A loss that is not finite returns at once, before any gradient.
    """
    n = xb.shape[0]
    top = len(weights) - 1
    h = xb
    for l in range(top + 1):
        dense_forward(h, weights[l], biases[l], pre[l])
        if codes[l] != IDENTITY:
            activate(codes[l], pre[l], post[l])
        h = block_output(l, xb, codes, pre, post)
    loss = softmax_cross_entropy_forward(h, yb, probs)
    if not np.isfinite(loss):
        return loss, 0, 0.0
    correct = count_correct(h, yb)
    softmax_cross_entropy_backward(probs, yb, dout)
    activation_backward(codes[top], h, dout, delta[top])
    dense_backward(block_output(top - 1, xb, codes, pre, post), delta[top], weights[top], True, truth[top - 1],
                   gweights[top], gbiases[top])
    predictor_loss = 0.0
    for l in range(top - 1, -1, -1):
        h = block_output(l, xb, codes, pre, post)
        inputs = h
        if conditioned:
            conditioned_input(h, yb, pin[l])
            inputs = pin[l]
        depth = 2 if phidden[l].shape[1] > 0 else 1
        last = depth * l + depth - 1  # the predictor's output layer
        if depth == 2:
            hidden = phidden[l]
            dense_forward(inputs, pweights[last - 1], pbiases[last - 1], hidden)
            relu_forward(hidden.reshape(hidden.size), hidden.reshape(hidden.size))
            dense_forward(hidden, pweights[last], pbiases[last], synth[l])
        else:
            dense_forward(inputs, pweights[last], pbiases[last], synth[l])
        # the block's gradient: the prediction at the scale of the batch's mean loss
        step, prediction = delta[l], synth[l]
        for i in range(n):
            for j in range(step.shape[1]):
                step[i, j] = prediction[i, j] / n
        activation_backward(codes[l], h, step, step)
        dense_backward(block_output(l - 1, xb, codes, pre, post), step, weights[l], l > 0,
                       truth[l - 1] if l > 0 else no_dx, gweights[l], gbiases[l])
        # the predictor learns from the gradient that arrived from above (per sample: N times the batch's)
        predictor_loss += regression_error(synth[l], truth[l], n)
        if depth == 2:
            hidden, dhidden = phidden[l], dphidden[l]
            dense_backward(hidden, synth[l], pweights[last], True, dhidden, gpweights[last], gpbiases[last])
            relu_backward(hidden.reshape(hidden.size), dhidden.reshape(dhidden.size), dhidden.reshape(dhidden.size))
            dense_backward(inputs, dhidden, pweights[last - 1], False, no_dx, gpweights[last - 1], gpbiases[last - 1])
        else:
            dense_backward(inputs, synth[l], pweights[last], False, no_dx, gpweights[last], gpbiases[last])
    return loss, correct, predictor_loss / top


@njit(cache=True, error_model="numpy")
def sg_epoch(X, labels, order, start, n_batches, xb, yb, weights, biases, gweights, gbiases, codes, pweights,
             pbiases, gpweights, gpbiases, conditioned, pin, phidden, dphidden, pre, post, delta, synth, truth, probs,
             dout, no_dx,
             block_update, predictor_update, losses, correct, predictor_losses):
    """``n_batches`` consecutive mini-batches of :func:`sg_step`, each followed by the updates of the
    blocks and of the predictors (nkernels' ``apply_updates``).

    Batch ``b`` holds rows ``order[start + b * B: start + (b + 1) * B]`` of ``X`` with B =
    ``len(xb)``. ``block_update`` and ``predictor_update`` are each ``(code, hyper, flag, params,
    grads, state_a, state_b, step0)``: ``Optimizer.fused_form()``, flat views of the parameters,
    gradients and optimizer states in the order of the gradient lists (weight, bias per block),
    and the optimizer's steps so far; batch ``b`` updates at step ``step0 + b + 1``. A ``code``
    of -1 skips that update (the caller steps the optimizer; then ``n_batches`` is 1).

    Writes each batch's loss, correct rows and predictors' loss to ``losses[b]``, ``correct[b]``
    and ``predictor_losses[b]``; returns the number of batches done (fewer when a loss stops
    being finite, before that batch's update).
    """
    size = xb.shape[0]
    for b in range(n_batches):
        first = start + b * size
        gather_rows(X, order, first, xb)
        gather_labels(labels, order, first, yb)
        loss, right, predictor_loss = sg_step(xb, yb, weights, biases, gweights, gbiases, codes, pweights, pbiases,
                                              gpweights, gpbiases, conditioned, pin, phidden, dphidden, pre, post,
                                              delta, synth, truth, probs, dout, no_dx)
        if not np.isfinite(loss):
            return b
        losses[b], correct[b], predictor_losses[b] = loss, right, predictor_loss
        for code, hyper, flag, params, grads, state_a, state_b, step0 in (block_update, predictor_update):
            if code >= 0:
                apply_updates(code, params, grads, state_a, state_b, hyper, flag, step0 + b + 1)
    return n_batches
