"""The ``pmi-factorization`` and ``stacked-pmi`` extractors: shapes, the factorization, determinism, the stack
through Frozen, the state protocol and nk.save/nk.load, bad options and bad data."""
import json

import numpy as np
import pytest

import nkernels as nk
from nkernels.errors import NotFittedError
from nkernels_pmi import PMIFactorization, StackedPMI

L = nk.layers
DIGITS = nk.datasets.load("digits")
X, X_TEST = DIGITS[0][:300], DIGITS[2][:40]


def test_registered_through_the_entry_point():
    assert nk.registry.extractors["pmi-factorization"] is PMIFactorization
    assert nk.registry.extractors["stacked-pmi"] is StackedPMI
    assert nk.registry.extractors.provider("stacked-pmi").distribution == "nkernels-pmi"


@pytest.mark.parametrize("nonlinearity, width", [("relu-pm", 32), ("relu", 16), ("linear", 16)])
def test_shapes_dtypes_and_the_nonlinearity(nonlinearity, width):
    stage = PMIFactorization(16, nonlinearity=nonlinearity).fit(X)
    F = stage.transform(X_TEST)
    assert F.shape == (40, width) == (40, stage.n_features_out) and F.dtype == np.float32
    if nonlinearity != "linear":
        assert F.min() == 0.0
    if nonlinearity == "relu-pm":  # the positive and the negative part of each projection: one of them is 0
        assert np.all(np.minimum(F[:, :16], F[:, 16:]) == 0)
        z = PMIFactorization(16, nonlinearity="linear").fit(X).transform(X_TEST)
        np.testing.assert_allclose(F[:, :16] - F[:, 16:], z, rtol=1e-6, atol=1e-6)
    assert PMIFactorization(8).fit(X.astype(np.float64)).transform(X_TEST).dtype == np.float64


@pytest.mark.parametrize("activation", ["soft", "binary"])
def test_the_components_are_the_top_singular_vectors_of_the_pmi_matrix(activation):
    """A NumPy reference of the whole fit and transform: PPMI, U_k S_k^p, centred projections over their RMS."""
    Xd = X.astype(np.float64)
    stage = PMIFactorization(10, activation=activation, singular_power=0.5).fit(Xd)
    scale = np.where(Xd.max(0) > 0, Xd.max(0), 1.0)
    A = Xd / scale
    A = (A > 0.5).astype(float) if activation == "binary" else A
    joint = (A.T @ A + 1) / (len(A) + 1)
    single = (A.sum(0) + 1) / (len(A) + 1)
    P = np.maximum(np.log(joint / np.outer(single, single)), 0)
    np.testing.assert_allclose(stage.pmi_, P, rtol=1e-10, atol=1e-12)
    U, S, _ = np.linalg.svd(P)
    W = stage.state_arrays()["components"]
    np.testing.assert_allclose(np.abs(W), np.abs(U[:, :10] * np.sqrt(S[:10])), rtol=1e-8, atol=1e-10)
    z = (X_TEST / scale) @ W
    train = (Xd / scale) @ W
    z = (z - train.mean(0)) / np.sqrt(np.mean((train - train.mean(0)) ** 2))
    np.testing.assert_allclose(stage.transform(X_TEST), np.hstack([np.maximum(z, 0), np.maximum(-z, 0)]),
                               rtol=1e-10, atol=1e-10)


def test_nmf_factors_are_non_negative_and_random_ones_ignore_the_data():
    nmf = PMIFactorization(8, factorization="nmf", max_iter=50, seed=0).fit(X)
    assert nmf.state_arrays()["components"].min() >= 0
    a = PMIFactorization(8, factorization="random", seed=3).fit(X).state_arrays()["components"]
    b = PMIFactorization(8, factorization="random", seed=3).fit(X[::-1] * 0.5).state_arrays()["components"]
    np.testing.assert_array_equal(a, b)


def test_same_seed_same_features():
    for options in ({}, {"factorization": "nmf", "max_iter": 30}, {"factorization": "random"}):
        a = StackedPMI((12, 8), seed=5, **options).fit(X).transform(X_TEST)
        np.testing.assert_array_equal(a, StackedPMI((12, 8), seed=5, **options).fit(X).transform(X_TEST))
    first = StackedPMI((12, 8), factorization="random", seed=5).fit(X).transform(X_TEST)
    assert not np.array_equal(first, StackedPMI((12, 8), factorization="random", seed=6).fit(X).transform(X_TEST))


def test_the_stack_is_its_stages_composed_through_frozen():
    stack = StackedPMI([16, {"n_components": 8, "nonlinearity": "relu"}], concat=False, activation="soft").fit(X)
    assert [s.n_components for s in stack.stages_] == [16, 8] and stack.stages_[0].activation == "soft"
    by_hand = PMIFactorization(16, activation="soft").fit(X)
    top = PMIFactorization(8, activation="soft", nonlinearity="relu").fit(by_hand.transform(X))
    chain = nk.Sequential([L.Frozen(by_hand), L.Frozen(top)])
    np.testing.assert_array_equal(stack.transform(X_TEST), chain(X_TEST))
    both = StackedPMI([16, {"n_components": 8, "nonlinearity": "relu"}], activation="soft").fit(X)
    np.testing.assert_array_equal(both.transform(X_TEST),
                                  np.hstack([by_hand.transform(X_TEST), top.transform(by_hand.transform(X_TEST))]))
    assert both.n_features_out == 40


