"""Learning-rate schedules and early stopping, as callbacks that any scheme with an optimizer honours.

``StepLR`` and ``CosineLR`` set the learning rate at the start of each epoch, after an optional
linear warm-up of ``warmup_epochs`` (``LinearWarmup`` is the warm-up alone, then a constant rate);
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

    The initial rate is the optimizer's at the first epoch. With ``warmup_epochs=w`` the first
    ``w`` epochs ramp the rate up linearly, epoch ``e`` (from 0) training at ``initial * (e + 1) / (w + 1)``,
    and the schedule proper (:meth:`rate`) starts at epoch ``w`` with the full initial rate, as if
    epoch ``w`` were its epoch 0 (Keras's ``CosineDecay(warmup_steps=...)``, or PyTorch's ``LinearLR``
    then the decay in a ``SequentialLR``, per epoch). In a run of several stages, each with its own
    optimizer, the schedule (warm-up included) starts again with each stage, over that stage's epochs.
    """

    def __init__(self, warmup_epochs: int = 0):
        self.warmup_epochs = check_int(warmup_epochs, "warmup_epochs", minimum=0)
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
        optimizer.lr = self.scheduled_rate(epoch - (self.first_epoch or 0))

    def scheduled_rate(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (from 0, counted from the start of the run or stage), warm-up included."""
        if epoch < self.warmup_epochs:
            assert self.initial_lr is not None  # set by on_epoch_begin before any rate is asked for
            return self.initial_lr * (epoch + 1) / (self.warmup_epochs + 1)
        return self.rate(epoch - self.warmup_epochs)

    def rate(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` of the schedule proper (from 0, counted after the warm-up)."""
        raise NotImplementedError

    def state_dict(self):
        return {"initial_lr": self.initial_lr, "first_epoch": self.first_epoch, "stage_epochs": self.stage_epochs,
                "warmup_epochs": self.warmup_epochs}

    def load_state(self, state, arrays):
        saved_warmup = state.get("warmup_epochs", 0)
        if saved_warmup != self.warmup_epochs:
            raise ValueError(f"the checkpoint's {type(self).__name__} warmed up for {saved_warmup} epochs, this one "
                             f"for {self.warmup_epochs}; resume with warmup_epochs={saved_warmup} to continue that run")
        self.initial_lr, self.first_epoch = state["initial_lr"], state.get("first_epoch", 0)
        self.stage_epochs = state.get("stage_epochs")


class LinearWarmup(LearningRateSchedule):
    """A linear warm-up over ``warmup_epochs`` epochs (see :class:`LearningRateSchedule`), then the initial rate."""

    def __init__(self, warmup_epochs: int):
        super().__init__(check_int(warmup_epochs, "warmup_epochs"))

    def rate(self, epoch):
        return self.initial_lr


class StepLR(LearningRateSchedule):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs (``torch.optim.lr_scheduler.StepLR``),
    counted after an optional linear warm-up of ``warmup_epochs``."""

    def __init__(self, step_size: int, gamma: float = 0.1, warmup_epochs: int = 0):
        super().__init__(warmup_epochs)
        self.step_size = check_int(step_size, "step_size")
        self.gamma = check_number(gamma, "gamma", low=0, high=1, low_open=True, high_open=True)

    def rate(self, epoch):
        return self.initial_lr * self.gamma ** (epoch // self.step_size)


class CosineLR(LearningRateSchedule):
    """Cosine annealing from the initial rate to ``min_lr`` over ``total_epochs`` (default: the run's epochs).

    With ``warmup_epochs=w`` the rate first rises linearly for ``w`` epochs, then the cosine
    decays over the remaining ``total_epochs - w``: ``total_epochs`` counts the warm-up.
    """

    def __init__(self, total_epochs: int | None = None, min_lr: float = 0.0, warmup_epochs: int = 0):
        super().__init__(warmup_epochs)
        self.total_epochs = check_int(total_epochs, "total_epochs", allow_none=True)
        self.min_lr = check_number(min_lr, "min_lr", low=0)
        if self.total_epochs is not None and self.warmup_epochs >= self.total_epochs:
            raise ValueError(f"warmup_epochs={self.warmup_epochs} leaves none of total_epochs={self.total_epochs} "
                             f"for the cosine decay; warm up for fewer epochs")

    def on_train_begin(self, model, params):
        super().on_train_begin(model, params)
        if self.total_epochs is None and self.epochs is not None and self.warmup_epochs >= self.epochs:
            raise ValueError(f"CosineLR(warmup_epochs={self.warmup_epochs}) leaves none of this {self.epochs}-epoch "
                             f"run for the cosine decay; train for more epochs or warm up for fewer")

    def rate(self, epoch):
        total = max(1, (self.total_epochs or self.epochs or 1) - self.warmup_epochs)
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


SCHEDULES = {"step": lambda epochs, warmup: StepLR(max(1, (epochs - warmup) // 3), warmup_epochs=warmup),
             "cosine": lambda epochs, warmup: CosineLR(warmup_epochs=warmup),
             "plateau": lambda epochs, warmup: ReduceLROnPlateau(patience=max(1, epochs // 10)),
             "warmup": lambda epochs, warmup: LinearWarmup(warmup)}
#: the named schedules that take a warm-up (``plateau`` reacts to the loss and has none)
WARMUP_SCHEDULES = ("step", "cosine", "warmup")


def get_schedule(name: str, epochs: int, warmup_epochs: int = 0) -> Callback:
    """A schedule by name for a run of ``epochs``: ``step`` (x0.1 every third of the run after the warm-up),
    ``cosine``, ``plateau``, or ``warmup`` (the warm-up alone, then a constant rate).

    ``warmup_epochs`` puts a linear warm-up before ``step`` and ``cosine``; ``warmup`` needs it.
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; available: {', '.join(sorted(SCHEDULES))}")
    warmup_epochs = check_int(warmup_epochs, "warmup_epochs", minimum=0)
    if warmup_epochs and name not in WARMUP_SCHEDULES:
        raise ValueError(f"the {name!r} schedule has no warm-up, so warmup_epochs would have no effect; use "
                         f"{', '.join(repr(n) for n in WARMUP_SCHEDULES)} or drop warmup_epochs")
    if name == "warmup" and not warmup_epochs:
        raise ValueError("the 'warmup' schedule needs warmup_epochs >= 1")
    return SCHEDULES[name](epochs, warmup_epochs)
