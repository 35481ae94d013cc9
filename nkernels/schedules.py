"""Learning-rate schedules and early stopping, as callbacks that any scheme with an optimizer honours.

``StepLR`` and ``CosineLR`` set the learning rate at the start of each epoch;
``ReduceLROnPlateau`` divides it (by 10 by default) when the monitored loss has not improved for
``patience`` epochs; ``EarlyStopping`` ends training when it stops improving and restores the
best weights. The compiled training step reads the learning rate at every call, so changing it
never recompiles anything.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .callbacks import Callback
from .validation import check_bool, check_int, check_number


def _monitored(logs: dict[str, Any], monitor: str) -> float:
    """The monitored metric, falling back from ``val_loss`` to ``loss`` when there is no validation."""
    if monitor in logs:
        return float(logs[monitor])
    if monitor.startswith("val_") and monitor[4:] in logs:
        return float(logs[monitor[4:]])
    raise ValueError(f"the monitored metric {monitor!r} is not in this epoch's logs {sorted(logs)}")


class LearningRateSchedule(Callback):
    """Base of per-epoch schedules: :meth:`rate` gives the learning rate of an epoch from the initial one.

    The initial rate is the optimizer's at the first epoch. In a run of several stages, each
    with its own optimizer, the schedule starts again with each stage, over that stage's epochs.
    """

    def __init__(self):
        self.initial_lr: float | None = None
        self.first_epoch: int | None = None
        self.epochs: int | None = None
        self.stage_epochs: int | None = None  # the current stage's length, kept in checkpoints

    def on_train_begin(self, model, params):
        # a run resumed inside a stage does not hear that stage begin again: its length comes from the checkpoint
        self.epochs = self.stage_epochs if params.get("resumed") and self.stage_epochs else params.get("epochs")

    def on_stage_begin(self, stage):
        self.initial_lr, self.first_epoch, self.epochs = None, None, stage.epochs
        self.stage_epochs = stage.epochs

    def on_epoch_begin(self, epoch):
        optimizer = self.context.optimizer
        if optimizer is None:
            raise ValueError(f"{type(self).__name__} needs a scheme with an optimizer")
        if self.initial_lr is None:
            self.initial_lr, self.first_epoch = optimizer.lr, epoch
        optimizer.lr = self.rate(epoch - (self.first_epoch or 0))

    def rate(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (from 0, counted from the start of the run or stage)."""
        raise NotImplementedError

    def state_dict(self):
        return {"initial_lr": self.initial_lr, "first_epoch": self.first_epoch, "stage_epochs": self.stage_epochs}

    def load_state(self, state, arrays):
        self.initial_lr, self.first_epoch = state["initial_lr"], state.get("first_epoch", 0)
        self.stage_epochs = state.get("stage_epochs")


class StepLR(LearningRateSchedule):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs (``torch.optim.lr_scheduler.StepLR``)."""

    def __init__(self, step_size: int, gamma: float = 0.1):
        super().__init__()
        self.step_size = check_int(step_size, "step_size")
        self.gamma = check_number(gamma, "gamma", low=0, high=1, low_open=True, high_open=True)

    def rate(self, epoch):
        return self.initial_lr * self.gamma ** (epoch // self.step_size)


class CosineLR(LearningRateSchedule):
    """Cosine annealing from the initial rate to ``min_lr`` over ``total_epochs`` (default: the run's epochs)."""

    def __init__(self, total_epochs: int | None = None, min_lr: float = 0.0):
        super().__init__()
        self.total_epochs = check_int(total_epochs, "total_epochs", allow_none=True)
        self.min_lr = check_number(min_lr, "min_lr", low=0)

    def rate(self, epoch):
        total = self.total_epochs or self.epochs or 1
        progress = min(epoch, total) / total
        return self.min_lr + (self.initial_lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved for ``patience`` epochs.

    ``monitor`` defaults to ``val_loss`` and falls back to ``loss`` without validation data.
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 5, min_lr: float = 0.0,
                 min_delta: float = 0.0):
        self.monitor = monitor
        self.factor = check_number(factor, "factor", low=0, high=1, low_open=True, high_open=True)
        self.patience = check_int(patience, "patience")
        self.min_lr = check_number(min_lr, "min_lr", low=0)
        self.min_delta = check_number(min_delta, "min_delta", low=0)
        self.best, self.wait = math.inf, 0

    def on_stage_begin(self, stage):
        self.best, self.wait = math.inf, 0  # a new stage's loss is not comparable with the last one's

    def on_epoch_end(self, epoch, logs):
        value = _monitored(logs, self.monitor)
        if value < self.best - self.min_delta:
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            optimizer = self.context.optimizer
            optimizer.lr = max(optimizer.lr * self.factor, self.min_lr)
            self.wait = 0

    def state_dict(self):
        return {"best": self.best, "wait": self.wait}

    def load_state(self, state, arrays):
        self.best, self.wait = float(state["best"]), int(state["wait"])


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; restore the best weights at the end.

    In a run of several stages whose losses are not comparable (greedy layer-wise training),
    monitoring starts afresh with each stage (:meth:`reset`) and the stage's best weights are put
    back when it ends (:meth:`restore_best`); a stop ends that stage only.
    """

    best_weights: dict[str, np.ndarray] | None

    def __init__(self, monitor: str = "val_loss", patience: int = 10, min_delta: float = 0.0,
                 restore_best_weights: bool = True):
        self.monitor = monitor
        self.patience = check_int(patience, "patience")
        self.min_delta = check_number(min_delta, "min_delta", low=0)
        self.restore_best_weights = check_bool(restore_best_weights, "restore_best_weights")
        self.stopped_epoch: int | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the best value and weights seen so far: monitoring starts afresh from the next epoch."""
        self.best, self.wait, self.best_epoch = math.inf, 0, -1
        self.best_weights = None

    def restore_best(self) -> None:
        """Put the best weights since the start (or the last :meth:`reset`) back, with ``restore_best_weights``.

        This is what :meth:`on_train_end` does.
        """
        if self.restore_best_weights and self.best_weights is not None and self.context is not None:
            self.context.model.set_params(self.best_weights)

    def on_stage_begin(self, stage):
        self.reset()

    def on_stage_end(self, stage):
        self.restore_best()

    def on_epoch_end(self, epoch, logs):
        value = _monitored(logs, self.monitor)
        if value < self.best - self.min_delta:
            self.best, self.wait, self.best_epoch = value, 0, epoch
            if self.restore_best_weights:
                self.best_weights = {k: v.copy() for k, v in self.context.model.params.items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.context.stop_training = True

    def on_train_end(self, history):
        self.restore_best()

    def state_dict(self):
        return {"best": self.best, "wait": self.wait, "best_epoch": self.best_epoch}

    def state_arrays(self):
        return dict(self.best_weights or {})

    def load_state(self, state, arrays):
        self.best, self.wait, self.best_epoch = float(state["best"]), int(state["wait"]), int(state["best_epoch"])
        self.best_weights = dict(arrays) or None


SCHEDULES = {"step": lambda epochs: StepLR(max(1, epochs // 3)), "cosine": lambda epochs: CosineLR(),
             "plateau": lambda epochs: ReduceLROnPlateau(patience=max(1, epochs // 10))}


def get_schedule(name: str, epochs: int) -> Callback:
    """A schedule by name for a run of ``epochs``: ``step`` (x0.1 every third of the run), ``cosine``, ``plateau``."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; available: {', '.join(sorted(SCHEDULES))}")
    return SCHEDULES[name](epochs)
