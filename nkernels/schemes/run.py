"""TrainingRun: one ``fit`` of a scheme, with the services every scheme inherits.

A run checks the arguments and the data the way backprop always did, holds what the scheme needs
(the checked ``X``, the ``targets`` in the loss's form, the ``loss``, the random generator, the
callbacks, the History), and drives the epoch loop: callbacks and observer hooks, validation
metrics, the learning rate and the time in each epoch's logs, a checkpoint after every epoch, the
divergence guard, stages, early stopping and resume.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any

import numpy as np

from ..callbacks import Callback, CallbackList, as_callback_list
from ..errors import TrainingDivergedError
from ..kernels.cpu.vecmath import all_finite
from ..history import History
from ..runtime import devices
from ..runtime.threads import one_kernel_thread
from ..validation import (check_int, check_model_data, check_model_input, check_same_length, check_seed,
                          check_unlabelled_validation_data, check_validation_data)
from .base import Scheme, Stage
from .checkpoints import Position, load_checkpoint, save_checkpoint


class Diverged(Exception):
    """Raised inside an epoch when a loss or a weight stops being finite; the run restores the
    epoch's start and raises :class:`~nkernels.TrainingDivergedError`."""


class TrainingRun:
    """One ``fit`` of ``scheme`` on ``model``: checked data, the run's state, and the epoch loop.

    What a scheme reads: ``model``, ``X`` (checked, C-contiguous, the model's dtype), ``y`` (as
    given), ``targets`` (``loss.prepare_targets(y)``, or None without labels), ``loss`` (or
    None), ``validation_data`` (checked, or None; ``(X_val, None)`` for a scheme that learns from
    ``X`` alone, whose :meth:`~nkernels.schemes.Scheme.validation_metrics` scores it), ``epochs``, ``batch_size`` (at most the
    number of samples), ``seed``, ``rng`` (the run's generator: draw from it, or from seeds it
    gives, so that checkpoints resume exactly), ``augment`` (``(max_shift, seed)`` or None, for
    :func:`~nkernels.trainers.make_trainer`), ``events`` (the callbacks) and ``history``. What a
    scheme sets: ``optimizer`` (the one in force, which schedules change and checkpoints save)
    and ``info`` (entries for the ``on_train_begin`` parameters).
    """

    def __init__(self, scheme: Scheme, model: Any, X: Any, y: Any = None, *, epochs: int | None = None,
                 batch_size: int | None = None, seed: Any = None, callbacks: Any = None, validation_data: Any = None):
        caps, who = scheme.capabilities, scheme.name or type(scheme).__name__
        self.scheme, self.model = scheme, model
        self.epochs = check_int(scheme.default_epochs if epochs is None else epochs, "epochs")
        if batch_size is not None and not caps.batches:
            raise ValueError(f"{who} trains on the whole training set each epoch, so batch_size has no effect; "
                             f"drop it")
        batch_size = check_int(scheme.default_batch_size if batch_size is None else batch_size, "batch_size")
        self.seed = check_seed(seed)
        if model.device not in caps.devices:
            raise ValueError(f"{who} runs on {' or '.join(caps.devices)}; the model is on {model.device!r} "
                             f"(move it with model.to({caps.devices[0]!r}))")
        if caps.labels == "required" and y is None:
            raise ValueError(f"{who} learns from labels: pass y (targets for X)")
        if caps.labels == "none" and y is not None:
            raise ValueError(f"{who} learns from X alone, so y would have no effect; drop it")
        self.X = check_model_data(model, X)
        self.y = y
        out_shape = check_model_input(model, self.X)
        self.loss: Any = None
        self.targets: Any = None
        if y is not None:
            check_same_length(self.X, y)
            self.loss = self.make_loss(out_shape)
            self.targets = self.loss.prepare_targets(y, out_shape, model.dtype)
        if validation_data is not None:
            if caps.labels == "none":  # the scheme scores X_val itself (validation_metrics gets y_val None)
                validation_data = check_unlabelled_validation_data(validation_data, model, who)
            elif self.loss is None:
                raise ValueError(f"{who}: validation_data needs a loss to score it; pass labelled training data")
            else:
                validation_data = check_validation_data(validation_data, model, self.loss)
        self.validation_data = validation_data
        if scheme.augment_shift and self.X.ndim != 4:
            raise ValueError(f"random translations need image inputs (N, C, H, W), got samples of shape "
                             f"{self.X.shape[1:]}")
        self.n_samples = len(self.X)
        self.batch_size = min(batch_size, self.n_samples)
        self.rng = np.random.default_rng(self.seed)
        self.augment: tuple[int, int] | None = None
        if scheme.augment_shift:  # (a generator of its own: the run's draws stay the same with or without)
            self.augment = scheme.augment_shift, int(np.random.default_rng(self.seed).integers(2**62))
        self.optimizer: Any = None
        self.info: dict[str, Any] = {}
        self.history = History()
        self.events = CallbackList(self._callbacks(callbacks), model, scheme)
        self.events.context.history = self.history
        self.stage: Stage | None = None

    def make_loss(self, output_shape: tuple[int, ...] | None = None) -> Any:
        """The scheme's loss (its ``loss`` attribute when set) or the default for these labels
        (and the model's ``output_shape``: integer labels (N, T) for outputs (N, T, C) are classes)."""
        from ..losses import get_loss
        from ..training import default_loss

        chosen = getattr(self.scheme, "loss", None)
        return default_loss(self.y, output_shape) if chosen is None else get_loss(chosen)

    def _callbacks(self, callbacks: Any) -> list[Callback]:
        from ..schedules import get_schedule

        listed = as_callback_list(callbacks)
        schedule = self.scheme.schedule
        if isinstance(schedule, str):
            listed.insert(0, get_schedule(schedule, self.epochs))
        elif schedule is not None:
            listed.insert(0, schedule)
        return listed

    # -- services for schemes ------------------------------------------------------------------
    def train_batches(self, run_batches: Any, X2d: Any = None, targets: Any = None) -> dict[str, Any]:
        """One epoch of mini-batches in a fresh random order through ``run_batches`` (a trainer's
        ``run``, see :mod:`nkernels.trainers`); returns the epoch's ``loss`` (and ``accuracy``).

        ``X2d`` and ``targets`` default to the run's data as rows. A batch whose loss is not
        finite, or weights that stop being finite, raise :class:`Diverged`.
        """
        from ..trainers import run_epoch_batches

        X2d = self.X.reshape(self.n_samples, -1) if X2d is None else X2d
        targets = self.rows_of_targets() if targets is None else targets
        order = self.rng.permutation(self.n_samples)

        def check(done: int, count: int) -> None:
            if done < count:
                raise Diverged("the loss became NaN or infinite")

        has_accuracy = self.loss is not None and self.loss.has_accuracy
        return run_epoch_batches(run_batches, X2d, targets, order, self.batch_size, self.events, check, has_accuracy)

    def rows_of_targets(self) -> Any:
        """The targets as trainers take them: labels as they are ((N,), or (N, T) for a sequence's
        tokens), value targets one row per sample."""
        if self.targets is None or self.loss.target_kind == "labels":
            return self.targets
        return self.targets.reshape(self.n_samples, -1)

    # -- the loop ------------------------------------------------------------------------------
    def train(self) -> None:
        """Run every stage's epochs (from the checkpoint when resuming), then ``on_train_end``.

        A callback that stops training (early stopping) ends the run, or in a run of several
        stages the current stage: the later stages still run. A checkpoint is written after
        every epoch, and after a stage ends.
        """
        scheme, events = self.scheme, self.events
        plan = scheme.stages(self)
        staged = len(plan) > 1
        position = load_checkpoint(self, plan) if scheme.resume else Position()
        params = {"epochs": sum(stage.epochs for stage in plan), "batch_size": self.batch_size,
                  "samples": self.n_samples, "scheme": scheme.name, "resumed": position.epoch > 0,
                  "device": self.model.device, **self.info}
        if staged:
            params["stages"] = [stage.name for stage in plan]
        try:
            events.context.optimizer = self.optimizer
            events.on_train_begin(self.model, params)
            epoch = position.epoch
            for index in range(position.stage, len(plan)):
                stage = self.stage = plan[index]
                done = position.stage_epoch if index == position.stage else 0
                scheme.start_stage(self, stage)
                if done and position.optimizer is not None:
                    self._load_optimizer(position.optimizer)
                events.context.optimizer = self.optimizer
                if staged and not done:
                    events.on_stage_begin(stage)
                for stage_epoch in range(done + 1, stage.epochs + 1):
                    self._epoch(epoch, staged)
                    epoch += 1
                    if events.stop_training or stage_epoch == stage.epochs:
                        break
                    self._checkpoint(Position(index, stage_epoch, epoch))
                if staged:
                    events.on_stage_end(stage)
                    events.context.stop_training = False  # it ended this stage; the next one runs
                scheme.end_stage(self, stage)
                if staged or events.stop_training:  # this stage is over (a stopped run is over)
                    self._checkpoint(Position(len(plan) if events.stop_training else index + 1, 0, epoch))
                else:  # a run of one stage may be resumed with more epochs
                    self._checkpoint(Position(index, epoch - position.epoch + done, epoch))
                if events.stop_training:
                    break
        except BaseException as exc:
            events.on_exception(exc)
            raise
        events.on_train_end(self.history)

    def _epoch(self, epoch: int, staged: bool) -> None:
        events, scheme = self.events, self.scheme
        snapshot = _Snapshot(self)
        events.on_epoch_begin(epoch)
        started = time.perf_counter()
        try:
            logs = scheme.train_epoch(self, epoch)
            loss = logs.get("loss")
            if loss is not None and not np.isfinite(loss):
                raise Diverged("the loss became NaN or infinite")
            if not _finite(self.model):
                raise Diverged("a weight became NaN or infinite")
        except Diverged as exc:
            snapshot.restore()
            raise TrainingDivergedError(
                f"{scheme.name or type(scheme).__name__} diverged in epoch {epoch + 1}: {exc}. The weights from the "
                f"start of that epoch were restored; {scheme.divergence_hint(self)}.") from None
        if staged and self.stage is not None:
            logs = {"stage": self.stage.name, **logs}
        if self.validation_data is not None:
            with one_kernel_thread() if self.info.get("split_batches") else nullcontext():
                scores = scheme.validation_metrics(self, *self.validation_data)
            logs.update({f"val_{k}": v for k, v in scores.items()})
        if self.optimizer is not None:
            logs["lr"] = self.optimizer.lr
        logs["time"] = time.perf_counter() - started
        self.history.append(logs)
        events.on_epoch_end(epoch, logs)

    # -- checkpoints ---------------------------------------------------------------------------
    def _checkpoint(self, position: Position) -> None:
        if self.scheme.checkpoint_dir is not None:
            save_checkpoint(self, position)

    def _load_optimizer(self, saved: dict[str, Any]) -> None:
        if self.optimizer is None:
            raise ValueError("the checkpoint holds an optimizer's state but this stage has no optimizer")
        if saved["type"] != type(self.optimizer).__name__.lower():
            raise ValueError(f"the checkpoint was trained with {saved['type']}, not "
                             f"{type(self.optimizer).__name__.lower()}; resume with the same optimizer")
        self.optimizer.load_state_dict(saved["state"])
        self.optimizer.lr = saved["config"]["lr"]


