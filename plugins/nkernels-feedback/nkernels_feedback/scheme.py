"""The ``dfa`` and ``fa`` schemes: gradient-free credit assignment through fixed random feedback."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

import nkernels as nk
from nkernels.callbacks import CallbackList
from nkernels.data import (check_features, check_fit_arguments, check_model_input, check_same_length,
                           check_validation_data)
from nkernels.errors import TrainingDivergedError
from nkernels.kernel_registry import kernel
from nkernels.layers.base import check_bool
from nkernels.losses import get_loss
from nkernels.losses import MSE, SoftmaxCrossEntropy
from nkernels.optimizers import SGD, Adam, AdamW, get_optimizer
from nkernels.threads import blas_single_threaded
from nkernels.training import default_loss, evaluate

from .chain import Block, read_chain


class FeedbackAlignment(nk.schemes.Scheme):
    """Base of the feedback-alignment schemes: the forward pass and the output layer's update are
    those of backprop, but hidden layers learn from errors sent down through fixed random matrices.

    ``optimizer`` is a name (``"adam"``, ``"sgd"``, ``"adamw"``) or an
    :class:`~nkernels.optimizers.Optimizer`; ``lr`` and the other optimizer options (``momentum``,
    ``weight_decay``, ``clip_norm``, ``max_norm`` ...) go to it. ``loss`` defaults to softmax
    cross-entropy for integer labels and MSE otherwise.

    Each run of mini-batches is one compiled call (forward, loss, feedback, update) when the
    optimizer is SGD, Adam or AdamW without ``clip_norm``/``max_norm``; otherwise, or with
    ``compiled=False``, each batch runs kernel by kernel from Python. Both give the same numbers.

    The model must be a chain of Dense layers, each followed by at most one ReLU, Sigmoid or
    Tanh (Flatten may appear anywhere); anything else is a ValueError naming the layer and its
    position. After ``fit``, ``feedback_`` maps layer indices to the fixed random matrices used,
    drawn from ``seed``.
    """

    #: the scheme's registry name, used in messages
    name = ""

    def __init__(self, optimizer: Any = "adam", lr: float | None = None, loss: Any = None, compiled: bool = True,
                 **optimizer_options: Any):
        if lr is not None:
            optimizer_options["lr"] = lr
        self.optimizer = get_optimizer(optimizer, **optimizer_options)
        self.loss = None if loss is None else get_loss(loss)
        self.compiled = check_bool(compiled, "compiled")
        self.feedback_: dict[int, np.ndarray] = {}

    def draw_feedback(self, blocks: list[Block], rng: np.random.Generator, dtype: np.dtype) -> dict[int, np.ndarray]:
        """The fixed random matrices, keyed by the index of the Dense layer they belong to."""
        raise NotImplementedError

    def _hidden_error(self, blocks, b, output_error, error_above, y, code, out):
        """Write the pre-activation error of hidden block ``b`` into ``out``."""
        raise NotImplementedError

    def fit(self, model, X, y=None, *, epochs=10, batch_size=32, seed=None, callbacks=None,
            validation_data=None):
        """Train ``model`` in place on ``X``, ``y``; returns a History (loss, accuracy, val_*, lr, time)."""
        epochs, batch_size = check_fit_arguments(epochs, batch_size)
        if model.device != "cpu":
            raise ValueError(f"{self.name} runs on the CPU; the model is on {model.device!r} (call model.to('cpu'))")
        blocks = read_chain(model, self.name)
        X = check_features(X, dtype=model.dtype)
        check_same_length(X, y)
        loss = self.loss or default_loss(y)
        targets = loss.prepare_targets(y, check_model_input(model, X), model.dtype)
        if validation_data is not None:
            validation_data = check_validation_data(validation_data, model, loss)
        n = len(X)
        batch_size = min(batch_size, n)
        feedback_seed, shuffle_seed = np.random.SeedSequence(seed).spawn(2)
        self.feedback_ = self.draw_feedback(blocks, np.random.default_rng(feedback_seed), model.dtype)
        rng = np.random.default_rng(shuffle_seed)
        X2d = X.reshape(n, -1)
        if loss.target_kind == "values":
            targets = targets.reshape(n, -1)
        fused = self.compiled and _FusedRun.supports(self.optimizer, loss)
        runner = (_FusedRun if fused else _LayerwiseRun)(self, model, blocks, loss)
        events = CallbackList(callbacks, model, self, self.optimizer)
        history = nk.History()
        events.context.history = history
        try:
            events.on_train_begin(model, {"epochs": epochs, "batch_size": batch_size, "samples": n,
                                          "scheme": self.name, "compiled": fused})
            for epoch in range(epochs):
                events.on_epoch_begin(epoch)
                started = time.perf_counter()
                logs = self._epoch(epoch, model, runner, loss, X2d, targets, rng, batch_size, events)
                if validation_data is not None:
                    scores = evaluate(model, *validation_data, loss=loss)
                    logs.update({f"val_{k}": v for k, v in scores.items()})
                logs["lr"] = self.optimizer.lr
                logs["time"] = time.perf_counter() - started
                history.append(logs)
                events.on_epoch_end(epoch, logs)
                if events.stop_training:
                    break
        except BaseException as exc:
            events.on_exception(exc)
            raise
        events.on_train_end(history)
        return history

    def _epoch(self, epoch, model, runner, loss, X2d, targets, rng, batch_size, events) -> dict[str, Any]:
        n = len(X2d)
        full, rest = divmod(n, batch_size)
        order = rng.permutation(n)
        start_params = {k: v.copy() for k, v in model.params.items()}
        runs = [(b * batch_size, 1, batch_size) for b in range(full)] if events.wants_batches \
            else [(0, full, batch_size)]
        if rest:
            runs.append((full * batch_size, 1, rest))
        total_loss, total_correct = 0.0, 0
        for batch, (start, count, size) in enumerate(runs):
            losses, correct, done = runner.run(X2d, targets, order, start, count, size)
            if done < count:
                self._diverged(epoch, model, start_params)
            total_loss += float(losses.sum()) * size
            total_correct += int(correct.sum())
            if events.wants_batches:
                events.on_batch_end(batch, {"loss": float(losses[-1]), "size": size})
        if not all(np.isfinite(v).all() for v in model.params.values()):
            self._diverged(epoch, model, start_params)
        logs = {"loss": total_loss / n}
        if loss.has_accuracy:
            logs["accuracy"] = total_correct / n
        return logs

    def _diverged(self, epoch: int, model, start_params: dict) -> None:
        model.set_params(start_params)
        raise TrainingDivergedError(
            f"{self.name} diverged in epoch {epoch + 1}: the loss or a weight became NaN or infinite. The weights "
            f"from the start of that epoch were restored; try a smaller learning rate (lr is {self.optimizer.lr:g}).")


class DFA(FeedbackAlignment):
    """Direct feedback alignment (Nøkland 2016): each hidden layer receives the output error through
    its own fixed random matrix, ``delta_l = (e @ B_l) * f'(a_l)``, with ``e`` the gradient of the
    loss with respect to the output layer's pre-activation and ``B_l`` of shape (outputs, width of
    layer l). The output layer gets its true gradient. ``feedback_[i]`` is ``B`` of the Dense at i.
    """

    name = "dfa"

    def draw_feedback(self, blocks, rng, dtype):
        n_out = blocks[-1].dense.out_features
        return {b.index: _uniform(rng, (n_out, b.dense.out_features), dtype) for b in blocks[:-1]}

    def _hidden_error(self, blocks, b, output_error, error_above, y, code, out):
        from .kernels import project_error

        project_error(output_error, self.feedback_[blocks[b].index], y, code, out)


class FA(FeedbackAlignment):
    """Feedback alignment (Lillicrap et al. 2016): the error goes down layer by layer as in backprop,
    ``delta_l = (delta_{l+1} @ B_{l+1}) * f'(a_l)``, but through a fixed random matrix ``B_{l+1}``
    shaped like the weight ``W_{l+1}`` it stands in for. ``feedback_[i]`` replaces the weight of the
    Dense at index i in the backward pass.
    """

    name = "fa"

    def draw_feedback(self, blocks, rng, dtype):
        return {b.index: _uniform(rng, b.dense.params["weight"].shape, dtype) for b in blocks[1:]}

    def _hidden_error(self, blocks, b, output_error, error_above, y, code, out):
        from .kernels import project_error

        project_error(error_above, self.feedback_[blocks[b + 1].index], y, code, out)


def _uniform(rng: np.random.Generator, shape: tuple[int, int], dtype) -> np.ndarray:
    """U(-1/sqrt(cols), 1/sqrt(cols)): the scale of a Dense weight reading ``cols`` inputs."""
    bound = 1.0 / np.sqrt(shape[1])
    return np.ascontiguousarray(rng.uniform(-bound, bound, shape), dtype=dtype)


class _LayerwiseRun:
    """Mini-batches kernel by kernel: the forward pass through nkernels' kernels, the loss, every
    Dense layer's weight gradient from its feedback error (into the layers' ``grads``), then the
    optimizer's ``step``. The reference path, and the one for optimizers the fused run lacks."""

    def __init__(self, scheme: FeedbackAlignment, model, blocks: list[Block], loss):
        from .kernels import IDENTITY, RELU, SIGMOID, TANH

        self.scheme, self.model, self.blocks, self.loss, self.dtype = scheme, model, blocks, loss, model.dtype
        codes = {None: IDENTITY, "relu": RELU, "sigmoid": SIGMOID, "tanh": TANH}
        self.codes = [codes[b.activation] for b in blocks]
        self.dense_forward, self.dense_backward = kernel("dense_forward"), kernel("dense_backward")
        self.act_forward = [kernel(b.activation + "_forward") if b.activation else None for b in blocks]
        self.act_backward = [kernel(b.activation + "_backward") if b.activation else None for b in blocks]
        self.count = kernel("count_correct")
        self.no_bias = np.empty(0, self.dtype)
        self.no_dx = np.empty((0, 0), self.dtype)
        self.params, self.grads = model.params, model.grads
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
                value, correct[b] = self.step(X2d[index], targets[index])
                if not np.isfinite(value):
                    return losses[:b], correct[:b], b
                losses[b] = value
                self.scheme.optimizer.step(self.params, self.grads)
        return losses, correct, n_batches

    def step(self, xb: np.ndarray, yb: np.ndarray) -> tuple[float, int]:
        """Fill the gradients for one batch; returns its mean loss and number of correct rows."""
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
                self.scheme._hidden_error(blocks, i, delta[top], delta[i + 1], y, self.codes[i], delta[i])
            layer = blocks[i].dense
            self.dense_backward(inputs[i], delta[i], layer.params["weight"], False, self.no_dx,
                                layer.grads["weight"], layer.grads.get("bias", self.no_bias))
        return value, correct


