"""Callbacks: objects told about training events, next to the plugins' observer hooks."""
from __future__ import annotations

from typing import Any, Iterable

from . import plugins


class Callback:
    """Base class: override the events you need. ``logs`` maps metric names to values."""

    def on_train_begin(self, model: Any, params: dict[str, Any]) -> None:
        """Training starts; ``params`` holds the run's settings (epochs, batch_size, ...)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        """Epoch ``epoch`` (from 0) ended with metrics ``logs``."""

    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
        """Mini-batch ``batch`` (from 0 within the epoch) ended; schemes call this only when wanted."""

    def on_train_end(self, history: Any) -> None:
        """Training ended; ``history`` is what ``fit`` returns."""

    #: set to True by callbacks that need on_batch_end; schemes may skip per-batch events otherwise
    wants_batches = False


class CallbackList(Callback):
    """Dispatches every event to a list of callbacks and to the plugins' observer hooks."""

    def __init__(self, callbacks: Iterable[Callback] | None, model: Any, scheme: Any):
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be nkernels.callbacks.Callback instances, got {cb!r}")
        self.model, self.scheme = model, scheme
        self.wants_batches = any(cb.wants_batches for cb in self.callbacks) or \
            plugins.has_observers("nkernels_on_batch_end")

    def on_train_begin(self, model, params):
        for cb in self.callbacks:
            cb.on_train_begin(model, params)
        plugins.notify("nkernels_on_train_begin", model=model, scheme=self.scheme, params=params)

    def on_epoch_end(self, epoch, logs):
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)
        plugins.notify("nkernels_on_epoch_end", model=self.model, epoch=epoch, logs=logs)

    def on_batch_end(self, batch, logs):
        for cb in self.callbacks:
            cb.on_batch_end(batch, logs)
        plugins.notify("nkernels_on_batch_end", model=self.model, batch=batch, logs=logs)

    def on_train_end(self, history):
        for cb in self.callbacks:
            cb.on_train_end(history)
        plugins.notify("nkernels_on_train_end", model=self.model, history=history)


class ProgressBar(Callback):
    """A progress bar over the epochs (rich), showing the latest metrics."""

    def __init__(self, description: str = "training"):
        self.description = description
        self._progress = None

    def on_train_begin(self, model, params):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TextColumn("{task.fields[metrics]}"), transient=False)
        self._task = self._progress.add_task(self.description, total=params.get("epochs"), metrics="")
        self._progress.start()

    def on_epoch_end(self, epoch, logs):
        if self._progress is not None:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if isinstance(v, float))
            self._progress.update(self._task, advance=1, metrics=shown)

    def on_train_end(self, history):
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
