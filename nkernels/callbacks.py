"""Callbacks: objects told about training events, next to the plugins' observer hooks."""
from __future__ import annotations

import csv
import os
import time
import warnings
from typing import Any, Callable, Iterable

import numpy as np

from . import plugins


class TrainingContext:
    """What callbacks may read and change during a run.

    ``model``; ``optimizer`` (None for schemes without one); ``history`` so far; and
    ``stop_training``, which a callback sets to end training after the current epoch.
    """

    def __init__(self, model: Any, optimizer: Any = None, history: Any = None):
        self.model, self.optimizer, self.history = model, optimizer, history
        self.stop_training = False


class Callback:
    """Base class: override the events you need. ``logs`` maps metric names to values.

    ``self.context`` (a :class:`TrainingContext`) is set before ``on_train_begin``; setting
    ``self.context.stop_training = True`` ends training after the current epoch (as
    :class:`~nkernels.schedules.EarlyStopping` does), and ``self.context.optimizer.lr`` may be
    changed between epochs (as the schedules do). A callback
    with state that must survive a checkpoint returns it from :meth:`state_dict` (JSON values)
    and :meth:`state_arrays` (NumPy arrays), and takes it back in :meth:`load_state`.
    """

    context: TrainingContext | None = None
    #: set to True by callbacks that need on_batch_end; schemes may skip per-batch events otherwise
    wants_batches = False

    def on_train_begin(self, model: Any, params: dict[str, Any]) -> None:
        """Training starts; ``params`` holds the run's settings (epochs, batch_size, ...)."""

    def on_epoch_begin(self, epoch: int) -> None:
        """Epoch ``epoch`` (from 0) is about to start."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        """Epoch ``epoch`` (from 0) ended with metrics ``logs``."""

    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
        """Mini-batch ``batch`` (from 0 within the epoch) ended; schemes call this only when wanted."""

    def on_stage_begin(self, stage: Any) -> None:
        """A stage of a run in several stages (greedy layer-wise training) begins; ``stage.name``
        says which. Its optimizer is ``context.optimizer`` from now on."""

    def on_stage_end(self, stage: Any) -> None:
        """A stage ended: its epochs are done, or a callback stopped it (stopping a stage does not
        stop the run)."""

    def on_train_end(self, history: Any) -> None:
        """Training ended; ``history`` is what ``fit`` returns."""

    def on_exception(self, error: BaseException) -> None:
        """Training is ending with ``error`` (e.g. a TrainingDivergedError or KeyboardInterrupt).

        Called instead of :meth:`on_train_end`, just before the error propagates: release what
        :meth:`on_train_begin` acquired (a live display, an open file). Do not raise.
        """

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state for checkpoints (none by default)."""
        return {}

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Array state for checkpoints (none by default)."""
        return {}

    def load_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` and :meth:`state_arrays` returned."""


