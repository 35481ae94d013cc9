"""A ready-made conformance suite for training schemes: subclass it in a test file and pytest runs it all.

Example, in a plugin's ``tests/test_my_scheme.py``::

    import nkernels as nk
    from nkernels.testing import SchemeConformance
    from my_plugin import MyScheme

    class TestMyScheme(SchemeConformance):
        make_scheme = staticmethod(MyScheme)          # called with the toolkit's options (checkpoint_dir ...)
        def make_model(self):
            L = nk.layers
            return nk.Sequential([L.Dense(64, 16), L.ReLU(), L.Dense(16, 10)], seed=0)

pytest then checks that the scheme honours what :class:`nkernels.schemes.Scheme` promises:
one history entry per epoch, validation metrics, callbacks and observer events, determinism
for a seed, a reused scheme object training like a new one, checkpoints whose resumed runs are
bit-identical (with a seed, without one and with a learning-rate schedule), early stopping,
the divergence guard (a weight poisoned with NaN at the start of an epoch: the error, and the
weights of the epoch before), and the refusal of options it cannot honour.
"""
from __future__ import annotations

import shutil
from typing import Any, Callable

import numpy as np


class SchemeConformance:
    """Mix-in test suite for one scheme; set ``make_scheme`` and ``make_model``.

    ``make_scheme(**options)`` builds the scheme (the suite passes the toolkit's options:
    ``checkpoint_dir``, ``resume``, ``schedule``, ``augment_shift``); ``make_model()`` a fresh
    model, the same each call. :meth:`data` gives the training and validation data (a slice of
    digits by default), ``epochs`` the length of the runs (at least 3) and ``fit_options`` more
    ``fit`` arguments (``batch_size`` ...).
    """

    make_scheme: Callable[..., Any]
    epochs = 3
    fit_options: dict[str, Any] = {}

    def make_model(self) -> Any:
        """A fresh model, the same at every call."""
        raise NotImplementedError("set make_model to a method returning a fresh, seeded model")

    def data(self) -> tuple[Any, Any, Any, Any]:
        """``(X, y, X_val, y_val)``: 240 and 120 digits as flat vectors (y None for unlabelled schemes)."""
        import nkernels as nk

        X, y, X_val, y_val = nk.datasets.load("digits")
        labelled = self.make_scheme().capabilities.labels != "none"
        return X[:240], (y[:240] if labelled else None), X_val[:120], (y_val[:120] if labelled else None)

    # -- helpers -------------------------------------------------------------------------------
    def fit(self, model: Any, scheme: Any = None, *, epochs: int | None = None, seed: Any = 0, callbacks: Any = None,
            validation: bool = False, **options: Any) -> Any:
        """Train ``model`` with a new scheme (``options`` go to it), or ``scheme``; returns the History."""
        X, y, X_val, y_val = self.data()
        scheme = self.make_scheme(**options) if scheme is None else scheme
        return scheme.fit(model, X, y, epochs=epochs or self.epochs, seed=seed, callbacks=callbacks,
                          validation_data=(X_val, y_val) if validation else None, **self.fit_options)

    @staticmethod
    def same_numbers(a: Any, b: Any) -> None:
        """Two models hold the same parameters and buffers, bit for bit."""
        for table in ("params", "buffers"):
            left, right = getattr(a, table), getattr(b, table)
            assert left.keys() == right.keys()
            for key in left:
                np.testing.assert_array_equal(left[key], right[key], err_msg=f"{table[:-1]} {key}")

    # -- the checks ----------------------------------------------------------------------------
    def test_history_has_one_value_per_epoch(self):
        """fit returns a History: loss (and the scheme's metrics) once per epoch, and the time."""
        history = self.fit(self.make_model())
        assert len(history["loss"]) == self.epochs and len(history["time"]) == self.epochs
        assert all(np.isfinite(value) for value in history["loss"])

    def test_validation_data_gives_val_metrics(self):
        """validation_data adds val_ metrics to every epoch."""
        if self.data()[1] is None:
            return
        history = self.fit(self.make_model(), validation=True)
        assert "val_loss" in history and len(history["val_loss"]) == self.epochs

    def test_callbacks_hear_every_epoch(self):
        """Callbacks get train begin/end and every epoch's begin and end, with the logs."""
        from ..callbacks import Callback

        class Recorder(Callback):
            def __init__(self):
                self.events = []

            def on_train_begin(self, model, params):
                self.events.append("begin")

            def on_epoch_begin(self, epoch):
                self.events.append(("epoch", epoch))

            def on_epoch_end(self, epoch, logs):
                assert "loss" in logs
                self.events.append(("end", epoch))

            def on_train_end(self, history):
                self.events.append("end")

        recorder = Recorder()
        self.fit(self.make_model(), callbacks=[recorder])
        epochs = [event[1] for event in recorder.events if isinstance(event, tuple) and event[0] == "end"]
        assert recorder.events[0] == "begin" and recorder.events[-1] == "end" and epochs == list(range(self.epochs))

    def test_same_seed_gives_the_same_weights(self):
        """Training is deterministic given the seed."""
        a, b = self.make_model(), self.make_model()
        self.fit(a, seed=5)
        self.fit(b, seed=5)
        self.same_numbers(a, b)

    def test_a_reused_scheme_trains_like_a_new_one(self):
        """A scheme object carries no state from one fit into the next."""
        scheme = self.make_scheme()
        self.fit(self.make_model(), scheme)
        again, fresh = self.make_model(), self.make_model()
        self.fit(again, scheme)
        self.fit(fresh)
        self.same_numbers(again, fresh)

    def test_a_resumed_run_is_bit_identical(self, tmp_path):
        """Stopped after epoch 2 and resumed, a run ends with the uninterrupted run's weights and history."""
        straight = self.make_model()
        h_straight = self.fit(straight)
        interrupted = self.make_model()
        self.fit(interrupted, epochs=self.epochs - 1, checkpoint_dir=tmp_path)
        resumed = self.make_model()  # a new process would build the model again
        h_resumed = self.fit(resumed, checkpoint_dir=tmp_path, resume=True)
        self.same_numbers(straight, resumed)
        assert h_resumed["loss"] == h_straight["loss"]

    def test_a_run_without_a_seed_resumes_bit_identical(self, tmp_path):
        """Without a seed too: everything random that decides the rest of the run is in the checkpoint."""
        self.check_resume_before_the_last_epoch(tmp_path, seed=None)

    def test_a_run_with_a_schedule_resumes_bit_identical(self, tmp_path):
        """A cosine schedule's state (in a run of stages: the stage's length too) is in the checkpoint."""
        import pytest

        if not self.make_scheme().capabilities.learning_rate:
            pytest.skip("the scheme has no learning rate: it refuses schedules (test_options_it_cannot_honour_are_refused)")
        self.check_resume_before_the_last_epoch(tmp_path, schedule="cosine")

    def check_resume_before_the_last_epoch(self, tmp_path, seed: Any = 0, **options: Any) -> None:
        """A run resumed from its checkpoint before the last epoch ends with the uninterrupted run's weights."""
        from ..callbacks import Callback

        saved = tmp_path / "before-the-last-epoch"
        last_epoch = self.epochs - 1

        class Keep(Callback):
            def on_epoch_begin(self, epoch):
                if epoch == last_epoch:  # the checkpoint of the epoch before is complete
                    shutil.copytree(tmp_path / "run", saved)

        straight = self.make_model()
        self.fit(straight, seed=seed, checkpoint_dir=tmp_path / "run", callbacks=[Keep()], **options)
        resumed = self.make_model()
        self.fit(resumed, seed=seed, checkpoint_dir=saved, resume=True, **options)
        self.same_numbers(straight, resumed)

    def test_a_callback_can_stop_training(self):
        """A callback that stops after the first epoch ends the run (or, in a run of stages, each stage)."""
        from ..callbacks import Callback

        class StopAtOnce(Callback):
            def on_epoch_end(self, epoch, logs):
                self.context.stop_training = True

        history = self.fit(self.make_model(), callbacks=[StopAtOnce()])
        assert len(history["loss"]) < self.epochs or len(set(history["stage"])) == len(history["loss"])

    def test_divergence_restores_the_last_finite_weights(self):
        """A weight poisoned at the start of an epoch: TrainingDivergedError, and the weights of the epoch before."""
        from ..callbacks import Callback
        from ..errors import TrainingDivergedError

        kept: dict[str, np.ndarray] = {}

        class Poison(Callback):
            def on_epoch_begin(self, epoch):
                if epoch == 1:
                    kept.update({k: np.array(v) for k, v in self.context.model.params.items()})
                    first = next(iter(self.context.model.params.values()))
                    first.reshape(-1)[0] = np.nan

        model = self.make_model()
        try:
            self.fit(model, callbacks=[Poison()])
        except TrainingDivergedError as exc:
            assert "epoch 2" in str(exc)
        else:
            raise AssertionError("a NaN weight must end training with a TrainingDivergedError")
        for key, value in model.params.items():
            np.testing.assert_array_equal(value, kept[key], err_msg=f"{key} after divergence")

    def test_options_it_cannot_honour_are_refused(self):
        """A schedule without a learning rate, augmentation or a batch size without mini-batches,
        labels for a scheme without labels: each a clear error before training."""
        import pytest

        capabilities = self.make_scheme().capabilities
        if not capabilities.learning_rate:
            with pytest.raises(ValueError, match="no learning rate"):
                self.make_scheme(schedule="cosine")
        if not capabilities.batches:
            with pytest.raises(ValueError, match="augment_shift"):
                self.make_scheme(augment_shift=1)
            X, y, _, _ = self.data()
            with pytest.raises(ValueError, match="batch_size has no effect"):
                self.make_scheme().fit(self.make_model(), X, y, epochs=1, batch_size=16)
        if capabilities.labels == "none":
            X, _, _, _ = self.data()
            with pytest.raises(ValueError, match="y would have no effect"):
                self.make_scheme().fit(self.make_model(), X, np.zeros(len(X), np.int64), epochs=1)
        if capabilities.labels == "required":
            X, _, _, _ = self.data()
            with pytest.raises(ValueError, match="pass y"):
                self.make_scheme().fit(self.make_model(), X, None, epochs=1)
