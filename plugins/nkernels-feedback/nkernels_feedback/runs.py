"""Runs of mini-batches for the feedback schemes: kernel by kernel, or fused into one compiled call.

Both have ``run(X2d, targets, order, start, n_batches, batch_size) -> (losses, correct, done)``, the
contract of nkernels' trainers, and give the same numbers. Only the layer-by-layer run applies random
translations (``augment``), so the scheme sends augmented runs there.
"""
from __future__ import annotations

import numpy as np

from nkernels.compiled.step import AUGMENT_STRIDE
from nkernels.losses import MSE, SoftmaxCrossEntropy
from nkernels.plugins.kernels import kernel
from nkernels.runtime.threads import blas_single_threaded

from .chain import Block


class LayerwiseRun:
    """Mini-batches kernel by kernel: the forward pass through nkernels' kernels, the loss, every
    Dense layer's weight gradient from its feedback error (into the layers' ``grads``), then the
    optimizer's ``step``. The reference path, the one for optimizers the fused run lacks, and the
    one that applies random translations.

    ``optimizer`` is the run's own (the scheme's configured one, freshly copied for the fit);
    ``sample_shape`` the shape of one sample. ``augment`` is ``(max_shift, seed)`` or None: each
    batch of images (N, C, H, W) is shifted by up to ``max_shift`` pixels, with the shifts that
    nkernels' trainers draw for the same step.
    """

    def __init__(self, scheme, model, blocks: list[Block], loss, optimizer, sample_shape: tuple[int, ...],
                 augment: tuple[int, int] | None = None):
        from .kernels import IDENTITY, RELU, SIGMOID, TANH

        self.scheme, self.model, self.blocks, self.loss, self.dtype = scheme, model, blocks, loss, model.dtype
        self.optimizer, self.sample_shape, self.augment = optimizer, tuple(sample_shape), augment
        codes = {None: IDENTITY, "relu": RELU, "sigmoid": SIGMOID, "tanh": TANH}
        self.codes = [codes[b.activation] for b in blocks]
        self.dense_forward, self.dense_backward = kernel("dense_forward"), kernel("dense_backward")
        self.act_forward = [kernel(b.activation + "_forward") if b.activation else None for b in blocks]
        self.act_backward = [kernel(b.activation + "_backward") if b.activation else None for b in blocks]
        self.translate = kernel("random_translate")
        self.count = kernel("count_correct")
        self.no_bias = np.empty(0, self.dtype)
        self.no_dx = np.empty((0, 0), self.dtype)
        self.params, self.grads = model.params, model.grads
        self.feedback = [scheme.feedback_.get(b.index) for b in blocks]
        self._buffers: dict[int, tuple[list, list, list]] = {}

    def buffers(self, size: int):
        """Pre-activations, activations and errors for a batch of ``size``, allocated once per size."""
        if size not in self._buffers:
            widths = [b.dense.out_features for b in self.blocks]
            self._buffers[size] = tuple([np.empty((size, w), self.dtype) for w in widths] for _ in range(3))
        return self._buffers[size]

    def run(self, X2d, targets, order, start, n_batches, size):
        """``n_batches`` mini-batches of ``size`` rows from ``order[start:]``; returns (losses, correct, done)."""
        losses, correct = np.zeros(n_batches), np.zeros(n_batches, np.int64)
        with blas_single_threaded():
            for b in range(n_batches):
                index = order[start + b * size: start + (b + 1) * size]
                value, correct[b] = self.step(self.inputs(X2d[index]), targets[index])
                if not np.isfinite(value):
                    return losses[:b], correct[:b], b
                losses[b] = value
                self.optimizer.step(self.params, self.grads)
        return losses, correct, n_batches

    def inputs(self, rows: np.ndarray) -> np.ndarray:
        """A batch's rows as the first Dense layer reads them: randomly translated when augmenting."""
        if self.augment is None:
            return rows
        images = rows.reshape((len(rows),) + self.sample_shape)
        shifted = np.empty_like(images)
        offset = (self.optimizer.steps + 1) * AUGMENT_STRIDE
        self.translate(images, self.augment[0], self.augment[1], offset, shifted)
        return shifted.reshape(len(rows), -1)

    def step(self, xb: np.ndarray, yb: np.ndarray) -> tuple[float, int]:
        """Fill the gradients for one batch; returns its mean loss and number of correct rows."""
        from .kernels import project_error

        blocks = self.blocks
        pre, post, delta = self.buffers(len(xb))
        inputs = []
        h = xb
        for i, b in enumerate(blocks):
            inputs.append(h)
            layer = b.dense
            self.dense_forward(h, layer.params["weight"], layer.params.get("bias", self.no_bias), pre[i])
            if b.activation:
                self.act_forward[i](pre[i].reshape(-1), post[i].reshape(-1))
                h = post[i]
            else:
                h = pre[i]
        value = self.loss.forward(h, yb)
        if not np.isfinite(value):
            return value, 0
        correct = self.count(h, yb) if self.loss.has_accuracy else 0
        error = self.loss.backward()
        top = len(blocks) - 1
        if blocks[top].activation:
            self.act_backward[top](post[top].reshape(-1), error.reshape(-1), delta[top].reshape(-1))
        else:
            delta[top][...] = error
        for i in range(top, -1, -1):
            if i < top:
                y = post[i] if blocks[i].activation else pre[i]
                if self.scheme.direct:  # dfa: the output error, projected by this layer's matrix
                    project_error(delta[top], self.feedback[i], y, self.codes[i], delta[i])
                else:                   # fa: the error of the layer above, through its stand-in matrix
                    project_error(delta[i + 1], self.feedback[i + 1], y, self.codes[i], delta[i])
            layer = blocks[i].dense
            self.dense_backward(inputs[i], delta[i], layer.params["weight"], False, self.no_dx,
                                layer.grads["weight"], layer.grads.get("bias", self.no_bias))
        return value, correct


