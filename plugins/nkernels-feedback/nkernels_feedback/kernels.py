"""Numba kernels of feedback alignment: the error projection, and a whole run of mini-batches.

The forward passes, the loss, the weight gradients and the optimizer updates reuse nkernels' own
kernels; only the step that replaces back-propagation through the transposed weights is new here.
"""
import numpy as np
from numba import njit

from nkernels.kernels.calls import by_address
from nkernels.kernels.cpu.activation import IDENTITY, RELU, SIGMOID, TANH  # noqa: F401 (project_error's codes)
from nkernels.kernels.cpu.activation import activation_backward_by_code as _activation_backward
from nkernels.kernels.cpu.activation import activation_forward_by_code as _activate
from nkernels.kernels.cpu.batching import gather_labels, gather_rows
from nkernels.kernels.cpu.dense import dense_backward, dense_forward
from nkernels.kernels.cpu.loss import (
    count_correct, mse_backward, mse_forward, softmax_cross_entropy_backward, softmax_cross_entropy_forward)
from nkernels.kernels.cpu.optim import apply_updates

# Compiled on their own and called by address, not compiled again into every fused loop below
(dense_forward, dense_backward, apply_updates, _activate, _activation_backward) = (
    by_address(k) for k in (dense_forward, dense_backward, apply_updates, _activate, _activation_backward))

@njit(cache=True, error_model="numpy")
def project_error(error, feedback, y, activation, out):
    """``out = (error @ feedback) * f'(y)``: a fixed random projection of an error signal, then the
    derivative of the layer's activation, read from the activation's output ``y``.

    error (N, K); feedback (K, M), fixed and random; y (N, M), the output of the activation
    (ignored for IDENTITY); activation one of IDENTITY, RELU, SIGMOID, TANH; out (N, M).
    For direct feedback alignment ``error`` is the output error and ``feedback`` is (classes, M);
    for feedback alignment ``error`` is the layer above's pre-activation error and ``feedback``
    stands in for that layer's weight (out, in).
    """
    np.dot(error, feedback, out)
    n, m = out.shape
    if activation == RELU:
        for i in range(n):
            for j in range(m):
                if y[i, j] <= 0:
                    out[i, j] = 0.0
    elif activation == SIGMOID:
        for i in range(n):
            for j in range(m):
                out[i, j] *= y[i, j] * (1.0 - y[i, j])
    elif activation == TANH:
        for i in range(n):
            for j in range(m):
                out[i, j] *= 1.0 - y[i, j] * y[i, j]


#: loss codes
CROSS_ENTROPY, MSE = 0, 1


@njit(cache=True, error_model="numpy")
def feedback_epoch(X, labels, targets, order, start, n_batches, loss_kind, xb, yb_labels, yb_values,
                   weights, biases, gweights, gbiases, params_flat, grads_flat, feedback, codes, direct,
                   pre, post, delta, no_dx, probs, dout, optimizer, hyper, flag, state_a, state_b, step0,
                   losses, correct):
    """``n_batches`` consecutive mini-batches of feedback alignment, each ending with the optimizer update.

    Batch ``b`` holds rows ``order[start + b * B: start + (b + 1) * B]`` of ``X`` with B = ``len(xb)``.
    Per batch: gather, the forward pass (nkernels' dense and activation kernels), the loss
    (``loss_kind`` CROSS_ENTROPY on ``labels`` or MSE on ``targets``), the error of every Dense
    layer (the output layer's true error; hidden layers through :func:`project_error`, from the
    output error when ``direct`` (dfa) or from the layer above (fa)), the weight gradients
    (``dense_backward`` without dx), then the update of every parameter by nkernels'
    ``apply_updates`` (``optimizer``, ``hyper`` and ``flag`` from ``Optimizer.fused_form()``), at
    step ``step0 + b + 1``.

    Lists hold one entry per Dense layer l: ``weights``/``gweights`` (out, in), ``biases``/
    ``gbiases`` (out,) or 0-length, ``pre``/``post``/``delta`` (B, out), ``feedback[l]`` (dfa:
    (outputs, out_l) for hidden l; fa: the stand-in for ``weights[l]``, l >= 1; unused slots any
    2-D array). ``params_flat``/``grads_flat``/``state_a``/``state_b`` are flat views in the order
    weight 0, bias 0, weight 1, ... (``state_b`` unused by SGD). Writes each batch's mean loss to
    ``losses[b]`` and its correct rows to ``correct[b]``; returns the number of batches done (fewer
    when a loss stops being finite, before that batch's update).
    """
    n_layers = len(weights)
    top = n_layers - 1
    size = xb.shape[0]
    for b in range(n_batches):
        first = start + b * size
        gather_rows(X, order, first, xb)
        if loss_kind == CROSS_ENTROPY:
            gather_labels(labels, order, first, yb_labels)
        else:
            gather_rows(targets, order, first, yb_values)
        h = xb
        for l in range(n_layers):
            dense_forward(h, weights[l], biases[l], pre[l])
            if codes[l] == IDENTITY:
                h = pre[l]
            else:
                _activate(codes[l], pre[l], post[l])
                h = post[l]
        if loss_kind == CROSS_ENTROPY:
            loss = softmax_cross_entropy_forward(h, yb_labels, probs)
            correct[b] = count_correct(h, yb_labels)
            softmax_cross_entropy_backward(probs, yb_labels, dout)
        else:
            loss = mse_forward(h.reshape(h.size), yb_values.reshape(yb_values.size))
            correct[b] = 0
            mse_backward(h.reshape(h.size), yb_values.reshape(yb_values.size), dout.reshape(dout.size))
        if not np.isfinite(loss):
            return b
        losses[b] = loss
        _activation_backward(codes[top], post[top], dout, delta[top])
        for l in range(top, -1, -1):
            if l < top:
                y = pre[l] if codes[l] == IDENTITY else post[l]
                if direct:
                    project_error(delta[top], feedback[l], y, codes[l], delta[l])
                else:
                    project_error(delta[l + 1], feedback[l + 1], y, codes[l], delta[l])
            x = xb if l == 0 else (pre[l - 1] if codes[l - 1] == IDENTITY else post[l - 1])
            dense_backward(x, delta[l], weights[l], False, no_dx, gweights[l], gbiases[l])
        apply_updates(optimizer, params_flat, grads_flat, state_a, state_b, hyper, flag, step0 + b + 1)
    return n_batches
