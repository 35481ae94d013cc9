"""ONNX export of the k-means extractors inside ``Frozen``: onnxruntime against ``forward`` for every option that
changes the graph (encodings, spherical rows, standardization, patch geometry, pooling, stages, groups, concat)."""
import numpy as np
import pytest

import nkernels as nk
from nkernels.testing import check_onnx_export
from nkernels_kmeans import ConvKMeans, KMeans, StackedKMeans

L = nk.layers
ROWS = np.random.default_rng(0).standard_normal((300, 6)).astype(np.float32)
IMAGES = np.random.default_rng(1).standard_normal((40, 2, 7, 6)).astype(np.float32)
TWO_STAGES = [{"n_clusters": 5, "patch_size": 2}, {"n_clusters": 4, "patch_size": 2}]

KMEANS = {
    "triangle": {},
    "hard": {"encoding": "hard"},
    "spherical": {"spherical": True},
    "standardize": {"standardize": True},
    "minibatch-hard-spherical-standardize": {"algorithm": "minibatch", "batch_size": 64, "encoding": "hard",
                                             "spherical": True, "standardize": True},
}
CONV = {
    "quadrants": {},
    "hard": {"encoding": "hard"},
    "stride-rect-grid3": {"patch_size": (3, 2), "stride": 2, "pool_grid": 3},
    # contrast normalization would map these 2-value patches onto two points, right on centroids, where the
    # distances (square roots of cancelling float32 sums) are ill-conditioned for the kernels themselves
    "grid1-1x1-patches": {"patch_size": 1, "pool_grid": 1, "normalize": False},
    "raw-patches-standardize": {"normalize": False, "whiten": False, "standardize": True},
    "hard-standardize": {"encoding": "hard", "standardize": True, "pool_grid": 4},
}
STACKED = {
    "two-stages": {},
    "hard-top-only": {"encoding": "hard", "concat": False},
    "groups-standardize": {"stages": [{"n_clusters": 6, "patch_size": 2},
                                      {"n_clusters": 3, "patch_size": 2, "groups": 3, "group_size": 2}],
                           "standardize": True},
    "three-stages-pool3-stride-overrides": {
        "stages": [{"n_clusters": 4, "patch_size": 2, "pool_size": 1},
                   {"n_clusters": 5, "patch_size": (2, 1), "stride": 2, "pool_size": 3, "whiten": False},
                   {"n_clusters": 3, "patch_size": 1, "normalize": False}], "pool_grid": 1},
}


def fitted(kind, options, dtype=np.float32):
    """An extractor of ``kind`` fitted on small random data, and its input shape."""
    if kind == "kmeans":
        return KMeans(5, seed=0, **options).fit(ROWS.astype(dtype)), ROWS.shape[1:]
    if kind == "conv-kmeans":
        return ConvKMeans(6, n_patches=600, seed=0, **options).fit(IMAGES.astype(dtype)), IMAGES.shape[1:]
    options = {"stages": TWO_STAGES, **options}
    return StackedKMeans(n_patches=600, seed=0, **options).fit(IMAGES.astype(dtype)), IMAGES.shape[1:]


CASES = [(kind, name, options) for kind, table in (("kmeans", KMEANS), ("conv-kmeans", CONV),
                                                    ("stacked-kmeans", STACKED)) for name, options in table.items()]


@pytest.mark.parametrize("kind, options", [c[::2] for c in CASES], ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_frozen_extractors_export_with_a_head(kind, options):
    """The features alone (tight) and the README's model ``Sequential([Frozen(extractor), Dense])``, at two
    batch sizes of held-out inputs and of the training data."""
    extractor, sample = fitted(kind, options)
    data = ROWS if kind == "kmeans" else IMAGES
    inputs = [data[:9], np.random.default_rng(2).standard_normal((3,) + sample).astype(np.float32)]
    check_onnx_export(L.Frozen(extractor), (None,) + sample, inputs, rtol=1e-5)
    n_features = extractor.transform(data[:1]).shape[1]
    model = nk.Sequential([L.Frozen(extractor), L.Dense(n_features, 3)], seed=0)
    check_onnx_export(model, (None,) + sample, inputs, rtol=1e-5)


@pytest.mark.parametrize("kind, options", [("kmeans", KMEANS["standardize"]), ("conv-kmeans", CONV["hard"]),
                                           ("stacked-kmeans", STACKED["groups-standardize"])])
def test_float64_models_export_as_double(kind, options):
    """No Conv in the graphs: onnxruntime runs them in double, to float64 rounding."""
    extractor, sample = fitted(kind, options, np.float64)
    assert check_onnx_export(L.Frozen(extractor).astype(np.float64), (2,) + sample, rtol=1e-12) <= 1e-12


def test_a_trained_model_and_a_frozen_sequential_around_it():
    """The README's model trained on digits (the held-out set through onnxruntime), then frozen in turn under
    another head."""
    X, y, X_test, _ = nk.datasets.load("digits")
    km = KMeans(30, max_iter=20, seed=0).fit(X)
    model = nk.Sequential([L.Frozen(km), L.Dense(30, 10)], seed=0)
    nk.train(model, X, y, epochs=2, batch_size=128, seed=0, progress=False)
    check_onnx_export(model, (None, 64), [X_test, X_test[:1]], rtol=1e-5)
    check_onnx_export(nk.Sequential([L.Frozen(model), L.Tanh(), L.Dense(10, 2)], seed=1), (4, 64), X_test[:4],
                      rtol=1e-5)


def test_the_exporters_are_registered_by_class():
    for cls in (KMeans, ConvKMeans, StackedKMeans):
        assert nk.registry.exporters.provider(cls).distribution == "nkernels-kmeans"


@pytest.mark.parametrize("opset", [13, 21])
def test_the_graphs_hold_from_the_lowest_opset_to_a_recent_one(opset):
    """ReduceSum takes its axes as an input from opset 13 on, and the other Reduce ops only from 18."""
    extractor, sample = fitted("stacked-kmeans", STACKED["groups-standardize"])
    check_onnx_export(L.Frozen(extractor), (3,) + sample, rtol=1e-5, opset=opset)
    extractor, sample = fitted("kmeans", KMEANS["minibatch-hard-spherical-standardize"])
    check_onnx_export(L.Frozen(extractor), (3,) + sample, rtol=1e-5, opset=opset)