def test_config_and_state_rebuild_the_extractor():
    stack = StackedPMI([12, {"n_components": 6, "scale": "component"}], shift=0.5, seed=2).fit(X)
    config = json.loads(json.dumps(stack.get_config()))
    rebuilt = StackedPMI.from_config(config).load_state_arrays({k: v.copy() for k, v in stack.state_arrays().items()})
    np.testing.assert_array_equal(rebuilt.transform(X_TEST), stack.transform(X_TEST))
    assert rebuilt.get_config() == config
    with pytest.raises(ValueError, match=r"missing \['stage1.spread'\]"):
        StackedPMI.from_config(config).load_state_arrays(
            {k: v for k, v in stack.state_arrays().items() if k != "stage1.spread"})


@pytest.mark.parametrize("extractor", [PMIFactorization(12, activation="soft", scale="none"),
                                       StackedPMI((12, 6), factorization="nmf", max_iter=30, seed=1)],
                         ids=["stage", "stack"])
def test_save_and_load_round_trip_exactly(tmp_path, extractor):
    extractor.fit(X)
    model = nk.Sequential([L.Frozen(extractor), L.Dense(extractor.n_features_out, 10)], seed=0)
    nk.save(model, tmp_path / "pmi.safetensors")
    loaded = nk.load(tmp_path / "pmi.safetensors")
    assert type(loaded[0].extractor) is type(extractor)
    assert loaded[0].extractor.get_config() == extractor.get_config()
    np.testing.assert_array_equal(loaded(X_TEST), model(X_TEST))
    for name, value in extractor.state_arrays().items():
        np.testing.assert_array_equal(loaded[0].extractor.state_arrays()[name], value)


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, match", [
    ({"n_components": 0}, ValueError, "n_components must be at least 1"),
    ({"activation": "tanh"}, ValueError, "activation must be one of 'soft', 'binary'"),
    ({"activation": "soft", "threshold": 0.3}, ValueError, "threshold has an effect only with activation='binary'"),
    ({"threshold": 1.0}, ValueError, "threshold must be"),
    ({"smoothing": 0.0}, ValueError, "smoothing must be"),
    ({"shift": -1.0}, ValueError, "shift must be"),
    ({"factorization": "pca"}, ValueError, "factorization must be one of 'svd', 'nmf', 'random'"),
    ({"factorization": "nmf", "singular_power": 1.0}, ValueError, "singular_power has an effect only with"),
    ({"max_iter": 10}, ValueError, "max_iter has an effect only with factorization='nmf'"),
    ({"factorization": "nmf", "positive": False}, ValueError, "needs a non-negative matrix"),
    ({"nonlinearity": "tanh"}, ValueError, "nonlinearity must be one of"),
    ({"scale": "max"}, ValueError, "scale must be one of"),
    ({"positive": 1}, TypeError, "positive must be True or False"),
    ({"seed": -1}, ValueError, "seed must be"),
])
def test_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        PMIFactorization(**kwargs)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"stages": []}, ValueError, "stages must be a non-empty list"),
    ({"stages": [8, {"n_components": 4, "seed": 1}]}, ValueError, r"stage 1 has unknown keys \['seed'\]"),
    ({"stages": [8, 0]}, ValueError, "stage 1: n_components must be at least 1"),
    ({"stages": [{"n_components": 8, "nonlinearity": "linear"}, 4]}, ValueError, "stage 0 has nonlinearity='linear'"),
    ({"n_clusters": 3}, ValueError, r"unknown stage options \['n_clusters'\]"),
    ({"concat": "yes"}, TypeError, "concat must be True or False"),
])
def test_bad_stack_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        StackedPMI(**kwargs)


def test_bad_data():
    with pytest.raises(NotFittedError, match="call fit"):
        PMIFactorization(4).transform(X)
    with pytest.raises(NotFittedError, match="call fit"):
        StackedPMI((4, 4)).state_arrays()
    with pytest.raises(ValueError, match="negative values .* rectify or shift"):
        PMIFactorization(4).fit(X - 0.5)
    with pytest.raises(ValueError, match="n_components=65 exceeds the 64 input locations"):
        PMIFactorization(65).fit(X)
    with pytest.raises(ValueError, match="stage 1: n_components=200 exceeds the 16"):
        StackedPMI((8, 200)).fit(X)
    with pytest.raises(ValueError, match="at least 2 samples"):
        PMIFactorization(4).fit(X[:1])
    with pytest.raises(ValueError, match="NaN or infinite"):
        PMIFactorization(4).fit(np.where(X > 0.9, np.nan, X))
    with pytest.raises(ValueError, match="X has 10 features but the extractor was fitted on 64"):
        PMIFactorization(4).fit(X).transform(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="2-D array"):
        PMIFactorization(4).fit(X.reshape(300, 1, 8, 8))