class FusedRun:
    """Whole runs of mini-batches in one call of :func:`~nkernels_feedback.kernels.feedback_epoch`,
    with every buffer allocated once per batch size. Same numbers as :class:`LayerwiseRun`, without
    random translations (``augment`` stays None)."""

    augment = None

    @staticmethod
    def supports(optimizer, loss) -> bool:
        """Whether the fused run implements this update (``Optimizer.fused_form``: SGD, Adam or AdamW
        without clip_norm or max_norm) and this loss (softmax cross-entropy or MSE)."""
        return optimizer.fused_form() is not None and type(loss) in (SoftmaxCrossEntropy, MSE)

    def __init__(self, scheme, model, blocks: list[Block], loss, optimizer):
        from numba.typed import List

        from .kernels import CROSS_ENTROPY, IDENTITY, RELU, SIGMOID, TANH
        from .kernels import MSE as MSE_CODE

        self.scheme, self.model, self.blocks, self.loss, self.dtype = scheme, model, blocks, loss, model.dtype
        self.optimizer = optimizer
        self.List = List
        codes = {None: IDENTITY, "relu": RELU, "sigmoid": SIGMOID, "tanh": TANH}
        self.codes = np.array([codes[b.activation] for b in blocks], np.int64)
        self.loss_kind = CROSS_ENTROPY if isinstance(loss, SoftmaxCrossEntropy) else MSE_CODE
        no_bias = np.empty(0, self.dtype)
        self.weights = List([b.dense.params["weight"] for b in blocks])
        self.biases = List([b.dense.params.get("bias", no_bias) for b in blocks])
        self.gweights = List([b.dense.grads["weight"] for b in blocks])
        self.gbiases = List([b.dense.grads.get("bias", no_bias) for b in blocks])
        unused = np.empty((0, 0), self.dtype)
        self.feedback = List([scheme.feedback_.get(b.index, unused) for b in blocks])
        self.no_dx = unused
        self._buffers: dict[int, tuple] = {}
        self._optimizer_lists: tuple | None = None

    def _optimizer_arrays(self):
        """The flat parameters, gradients and optimizer states, in the kernel's order (typed lists, built on
        the first run: the optimizer keeps its state arrays for the rest of the fit)."""
        if self._optimizer_lists is None:
            self._optimizer_lists = self._collect_optimizer_arrays()
        return self._optimizer_lists

    def _collect_optimizer_arrays(self):
        optimizer = self.optimizer
        flat = lambda a: a.reshape(a.size)  # noqa: E731
        params, grads, state_a, state_b = [], [], [], []
        empty = np.empty(0, self.dtype)
        for b in self.blocks:
            for name in ("weight", "bias"):
                if name not in b.dense.params:
                    continue
                key = f"{b.index}.{name}"
                param = b.dense.params[name]
                state = optimizer.state_for(key, param)
                params.append(flat(param))
                grads.append(flat(b.dense.grads[name]))
                names = optimizer.state_names
                state_a.append(state[names[0]])
                state_b.append(state[names[1]] if len(names) > 1 else empty)
        return [self.List(x) for x in (params, grads, state_a, state_b)]

    def buffers(self, size: int, n_outputs: int):
        if size not in self._buffers:
            widths = [b.dense.out_features for b in self.blocks]
            layers = tuple(self.List([np.empty((size, w), self.dtype) for w in widths]) for _ in range(3))
            xb = np.empty((size, self.blocks[0].dense.in_features), self.dtype)
            labels = np.empty(size, np.int64)
            values = np.empty((size, n_outputs) if self.loss_kind else (0, 0), self.dtype)
            self._buffers[size] = (xb, labels, values, *layers, np.empty((size, n_outputs), self.dtype),
                                   np.empty((size, n_outputs), self.dtype))
        return self._buffers[size]

    def run(self, X2d, targets, order, start, n_batches, size):
        """Same contract as :meth:`LayerwiseRun.run`."""
        from .kernels import feedback_epoch

        optimizer = self.optimizer
        n_outputs = self.blocks[-1].dense.out_features
        xb, yb_labels, yb_values, pre, post, delta, probs, dout = self.buffers(size, n_outputs)
        params, grads, state_a, state_b = self._optimizer_arrays()
        code, hyper, flag = optimizer.fused_form()
        labels = targets if self.loss_kind == 0 else np.empty(0, np.int64)
        values = targets if self.loss_kind else np.empty((0, 0), self.dtype)
        losses, correct = np.zeros(n_batches), np.zeros(n_batches, np.int64)
        with blas_single_threaded():
            done = feedback_epoch(X2d, labels, values, order, start, n_batches, self.loss_kind, xb, yb_labels,
                                  yb_values, self.weights, self.biases, self.gweights, self.gbiases, params, grads,
                                  self.feedback, self.codes, self.scheme.direct, pre, post, delta,
                                  self.no_dx, probs, dout, code, hyper, flag, state_a, state_b,
                                  optimizer.steps, losses, correct)
        optimizer.steps += done
        return losses[:done], correct[:done], done
