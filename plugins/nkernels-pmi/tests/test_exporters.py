"""ONNX export of the PMI extractors inside ``Frozen``: onnxruntime against ``forward`` for each nonlinearity,
the stack with and without concatenation, a head on top, and float64."""
import numpy as np
import pytest

import nkernels as nk
from nkernels.testing import check_onnx_export
from nkernels_pmi import PMIFactorization, StackedPMI

L = nk.layers
X = nk.datasets.load("digits")[0][:200]
HELD_OUT = [nk.datasets.load("digits")[2][:7], np.random.default_rng(0).uniform(0, 1, (3, 64)).astype(np.float32)]

EXTRACTORS = {
    "relu-pm": lambda: PMIFactorization(12),
    "relu-component": lambda: PMIFactorization(12, nonlinearity="relu", scale="component"),
    "linear-soft": lambda: PMIFactorization(12, nonlinearity="linear", activation="soft"),
    "stack": lambda: StackedPMI((12, 8)),
    "stack-top-only-nmf": lambda: StackedPMI((12, {"n_components": 5, "nonlinearity": "relu"}), concat=False,
                                             factorization="nmf", max_iter=30, seed=0),
}


@pytest.mark.parametrize("name", list(EXTRACTORS))
def test_frozen_extractors_export_with_a_head(name):
    extractor = EXTRACTORS[name]().fit(X)
    check_onnx_export(L.Frozen(extractor), (None, 64), HELD_OUT, rtol=1e-5)
    model = nk.Sequential([L.Frozen(extractor), L.Dense(extractor.n_features_out, 10)], seed=0)
    check_onnx_export(model, (None, 64), HELD_OUT, rtol=1e-5)


def test_float64_exports_as_double():
    extractor = StackedPMI((12, 8)).fit(X.astype(np.float64))
    assert check_onnx_export(L.Frozen(extractor).astype(np.float64), (2, 64), rtol=1e-12) <= 1e-12


def test_the_exporters_are_registered_by_class():
    for cls in (PMIFactorization, StackedPMI):
        assert nk.registry.exporters.provider(cls).distribution == "nkernels-pmi"
