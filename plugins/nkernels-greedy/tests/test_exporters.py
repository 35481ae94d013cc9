"""ONNX export of the autoencoder and rbm extractors inside ``Frozen``: onnxruntime against ``forward`` for every
activation, with and without a bias, in float32 and float64."""
import numpy as np
import pytest

import nkernels as nk
from nkernels.testing import check_onnx_export
from nkernels_greedy import RBM, Autoencoder

L = nk.layers
X = np.random.default_rng(0).random((64, 7)).astype(np.float32)

EXTRACTORS = {
    **{f"autoencoder-{a}": (Autoencoder, {"activation": a}) for a in ("relu", "sigmoid", "tanh", "identity")},
    "autoencoder-untied-denoising": (Autoencoder, {"tied": False, "corruption": 0.3}),
    **{f"rbm-{a}": (RBM, {"activation": a}) for a in ("sigmoid", "relu")},
    "rbm-gaussian-k2": (RBM, {"visible": "gaussian", "k": 2}),
}


@pytest.mark.parametrize("cls, options", list(EXTRACTORS.values()), ids=list(EXTRACTORS))
def test_frozen_extractors_export_with_a_head(cls, options):
    extractor = cls(5, epochs=3, seed=0, **options).fit(X)
    inputs = [X[:9], np.random.default_rng(1).standard_normal((2, 7)).astype(np.float32)]
    check_onnx_export(L.Frozen(extractor), (None, 7), inputs, rtol=1e-5)
    model = nk.Sequential([L.Frozen(extractor), L.Dense(5, 3)], seed=0)
    check_onnx_export(model, (None, 7), inputs, rtol=1e-5)


def test_a_layer_without_bias_and_float64_export():
    """What the greedy scheme pretrains: a Dense weight without bias; and a float64 extractor in a float64 model."""
    weight = np.random.default_rng(2).uniform(-1, 1, (4, 7)).astype(np.float32)
    extractor = Autoencoder(4, activation="tanh", epochs=1, seed=0).initialize(7, weight=weight, bias=None)
    extractor.fit_epoch(X)
    assert extractor.to_layers()[0].use_bias is False
    check_onnx_export(nk.Sequential([L.Frozen(extractor), L.Dense(4, 2)], seed=0), (3, 7), X[:3], rtol=1e-5)
    rbm = RBM(3, epochs=2, seed=0, dtype="float64").fit(X.astype(np.float64))
    check_onnx_export(nk.Sequential([L.Frozen(rbm), L.Dense(3, 2)], seed=0, dtype="float64"), (2, 7), rtol=1e-12)


def test_the_exporters_are_registered_by_class():
    for cls in (Autoencoder, RBM):
        assert nk.registry.exporters.provider(cls).distribution == "nkernels-greedy"
