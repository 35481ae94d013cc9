"""The Scheme base class: a way of training a model, and everything a way of training needs.

A scheme writes only what is its own (see :class:`Scheme`): how it prepares a run, and what one
epoch (or one stage of epochs) of its training does. :meth:`Scheme.fit` gives it the rest:
argument and data validation, the epoch loop with callbacks, observer hooks, the History and
validation metrics, checkpoints with bit-identical resume, the divergence guard, learning-rate
schedules, early stopping and random translations of image batches.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar

from ..callbacks import Callback

#: what a scheme may yield
YIELDS = ("classifier", "regressor", "extractor", "generator")
LABELS = ("required", "optional", "none")


@dataclass(frozen=True)
class Capabilities:
    """What a scheme supports, declared once as its class attribute ``capabilities``.

    ``labels``
        ``"required"`` (supervised), ``"optional"`` or ``"none"`` (the scheme learns from ``X``
        alone; labels given to it are refused, as they would have no effect);
    ``yields``
        what a trained model is: a ``"classifier"``/``"regressor"`` (``nkernels compare`` lists
        classifiers), an ``"extractor"`` (``model[:k]`` gives features) or a ``"generator"``;
    ``learning_rate``
        whether it steps an optimizer with a learning rate (schedules need one);
    ``batches``
        whether it trains on mini-batches (``batch_size`` and ``augment_shift`` need them);
    ``devices``
        the devices a model may be on;
    ``distributed``
        whether it runs on Dask (``workers``, ``scheduler``).
    """

    labels: str = "required"
    yields: tuple[str, ...] = ("classifier",)
    learning_rate: bool = True
    batches: bool = True
    devices: tuple[str, ...] = ("cpu",)
    distributed: bool = False

    def __post_init__(self):
        if self.labels not in LABELS:
            raise ValueError(f"Capabilities.labels must be one of {LABELS}, got {self.labels!r}")
        unknown = set(self.yields) - set(YIELDS)
        if unknown:
            raise ValueError(f"Capabilities.yields: unknown {sorted(unknown)}; choose from {YIELDS}")


@dataclass(frozen=True)
class Stage:
    """A part of a run that trains for ``epochs`` epochs with its own optimizer: one for most
    schemes, one per layer for greedy layer-wise training. ``name`` is shown in the logs
    (``logs["stage"]``) and by the progress bar; ``data`` is the scheme's own."""

    name: str
    epochs: int
    data: Any = None


