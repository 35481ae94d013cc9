"""The scheme toolkit: backprop passes the scheme conformance class, and what every scheme inherits."""

import nkernels as nk
from nkernels.testing import SchemeConformance

L = nk.layers


class TestBackpropConformance(SchemeConformance):
    make_scheme = staticmethod(lambda **options: nk.schemes.Backprop(lr=3e-3, **options))
    fit_options = {"batch_size": 64}

    def make_model(self):
        return nk.Sequential([L.Dense(64, 16), L.ReLU(), L.Dropout(0.2), L.Dense(16, 10)], seed=0)


class TestLayerwiseBackpropConformance(TestBackpropConformance):
    make_scheme = staticmethod(lambda **options: nk.schemes.Backprop(lr=3e-3, compiled=False, **options))


class TwoStageBackprop(nk.schemes.Backprop):
    """Backprop in two stages (two epochs, then the rest), each with a fresh optimizer: a run of stages."""

    def stages(self, run):
        return [nk.schemes.Stage("first", 2), nk.schemes.Stage("second", run.epochs - 2)]

    def start_stage(self, run, stage):
        super().start_stage(run, stage)
        run.optimizer = self.trainer.optimizer = self.optimizer.fresh()


class TestTwoStageConformance(TestBackpropConformance):
    """A resume inside the second stage (the conformance runs have 4 epochs) restores its schedule."""

    make_scheme = staticmethod(lambda **options: TwoStageBackprop(lr=3e-3, compiled=False, **options))
    epochs = 4

    def test_a_resumed_run_is_bit_identical(self, tmp_path):
        """A run of stages is not extended by more epochs (its stages are planned once): it resumes inside one."""
        self.check_resume_before_the_last_epoch(tmp_path)


class MeanOutput(nk.schemes.Scheme):
    """A scheme that learns from X alone and scores validation inputs by the mean of the model's outputs."""

    name = "mean-output"
    capabilities = nk.schemes.Capabilities(labels="none", yields=("extractor",), learning_rate=False)

    def train_epoch(self, run, epoch):
        return {"loss": 0.0}

    def validation_metrics(self, run, X_val, y_val):
        assert y_val is None and X_val.dtype == run.model.dtype
        return {"mean": float(run.model.predict(X_val).mean())}


def test_a_scheme_without_labels_takes_validation_inputs_alone():
    """validation_data is X_val or (X_val, None) for a scheme that learns from X alone; y_val is refused."""
    import numpy as np
    import pytest

    X, _, X_val, y_val = nk.datasets.load("digits")
    model = nk.Sequential([L.Dense(64, 3)], seed=0)
    expected = float(model.predict(X_val).mean())
    for validation_data in (X_val, (X_val, None), [X_val.astype(np.float64), None]):
        history = MeanOutput().fit(model, X[:50], epochs=2, validation_data=validation_data)
        assert history["val_mean"] == [pytest.approx(expected)] * 2
    with pytest.raises(ValueError, match="y_val would have no effect"):
        MeanOutput().fit(model, X[:50], epochs=1, validation_data=(X_val, y_val))
    with pytest.raises(ValueError, match=r"X_val or a pair \(X_val, None\)"):
        MeanOutput().fit(model, X[:50], epochs=1, validation_data=(X_val,))
    with pytest.raises(ValueError, match="X_val"):
        MeanOutput().fit(model, X[:50], epochs=1, validation_data=X_val[:, :10])