def _finite(model) -> bool:
    return all(all_finite(v.reshape(-1)) if isinstance(v, np.ndarray) else np.isfinite(devices.to_host(v)).all()
               for v in model.params.values())


class _Snapshot:
    """A copy of what an epoch changes (weights, buffers, the optimizer's state, the scheme's own),
    to return to when it diverges. Restoring writes into the arrays in place: trainers hold them."""

    def __init__(self, run: TrainingRun):
        self.run, model, optimizer = run, run.model, run.optimizer
        self.params = {k: devices.copy(v) for k, v in model.params.items()}
        self.buffers = {k: devices.copy(v) for k, v in model.buffers.items()}
        self.optimizer = None if optimizer is None else (
            optimizer.steps, {k: {n: devices.copy(a) for n, a in v.items()} for k, v in optimizer.state.items()})
        state, arrays = run.scheme.checkpoint_state(run)
        self.scheme = (_copy_json(state), {k: np.array(devices.to_host(v)) for k, v in arrays.items()})

    def restore(self) -> None:
        run = self.run
        run.model.set_params(self.params)
        for key, value in run.model.buffers.items():
            devices.assign(value, self.buffers[key])
        if self.optimizer is not None and run.optimizer is not None:
            steps, state = self.optimizer
            run.optimizer.steps = steps
            for key, named in run.optimizer.state.items():
                for name, array in named.items():
                    saved = state.get(key, {}).get(name)
                    devices.assign(array, np.zeros(array.shape, array.dtype) if saved is None else saved)
        run.scheme.restore_state(run, *self.scheme)


def _copy_json(value: Any) -> Any:
    if isinstance(value, dict) and not value:  # the state of most schemes: no round trip to copy it
        return {}
    import json

    return json.loads(json.dumps(value))


__all__ = ["TrainingRun", "Diverged"]
