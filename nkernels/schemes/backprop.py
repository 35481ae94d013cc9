"""The built-in ``backprop`` scheme: mini-batch gradient descent through the whole chain."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..callbacks import CallbackList
from ..data import check_features, check_fit_arguments, check_model_input, check_same_length
from ..errors import TrainingDivergedError
from ..losses import get_loss
from ..optimizers import get_optimizer
from ..history import History
from ..training import LayerwiseTrainer, default_loss, evaluate, make_trainer
from .base import Scheme


class Backprop(Scheme):
    """Back-propagation with SGD (momentum, Nesterov), Adam or AdamW.

    ``optimizer`` is a name or an :class:`~nkernels.optimizers.Optimizer`; ``lr`` and the other
    optimizer options (``momentum``, ``nesterov``, ``weight_decay``, ``betas``, ``eps``) go to it.
    ``loss`` defaults to softmax cross-entropy for integer labels and MSE otherwise.
    ``compiled=False`` forces the layer-by-layer path (the numbers are the same).
    """

    def __init__(self, optimizer: Any = "adam", lr: float | None = None, loss: Any = None,
                 compiled: bool = True, **optimizer_options: Any):
        if lr is not None:
            optimizer_options["lr"] = lr
        self.optimizer = get_optimizer(optimizer, **optimizer_options)
        self.loss = None if loss is None else get_loss(loss)
        self.compiled = bool(compiled)

    def fit(self, model, X, y=None, *, epochs=10, batch_size=32, seed=None, callbacks=None,
            validation_data=None):
        epochs, batch_size = check_fit_arguments(epochs, batch_size)
        X = check_features(X, dtype=model.dtype)
        check_same_length(X, y)
        loss = self.loss or default_loss(y)
        targets = loss.prepare_targets(y, check_model_input(model, X), model.dtype)
        if validation_data is not None:
            validation_data = _check_validation(validation_data)
        n = len(X)
        batch_size = min(batch_size, n)
        sample_shape = X.shape[1:]
        trainer = make_trainer(model, loss, self.optimizer, sample_shape, batch_size, self.compiled)
        X2d = X.reshape(n, -1)
        if loss.target_kind == "values":
            targets = targets.reshape(n, -1)
        rng = np.random.default_rng(seed)
        events = CallbackList(callbacks, model, self)
        events.on_train_begin(model, {"epochs": epochs, "batch_size": batch_size, "samples": n,
                                      "scheme": "backprop",
                                      "compiled": not isinstance(trainer, LayerwiseTrainer)})
        history = History()
        full, rest = divmod(n, batch_size)
        for epoch in range(epochs):
            started = time.perf_counter()
            order = rng.permutation(n)
            snapshot = {k: v.copy() for k, v in model.params.items()}
            runs = [(b * batch_size, 1, batch_size) for b in range(full)] if events.wants_batches \
                else [(0, full, batch_size)]
            if rest:
                runs.append((full * batch_size, 1, rest))
            total_loss, total_correct = 0.0, 0
            for batch, (start, count, size) in enumerate(runs):
                losses, correct, done = trainer.run(X2d, targets, order, start, count, size)
                if done < count or not _params_finite(model):
                    model.set_params(snapshot)
                    raise TrainingDivergedError(
                        f"training diverged in epoch {epoch + 1}: the loss or a weight became NaN or "
                        f"infinite. The weights from the start of that epoch were restored; try a smaller "
                        f"learning rate (lr is {self.optimizer.lr:g}).")
                total_loss += float(losses.sum()) * size
                total_correct += int(correct.sum())
                if events.wants_batches:
                    events.on_batch_end(batch, {"loss": float(losses[-1]), "size": size})
            logs = {"loss": total_loss / n}
            if loss.has_accuracy:
                logs["accuracy"] = total_correct / n
            if validation_data is not None:
                scores = evaluate(model, *validation_data, loss=loss)
                logs.update({f"val_{k}": v for k, v in scores.items()})
            logs["time"] = time.perf_counter() - started
            history.append(logs)
            events.on_epoch_end(epoch, logs)
        events.on_train_end(history)
        return history


def _params_finite(model) -> bool:
    return all(np.isfinite(v).all() for v in model.params.values())


def _check_validation(validation_data: Any) -> tuple[Any, Any]:
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError("validation_data must be a pair (X_val, y_val)")
    return tuple(validation_data)