class _FusedRun:
    """Whole runs of mini-batches in one call of :func:`~nkernels_feedback.kernels.feedback_epoch`,
    with every buffer allocated once per batch size. Same numbers as :class:`_LayerwiseRun`."""

    @staticmethod
    def supports(optimizer, loss) -> bool:
        """Whether the fused run implements this update (SGD, Adam or AdamW without clip_norm or max_norm)
        and this loss (softmax cross-entropy or MSE)."""
        return type(optimizer) in (SGD, Adam, AdamW) and optimizer.clip_norm is None \
            and optimizer.max_norm is None and type(loss) in (SoftmaxCrossEntropy, MSE)

    def __init__(self, scheme: FeedbackAlignment, model, blocks: list[Block], loss):
        from numba.typed import List

        from .kernels import CROSS_ENTROPY, IDENTITY, RELU, SIGMOID, TANH
        from .kernels import MSE as MSE_CODE

        self.scheme, self.model, self.blocks, self.loss, self.dtype = scheme, model, blocks, loss, model.dtype
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
        optimizer = self.scheme.optimizer
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
        """Same contract as :meth:`_LayerwiseRun.run`."""
        from .kernels import ADAM, SGD as SGD_CODE, feedback_epoch

        optimizer = self.scheme.optimizer
        n_outputs = self.blocks[-1].dense.out_features
        xb, yb_labels, yb_values, pre, post, delta, probs, dout = self.buffers(size, n_outputs)
        params, grads, state_a, state_b = self._optimizer_arrays()
        if isinstance(optimizer, Adam):
            code, flag = ADAM, optimizer.decoupled
        else:
            code, flag = SGD_CODE, optimizer.nesterov
        labels = targets if self.loss_kind == 0 else np.empty(0, np.int64)
        values = targets if self.loss_kind else np.empty((0, 0), self.dtype)
        losses, correct = np.zeros(n_batches), np.zeros(n_batches, np.int64)
        with blas_single_threaded():
            done = feedback_epoch(X2d, labels, values, order, start, n_batches, self.loss_kind, xb, yb_labels,
                                  yb_values, self.weights, self.biases, self.gweights, self.gbiases, params, grads,
                                  self.feedback, self.codes, isinstance(self.scheme, DFA), pre, post, delta,
                                  self.no_dx, probs, dout, code, optimizer.hyper(), flag, state_a, state_b,
                                  optimizer.steps, losses, correct)
        optimizer.steps += done
        return losses[:done], correct[:done], done
