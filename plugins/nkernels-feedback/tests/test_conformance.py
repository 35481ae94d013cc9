"""dfa and fa pass the scheme conformance class, on both runs and with random translations."""
from typing import Any, ClassVar

import nkernels as nk
from nkernels_feedback import DFA, FA

L = nk.layers


class TestDFAConformance(nk.testing.SchemeConformance):
    make_scheme = staticmethod(lambda **options: DFA(lr=3e-3, **options))
    fit_options: ClassVar[dict[str, Any]] = {"batch_size": 64}

    def make_model(self):
        return nk.Sequential([L.Dense(64, 16), L.ReLU(), L.Dense(16, 16), L.Tanh(), L.Dense(16, 10)], seed=0)


class TestLayerwiseDFAConformance(TestDFAConformance):
    make_scheme = staticmethod(lambda **options: DFA(lr=3e-3, compiled=False, **options))


class TestFAConformance(TestDFAConformance):
    make_scheme = staticmethod(lambda **options: FA(lr=3e-3, **options))


class TestLayerwiseFAConformance(TestDFAConformance):
    make_scheme = staticmethod(lambda **options: FA(optimizer="sgd", lr=0.05, momentum=0.9, compiled=False,
                                                    **options))


class TestAugmentedDFAConformance(TestDFAConformance):
    """Images shifted by up to a pixel: the augmentation seed and the matrices resume with the run."""

    make_scheme = staticmethod(lambda **options: DFA(lr=3e-3, augment_shift=1, **options))

    def data(self):
        X, y, X_val, y_val = super().data()
        return X.reshape(-1, 1, 8, 8), y, X_val.reshape(-1, 1, 8, 8), y_val

    def make_model(self):
        return nk.Sequential([L.Flatten(), L.Dense(64, 16), L.ReLU(), L.Dense(16, 10)], seed=0)
