"""sg passes the scheme conformance class: conditioned and not, fused and stepping from Python."""
from typing import Any, ClassVar

import nkernels as nk
from nkernels_sg import SyntheticGradients

L = nk.layers


class TestSGConformance(nk.testing.SchemeConformance):
    make_scheme = staticmethod(lambda **options: SyntheticGradients(lr=3e-3, **options))
    fit_options: ClassVar[dict[str, Any]] = {"batch_size": 64}

    def make_model(self):
        return nk.Sequential([L.Dense(64, 16), L.ReLU(), L.Dense(16, 16), L.Tanh(), L.Dense(16, 10)], seed=0)


class TestUnconditionedSGConformance(TestSGConformance):
    make_scheme = staticmethod(lambda **options: SyntheticGradients(conditioned=False, lr=3e-3, **options))


class TestSteppedSGConformance(TestSGConformance):
    """Optimizers without a fused form: one kernel call per batch, the optimizers step from Python
    (the predictors' SGD with momentum is fused, the blocks' clipped Adam is not)."""

    make_scheme = staticmethod(lambda **options: SyntheticGradients(
        lr=3e-3, clip_norm=1.0, predictor_optimizer="sgd", predictor_lr=0.05, **options))


class TestHiddenPredictorSGConformance(TestSGConformance):
    """Predictors with a hidden layer, drawn at setup: a resumed run (with a seed or without) takes them back."""

    make_scheme = staticmethod(lambda **options: SyntheticGradients(lr=3e-3, predictor_hidden=8, **options))
