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