def as_callback_list(callbacks: Any) -> list[Callback]:
    """``callbacks`` (None, one Callback or an iterable of them) as a new list; a TypeError otherwise."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        return [callbacks]
    try:
        callbacks = list(callbacks)
    except TypeError:
        raise TypeError(f"callbacks must be a list of nkernels.callbacks.Callback instances, got {callbacks!r}") \
            from None
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be nkernels.callbacks.Callback instances, got {cb!r}")
    return callbacks


class CallbackList(Callback):
    """Dispatches every event to a list of callbacks and to the plugins' observer hooks."""

    context: TrainingContext  # always set: the list owns the run's context

    def __init__(self, callbacks: Iterable[Callback] | None, model: Any, scheme: Any, optimizer: Any = None,
                 history: Any = None):
        self.callbacks = as_callback_list(callbacks)
        self.model, self.scheme = model, scheme
        self.context = TrainingContext(model, optimizer, history)
        for cb in self.callbacks:
            cb.context = self.context
        self.wants_batches = any(cb.wants_batches for cb in self.callbacks) or \
            plugins.has_observers("nkernels_on_batch_end")

    @property
    def stop_training(self) -> bool:
        """Whether a callback asked to stop after this epoch."""
        return self.context.stop_training

    def on_train_begin(self, model, params):
        for cb in self.callbacks:
            cb.on_train_begin(model, params)
        plugins.notify("nkernels_on_train_begin", model=model, scheme=self.scheme, params=params)

    def on_epoch_begin(self, epoch):
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch)

    def on_epoch_end(self, epoch, logs):
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)
        plugins.notify("nkernels_on_epoch_end", model=self.model, epoch=epoch, logs=logs)

    def on_batch_end(self, batch, logs):
        for cb in self.callbacks:
            cb.on_batch_end(batch, logs)
        plugins.notify("nkernels_on_batch_end", model=self.model, batch=batch, logs=logs)

    def on_stage_begin(self, stage):
        for cb in self.callbacks:
            cb.on_stage_begin(stage)

    def on_stage_end(self, stage):
        for cb in self.callbacks:
            cb.on_stage_end(stage)

    def on_train_end(self, history):
        for cb in self.callbacks:
            cb.on_train_end(history)
        plugins.notify("nkernels_on_train_end", model=self.model, history=history)

    def on_exception(self, error):
        for cb in self.callbacks:
            try:
                cb.on_exception(error)
            except Exception:  # the original error matters more than a failing clean-up
                pass

    def run_epochs(self, model, params: dict[str, Any], epochs: int, run_epoch: Callable[[int], dict[str, Any]],
                   start_epoch: int = 0, after_epoch: Callable[[int], None] | None = None) -> None:
        """Deprecated since 0.2: a scheme subclasses :class:`nkernels.schemes.Scheme`, whose run
        loop adds stages, checkpoints, the divergence guard and validation metrics.

        The epoch loop schemes shared in 0.1, appending to ``context.history``:
        ``on_train_begin(model, params)``; then per epoch ``on_epoch_begin``, ``logs =
        run_epoch(epoch)`` with ``logs["time"]`` added (the epoch's seconds), the logs appended to
        the history, ``on_epoch_end``, ``after_epoch(epoch)`` (a checkpoint, say), until ``epochs``
        or a callback stops training. An exception goes to ``on_exception`` and is raised again.
        The caller calls ``on_train_end`` once its run is closed.
        """
        warnings.warn("CallbackList.run_epochs is deprecated: subclass nkernels.schemes.Scheme and implement "
                      "train_epoch; Scheme.fit runs the epoch loop", DeprecationWarning, stacklevel=2)
        try:
            self.on_train_begin(model, params)
            for epoch in range(start_epoch, epochs):
                self.on_epoch_begin(epoch)
                started = time.perf_counter()
                logs = run_epoch(epoch)
                logs["time"] = time.perf_counter() - started
                self.context.history.append(logs)
                self.on_epoch_end(epoch, logs)
                if after_epoch is not None:
                    after_epoch(epoch)
                if self.stop_training:
                    break
        except BaseException as exc:
            self.on_exception(exc)
            raise

    def _stateful(self) -> list[Callback]:
        return [cb for cb in self.callbacks if type(cb).state_dict is not Callback.state_dict]

    def states(self) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
        """The state of every callback that has one, for a checkpoint: JSON parts in order, arrays by index."""
        stateful = self._stateful()
        arrays = {f"{i}.{k}": v for i, cb in enumerate(stateful) for k, v in cb.state_arrays().items()}
        return [{"type": type(cb).__name__, "state": cb.state_dict()} for cb in stateful], arrays

    def load_states(self, states: list[dict[str, Any]], arrays: dict[str, np.ndarray]) -> None:
        """Give each stateful callback back its state from :meth:`states` (the same kinds, in order)."""
        stateful = self._stateful()
        if [s["type"] for s in states] != [type(cb).__name__ for cb in stateful]:
            raise ValueError(f"the checkpoint holds the state of the callbacks {[s['type'] for s in states]} but "
                             f"this run has {[type(cb).__name__ for cb in stateful]}; resume with the same "
                             f"schedule and callbacks")
        for i, (cb, saved) in enumerate(zip(stateful, states)):
            prefix = f"{i}."
            cb.load_state(saved["state"], {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})


class CSVLogger(Callback):
    """Appends one row per epoch (epoch, then every metric) to a CSV file.

    A new run truncates the file unless ``append=True``; a resumed run appends.
    """

    def __init__(self, path: str | os.PathLike, append: bool = False):
        self.path = os.fspath(path)
        self.append = append
        self._columns: list[str] | None = None

    def on_train_begin(self, model, params):
        if not self.append and not params.get("resumed"):
            with open(self.path, "w"):
                pass
        self._columns = None

    def on_epoch_end(self, epoch, logs):
        exists = os.path.exists(self.path) and os.path.getsize(self.path) > 0
        if self._columns is None:
            self._columns = ["epoch", *logs]
            if exists:
                with open(self.path, newline="") as f:
                    header = next(csv.reader(f), None)
                self._columns = header or self._columns
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, self._columns, extrasaction="ignore")
            if not exists:
                writer.writeheader()
            writer.writerow({"epoch": epoch + 1, **logs})


class ProgressBar(Callback):
    """A progress bar over the epochs (rich), showing the latest metrics.

    A scheme that trains in stages (one layer after another, say) puts a text ``"stage"`` entry
    in each epoch's logs, such as ``"layer 2/3: autoencoder"``; the bar shows it in parentheses
    after the description.
    """

    def __init__(self, description: str = "training"):
        self.description = description
        self._progress = None

    def on_train_begin(self, model, params):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TextColumn("{task.fields[metrics]}"), transient=False)
        done = self.context.history.epochs if self.context is not None and self.context.history else 0
        self._task = self._progress.add_task(self.description, total=params.get("epochs"), completed=done,
                                             metrics="")
        self._progress.start()

    def on_epoch_end(self, epoch, logs):
        if self._progress is not None:
            from rich.markup import escape

            stage = logs.get("stage")
            description = f"{self.description} ({stage})" if isinstance(stage, str) else self.description
            self._progress.update(self._task, advance=1, metrics=escape(self.format_metrics(logs)),
                                  description=escape(description))

    @staticmethod
    def format_metrics(logs: dict[str, Any]) -> str:
        """The metrics shown next to the bar: losses to 4 places, accuracies in percent (not lr or time)."""
        shown = []
        for key, value in logs.items():
            if key in ("lr", "time") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if key.endswith("accuracy"):
                shown.append(f"{key[:-len('uracy')]} {100 * value:.1f}%")
            elif isinstance(value, (int, np.integer)):
                shown.append(f"{key} {value:d}")
            else:
                shown.append(f"{key} {value:.4f}")
        return "  ".join(shown)

    def on_train_end(self, history):
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def on_exception(self, error):
        self.on_train_end(None)  # stop the live display, so the terminal gets its cursor back
