"""The ``dfa`` and ``fa`` schemes: credit assignment through fixed random feedback instead of transposed weights."""
from __future__ import annotations

from typing import Any

import numpy as np

import nkernels as nk
from nkernels.callbacks import CallbackList
from nkernels.validation import (
    check_bool, check_features, check_fit_arguments, check_model_input, check_same_length, check_validation_data)
from nkernels.errors import TrainingDivergedError
from nkernels.losses import get_loss
from nkernels.optimizers import get_optimizer
from nkernels.trainers import run_epoch_batches
from nkernels.training import default_loss, evaluate

from .chain import Block, read_chain
from .runs import FusedRun, LayerwiseRun


class FeedbackAlignment(nk.schemes.Scheme):
    """Base of the feedback-alignment schemes: the forward pass and the output layer's update are
    those of backprop, but hidden layers learn from errors sent down through fixed random matrices.

    ``optimizer`` is a name (``"adam"``, ``"sgd"``, ``"adamw"``) or an
    :class:`~nkernels.optimizers.Optimizer`; ``lr`` and the other optimizer options (``momentum``,
    ``weight_decay``, ``clip_norm``, ``max_norm`` ...) go to it. Each ``fit`` trains with a fresh
    copy of it (:meth:`~nkernels.optimizers.Optimizer.fresh`), so a scheme object used again
    trains a new model exactly as a new one would. ``loss`` defaults to softmax
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
    #: True when hidden layers get the output error directly (dfa), False when it goes down layer by layer (fa)
    direct = True

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
        optimizer = self.optimizer.fresh()
        fused = self.compiled and FusedRun.supports(optimizer, loss)
        runner = (FusedRun if fused else LayerwiseRun)(self, model, blocks, loss, optimizer)
        events = CallbackList(callbacks, model, self, optimizer)
        history = nk.History()
        events.context.history = history

        def run_epoch(epoch: int) -> dict[str, Any]:
            logs = self._epoch(epoch, model, runner, loss, X2d, targets, rng, batch_size, events)
            if validation_data is not None:
                scores = evaluate(model, *validation_data, loss=loss)
                logs.update({f"val_{k}": v for k, v in scores.items()})
            logs["lr"] = optimizer.lr
            return logs

        events.run_epochs(model, {"epochs": epochs, "batch_size": batch_size, "samples": n, "scheme": self.name,
                                  "compiled": fused}, epochs, run_epoch)
        events.on_train_end(history)
        return history

    def _epoch(self, epoch, model, runner, loss, X2d, targets, rng, batch_size, events) -> dict[str, Any]:
        order = rng.permutation(len(X2d))
        start_params = {k: v.copy() for k, v in model.params.items()}

        def check(done: int, count: int) -> None:
            if done < count:
                self._diverged(epoch, model, runner.optimizer, start_params)

        logs = run_epoch_batches(runner.run, X2d, targets, order, batch_size, events, check, loss.has_accuracy)
        if not all(np.isfinite(v).all() for v in model.params.values()):
            self._diverged(epoch, model, runner.optimizer, start_params)
        return logs

    def _diverged(self, epoch: int, model, optimizer, start_params: dict) -> None:
        model.set_params(start_params)
        raise TrainingDivergedError(
            f"{self.name} diverged in epoch {epoch + 1}: the loss or a weight became NaN or infinite. The weights "
            f"from the start of that epoch were restored; try a smaller learning rate (lr is {optimizer.lr:g}).")


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


class FA(FeedbackAlignment):
    """Feedback alignment (Lillicrap et al. 2016): the error goes down layer by layer as in backprop,
    ``delta_l = (delta_{l+1} @ B_{l+1}) * f'(a_l)``, but through a fixed random matrix ``B_{l+1}``
    shaped like the weight ``W_{l+1}`` it stands in for. ``feedback_[i]`` replaces the weight of the
    Dense at index i in the backward pass.
    """

    name = "fa"
    direct = False

    def draw_feedback(self, blocks, rng, dtype):
        return {b.index: _uniform(rng, b.dense.params["weight"].shape, dtype) for b in blocks[1:]}


def _uniform(rng: np.random.Generator, shape: tuple[int, int], dtype) -> np.ndarray:
    """U(-1/sqrt(cols), 1/sqrt(cols)): the scale of a Dense weight reading ``cols`` inputs."""
    bound = 1.0 / np.sqrt(shape[1])
    return np.ascontiguousarray(rng.uniform(-bound, bound, shape), dtype=dtype)
