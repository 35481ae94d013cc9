"""The built-in ``backprop`` scheme: mini-batch gradient descent through the whole chain."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..runtime import devices
from ..callbacks import Callback, CallbackList, as_callback_list
from ..validation import (
    check_features, check_fit_arguments, check_int, check_model_input, check_same_length, check_validation_data)
from ..errors import TrainingDivergedError
from ..history import History
from ..losses import get_loss
from ..optimizers import get_optimizer
from ..trainers import DeviceTrainer, LayerwiseTrainer, make_trainer, run_epoch_batches
from ..training import default_loss, evaluate
from .base import Scheme

CHECKPOINT_FILE = "checkpoint.safetensors"


class Backprop(Scheme):
    """Back-propagation with SGD (momentum, Nesterov), Adam or AdamW.

    ``optimizer`` is a name or an :class:`~nkernels.optimizers.Optimizer`; ``lr`` and the other
    optimizer options (``momentum``, ``nesterov``, ``weight_decay``, ``betas``, ``eps``,
    ``clip_norm``, ``max_norm``) go to it. Each ``fit`` trains with a fresh copy of it
    (:meth:`~nkernels.optimizers.Optimizer.fresh`: no moments, step 0), so a scheme object used
    again trains a new model exactly as a new one would; callbacks reach the run's optimizer
    as ``context.optimizer``. ``loss`` defaults to softmax cross-entropy for integer
    labels and MSE otherwise. ``schedule`` is ``"step"``, ``"cosine"``, ``"plateau"`` or a
    callback from :mod:`nkernels.schedules`. ``augment_shift`` shifts each training image by up
    to that many pixels. ``checkpoint_dir`` saves a checkpoint after every epoch, and
    ``resume=True`` continues from it: the resumed run ends with the same weights as an
    uninterrupted one (with ``resume=True`` and no checkpoint yet, training starts afresh, so
    the same call can be repeated until the run is done). ``compiled=False`` forces the
    layer-by-layer path (same numbers). ``split_batches`` chooses the compiled path's split mode
    (two threads, half a batch each; see :class:`~nkernels.trainers.CompiledTrainer`): None
    lets it decide from the size of a batch, False keeps whole batches (the layer path's numbers
    bit for bit), True asks for it.

    When the loss or a weight stops being finite, training stops with a
    :class:`~nkernels.TrainingDivergedError` and the weights, buffers and optimizer state are
    those of the start of that epoch.
    """

    def __init__(self, optimizer: Any = "adam", lr: float | None = None, loss: Any = None,
                 schedule: Any = None, augment_shift: int = 0, checkpoint_dir: str | os.PathLike | None = None,
                 resume: bool = False, compiled: bool = True, split_batches: bool | None = None,
                 **optimizer_options: Any):
        if lr is not None:
            optimizer_options["lr"] = lr
        self.optimizer = get_optimizer(optimizer, **optimizer_options)
        self.loss = None if loss is None else get_loss(loss)
        if isinstance(schedule, str):
            from ..schedules import SCHEDULES

            if schedule not in SCHEDULES:
                raise ValueError(f"unknown schedule {schedule!r}; available: {', '.join(sorted(SCHEDULES))}")
        elif schedule is not None and not isinstance(schedule, Callback):
            raise TypeError(f"schedule must be 'step', 'cosine', 'plateau' or a callback from nkernels.schedules, "
                            f"got {schedule!r}")
        self.schedule = schedule
        self.augment_shift = check_int(augment_shift, "augment_shift", minimum=0)
        self.checkpoint_dir = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
        if resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir, the directory of the run to continue")
        self.resume = bool(resume)
        self.compiled = bool(compiled)
        if split_batches and not self.compiled:
            raise ValueError("split_batches=True needs the compiled path (compiled=True)")
        self.split_batches = None if split_batches is None else bool(split_batches)

    def _callbacks(self, callbacks: Any, epochs: int) -> list:
        from ..schedules import get_schedule

        callbacks = as_callback_list(callbacks)
        if isinstance(self.schedule, str):
            callbacks.insert(0, get_schedule(self.schedule, epochs))
        elif self.schedule is not None:
            callbacks.insert(0, self.schedule)
        return callbacks

    def fit(self, model, X, y=None, *, epochs=10, batch_size=32, seed=None, callbacks=None,
            validation_data=None):
        epochs, batch_size = check_fit_arguments(epochs, batch_size)
        X = check_features(X, dtype=model.dtype)
        check_same_length(X, y)
        loss = self.loss or default_loss(y)
        targets = loss.prepare_targets(y, check_model_input(model, X), model.dtype)
        if validation_data is not None:
            validation_data = check_validation_data(validation_data, model, loss)
        if self.augment_shift and X.ndim != 4:
            raise ValueError(f"random translations need image inputs (N, C, H, W), got samples of shape "
                             f"{X.shape[1:]}")
        n = len(X)
        batch_size = min(batch_size, n)
        rng = np.random.default_rng(seed)
        optimizer = self.optimizer.fresh()
        events = CallbackList(self._callbacks(callbacks, epochs), model, self, optimizer)
        augment_seed = int(np.random.default_rng(seed).integers(2**62))
        start_epoch, history, augment_seed = self._resume(model, optimizer, rng, events, epochs, augment_seed)
        augment = (self.augment_shift, augment_seed) if self.augment_shift else None
        trainer = make_trainer(model, loss, optimizer, X.shape[1:], batch_size, self.compiled, augment,
                               self.split_batches)
        X2d = X.reshape(n, -1)
        if loss.target_kind == "values":
            targets = targets.reshape(n, -1)
        if isinstance(trainer, DeviceTrainer):  # the data moves to the GPU once, for the whole run
            X2d, targets = trainer.put(X2d), trainer.put(targets)
        events.context.history = history

        def run_epoch(epoch: int) -> dict[str, Any]:
            logs = self._epoch(epoch, model, optimizer, trainer, loss, X2d, targets, rng, batch_size, events)
            if validation_data is not None:
                X_val, y_val = validation_data
                scores = evaluate(model, X_val, y_val, loss=loss)
                logs.update({f"val_{k}": v for k, v in scores.items()})
            logs["lr"] = optimizer.lr
            return logs

        events.run_epochs(model, {"epochs": epochs, "batch_size": batch_size, "samples": n, "scheme": "backprop",
                                  "resumed": start_epoch > 0,
                                  "compiled": not isinstance(trainer, (LayerwiseTrainer, DeviceTrainer)),
                                  "split_batches": bool(getattr(trainer, "split", False)), "device": model.device},
                          epochs, run_epoch, start_epoch,
                          lambda epoch: self._checkpoint(model, optimizer, epoch, rng, history, events, augment_seed))
        events.on_train_end(history)
        return history

    def _epoch(self, epoch, model, optimizer, trainer, loss, X2d, targets, rng, batch_size,
               events) -> dict[str, Any]:
        """Train one epoch and return its loss (and accuracy); divergence restores the epoch's start and raises."""
        order = rng.permutation(len(X2d))
        snapshot = _Snapshot(model, optimizer)

        def check(done: int, count: int) -> None:
            if done < count or not _params_finite(model):
                snapshot.restore()
                raise TrainingDivergedError(
                    f"training diverged in epoch {epoch + 1}: the loss or a weight became NaN or "
                    f"infinite. The weights from the start of that epoch were restored; try a smaller "
                    f"learning rate (lr is {optimizer.lr:g}).")

        return run_epoch_batches(trainer.run, X2d, targets, order, batch_size, events, check, loss.has_accuracy)

    # -- checkpoints ---------------------------------------------------------------------------
    def _checkpoint_path(self) -> str:
        assert self.checkpoint_dir is not None  # only called with checkpoints on
        return os.path.join(self.checkpoint_dir, CHECKPOINT_FILE)

    def _checkpoint(self, model, optimizer, epoch: int, rng: np.random.Generator, history: History,
                    events: CallbackList, augment_seed: int) -> None:
        if self.checkpoint_dir is None:
            return
        from ..export.io import save

        states, arrays = events.states()
        extra = {"epoch": epoch + 1, "rng": rng.bit_generator.state, "history": history.as_dict(),
                 "callbacks": states, "stopped": events.stop_training, "augment_seed": augment_seed}
        save(model, self._checkpoint_path(), optimizer=optimizer, extra=extra, arrays=arrays)

    def _resume(self, model, optimizer, rng: np.random.Generator, events: CallbackList, epochs: int,
                augment_seed: int) -> tuple[int, History, int]:
        """The epoch to start from, the history so far and the augmentation seed: from the checkpoint
        when resuming (so a run started without a seed resumes exactly too), which also restores the
        run's ``optimizer`` state."""
        if not self.resume or not os.path.exists(self._checkpoint_path()):
            return 0, History(), augment_seed
        from ..export.io import read_checkpoint, restore_weights

        path = self._checkpoint_path()
        checkpoint = read_checkpoint(path)
        if checkpoint.extra is None or checkpoint.optimizer is None:
            raise ValueError(f"{path} is a saved model, not a training checkpoint")
        if checkpoint.optimizer["type"] != type(optimizer).__name__.lower():
            raise ValueError(f"{path} was trained with {checkpoint.optimizer['type']}, not "
                             f"{type(optimizer).__name__.lower()}; resume with the same optimizer")
        restore_weights(model, checkpoint, path)
        optimizer.load_state_dict(checkpoint.optimizer_state() or {"steps": 0, "state": {}})
        optimizer.lr = checkpoint.optimizer["config"]["lr"]
        rng.bit_generator.state = checkpoint.extra["rng"]
        events.load_states(checkpoint.extra["callbacks"], checkpoint.arrays)
        history = History(checkpoint.extra["history"])
        augment_seed = int(checkpoint.extra.get("augment_seed", augment_seed))
        if checkpoint.extra.get("stopped"):  # a callback had already ended that run
            events.context.stop_training = True
            return epochs, history, augment_seed
        return int(checkpoint.extra["epoch"]), history, augment_seed


def _params_finite(model) -> bool:
    return all(np.isfinite(devices.to_host(v)).all() for v in model.params.values())


class _Snapshot:
    """Copies of a model's weights and buffers and an optimizer's state, to return to after divergence.

    Restoring writes into the arrays in place: the compiled trainer holds on to them.
    """

    def __init__(self, model, optimizer):
        self.model, self.optimizer = model, optimizer
        self.params = {k: devices.copy(v) for k, v in model.params.items()}
        self.buffers = {k: devices.copy(v) for k, v in model.buffers.items()}
        self.steps = optimizer.steps
        self.state = {k: {n: devices.copy(a) for n, a in v.items()} for k, v in optimizer.state.items()}

    def restore(self) -> None:
        self.model.set_params(self.params)
        for key, value in self.model.buffers.items():
            devices.assign(value, self.buffers[key])
        self.optimizer.steps = self.steps
        for key, named in self.optimizer.state.items():
            for name, array in named.items():
                saved = self.state.get(key, {}).get(name)
                if saved is None or tuple(saved.shape) != tuple(array.shape):
                    saved = np.zeros(array.shape, array.dtype)
                devices.assign(array, saved)