class Scheme:
    """Base class of training schemes (backprop, greedy layer-wise, ADMM, ES, feedback alignment ...).

    A subclass sets ``name`` (its registry name, used in messages) and ``capabilities``, takes
    its own options in ``__init__`` and passes the shared ones (``checkpoint_dir``, ``resume``,
    ``schedule``, ``augment_shift``) on to ``super().__init__``, which refuses by name an option
    the scheme cannot honour. It then implements:

    - :meth:`setup`: build what the run needs (an optimizer, a trainer, a noise table) on the
      :class:`~nkernels.schemes.TrainingRun`, whose ``X``, ``targets``, ``loss``, ``rng``,
      ``batch_size`` ... are already checked; set ``run.optimizer`` when it has one;
    - :meth:`train_epoch`: one epoch; returns its logs (``loss`` and ``accuracy``, and metrics
      of its own). :meth:`TrainingRun.train_batches` runs an epoch of shuffled mini-batches
      through a trainer;

    and, when it has them:

    - :meth:`stages` and :meth:`start_stage` / :meth:`end_stage`, for a run in several parts;
    - :meth:`checkpoint_state` / :meth:`restore_state`, for state of its own that decides the
      numbers (beyond the model's weights and buffers, the optimizer, the random generator and
      the callbacks, which the toolkit saves itself);
    - :meth:`validation_metrics`, when its model is not scored by ``nk.evaluate``;
    - :meth:`teardown`, to release what :meth:`setup` acquired (a Dask cluster);
    - :meth:`adapt_model`, when it trains another shape of chain than the classifier
      ``nkernels compare`` hands every scheme (forward-forward's first layer also takes the label);
    - :meth:`encoder`, when it yields an ``"extractor"``: the part of a trained model whose
      outputs are the features.

    :meth:`fit` returns a :class:`~nkernels.History` with one value per epoch for each metric.
    See ``docs/write-a-scheme.md`` for a worked example.
    """

    #: the scheme's registry name, used in messages
    name: ClassVar[str] = ""
    #: what the scheme supports (see :class:`Capabilities`)
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: the epochs and mini-batch size of a ``fit`` that gives none
    default_epochs: ClassVar[int] = 10
    default_batch_size: ClassVar[int] = 32

    def __init__(self, *, checkpoint_dir: str | os.PathLike | None = None, resume: bool = False,
                 schedule: Any = None, augment_shift: int = 0):
        from ..validation import check_bool, check_int

        who = self.name or type(self).__name__
        given = [name for name, value in (("checkpoint_dir", checkpoint_dir), ("resume", resume),
                                          ("schedule", schedule), ("augment_shift", augment_shift)) if value]
        if given and type(self).fit is not Scheme.fit:
            raise TypeError(f"scheme {who!r} does not accept the option(s) {given}: it implements its own fit(), "
                            f"which the toolkit's checkpoints, schedules and augmentation do not reach")
        self.checkpoint_dir = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
        self.resume = check_bool(resume, "resume")
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir, the directory of the run to continue")
        if schedule is not None:
            if not self.capabilities.learning_rate:
                raise ValueError(f"{who} has no learning rate, so a schedule would have no effect; drop schedule")
            _check_schedule(schedule)
        self.schedule = schedule
        self.augment_shift = check_int(augment_shift, "augment_shift", minimum=0)
        if self.augment_shift and not self.capabilities.batches:
            raise ValueError(f"{who} does not train on mini-batches, so augment_shift (random translations of "
                             f"each batch) would have no effect; drop it")

    # -- what a scheme writes ------------------------------------------------------------------
    def setup(self, run: Any) -> None:
        """Prepare the run: build the scheme's own state (optimizer, trainer ...) on ``run``."""

    def stages(self, run: Any) -> list[Stage]:
        """The parts of the run, in order (one stage of ``run.epochs`` epochs by default)."""
        return [Stage(self.name or "training", run.epochs)]

    def start_stage(self, run: Any, stage: Stage) -> None:
        """A stage begins (also when a run resumes inside it): set up its optimizer and trainer."""

    def end_stage(self, run: Any, stage: Stage) -> None:
        """A stage ended (its epochs are done or a callback stopped it)."""

    def train_epoch(self, run: Any, epoch: int) -> dict[str, Any]:
        """Train one epoch (``epoch`` counts from 0 over the whole run); return its logs."""
        raise NotImplementedError(f"{type(self).__name__} must implement train_epoch(run, epoch)")

    def validation_metrics(self, run: Any, X_val: Any, y_val: Any) -> dict[str, float]:
        """The metrics on the validation data, unprefixed (the toolkit adds ``val_``)."""
        from ..training import evaluate

        return evaluate(run.model, X_val, y_val, loss=run.loss)

    def checkpoint_state(self, run: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """The scheme's own state as JSON values and NumPy arrays, for checkpoints and the divergence guard."""
        return {}, {}

    def restore_state(self, run: Any, state: dict[str, Any], arrays: dict[str, Any]) -> None:
        """Take back what :meth:`checkpoint_state` returned."""

    def divergence_hint(self, run: Any) -> str:
        """What to try when training diverges (appended to the error)."""
        if run.optimizer is not None:
            return f"try a smaller learning rate (lr is {run.optimizer.lr:g})"
        return "try other options"

    def teardown(self, run: Any) -> None:
        """Release what :meth:`setup` acquired; runs whether the run ended well or not."""

    # -- what ``nkernels compare`` asks of a scheme ---------------------------------------------
    def adapt_model(self, model: Any, n_features: int, n_classes: int) -> Any:
        """The model this scheme trains when ``nkernels compare`` (``nk.compare``) hands it the common
        classifier chain ``model`` for inputs of ``n_features`` values and ``n_classes`` classes.

        ``model`` unchanged by default. A scheme that needs another shape (forward-forward, whose
        first layer also takes the one-hot label; an autoencoder, which mirrors the chain) returns
        a new ``nk.Sequential`` keeping the hidden widths.
        """
        return model

    def encoder(self, model: Any) -> Any:
        """The part of a model trained by this scheme whose outputs are the features (for example
        ``model[:k]``), for a scheme whose ``capabilities.yields`` contains ``"extractor"``;
        ``nkernels compare`` fits a logistic-regression head on them."""
        who = self.name or type(self).__name__
        if "extractor" not in self.capabilities.yields:
            raise TypeError(f"scheme {who!r} does not yield an extractor (it yields "
                            f"{', '.join(self.capabilities.yields)}), so it has no encoder")
        raise NotImplementedError(f"scheme {who!r} declares that it yields an extractor but does not implement "
                                  f"encoder(model), the part of the trained model that gives the features")

    # -- what the toolkit does -----------------------------------------------------------------
    def fit(self, model: Any, X: Any, y: Any = None, *, epochs: int | None = None, batch_size: int | None = None,
            seed: int | None = None, callbacks: Any = None, validation_data: Any = None):
        """Train ``model`` on ``X`` (and ``y``); returns a History with one value per epoch per metric.

        ``epochs`` and ``batch_size`` default to the scheme's (``default_epochs``,
        ``default_batch_size``); a scheme without mini-batches refuses a ``batch_size``.
        """
        from .run import TrainingRun

        run = TrainingRun(self, model, X, y, epochs=epochs, batch_size=batch_size, seed=seed, callbacks=callbacks,
                          validation_data=validation_data)
        try:
            self.setup(run)
            run.train()
        finally:
            self.teardown(run)
        return run.history


def _check_schedule(schedule: Any) -> None:
    if isinstance(schedule, str):
        from ..schedules import SCHEDULES

        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}; available: {', '.join(sorted(SCHEDULES))}")
    elif not isinstance(schedule, Callback):
        raise TypeError(f"schedule must be 'step', 'cosine', 'plateau' or a callback from nkernels.schedules, "
                        f"got {schedule!r}")
