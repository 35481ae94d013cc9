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
