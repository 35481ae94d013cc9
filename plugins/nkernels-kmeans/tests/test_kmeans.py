"""The ``kmeans`` extractor: Lloyd against a NumPy reference and scikit-learn, the objective, determinism,
mini-batches, spherical k-means, encodings, the state protocol, bad input, and the digits figure."""
import json

import numpy as np
import pytest

import nkernels as nk
from nkernels.errors import NotFittedError
from nkernels_kmeans import KMeans


# -- references ----------------------------------------------------------------------------------
def sq_distances(X, C):
    return ((X[:, None, :] - C[None, :, :]) ** 2).sum(axis=2)


def ref_lloyd(X, C, max_iter):
    """Plain Lloyd from C: assign, stop when the assignment repeats, move each centroid to its mean."""
    C = C.copy()
    previous, history = None, []
    for _ in range(max_iter):
        d = sq_distances(X, C)
        labels = d.argmin(axis=1)
        history.append(d.min(axis=1).sum())
        if previous is not None and np.array_equal(labels, previous):
            break
        previous = labels
        for j in range(len(C)):
            assert np.any(labels == j), "the reference does not handle empty clusters"
            C[j] = X[labels == j].mean(axis=0)
    return C, labels, history


def ref_triangle(X, C):
    z = np.sqrt(sq_distances(X, C))
    return np.maximum(z.mean(axis=1, keepdims=True) - z, 0.0)


def blobs(n=600, d=5, k=4, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)) * 4
    y = rng.integers(0, k, n)
    return centers[y] + spread * rng.standard_normal((n, d)), y, centers


# -- Lloyd ---------------------------------------------------------------------------------------
def test_lloyd_matches_the_numpy_reference():
    X = np.random.default_rng(0).standard_normal((300, 4))
    init = X[:12].copy()
    km = KMeans(12, init=init, tol=0.0, max_iter=100).fit(X)
    C, labels, history = ref_lloyd(X, init, 100)
    np.testing.assert_allclose(km.cluster_centers_, C, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(km.labels_, labels)
    np.testing.assert_allclose(km.objective_history_, history, rtol=1e-10)
    assert km.inertia_ == pytest.approx(history[-1], rel=1e-10)


def test_lloyd_matches_scikit_learn_from_the_same_start():
    from sklearn.cluster import KMeans as SKKMeans

    X = np.random.default_rng(1).standard_normal((500, 6))
    init = X[np.random.default_rng(2).choice(500, 20, replace=False)]
    ours = KMeans(20, init=init, tol=0.0).fit(X)
    theirs = SKKMeans(20, init=init, n_init=1, tol=0.0, algorithm="lloyd").fit(X)
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=1e-8, atol=1e-10)
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=1e-8)


@pytest.mark.parametrize("spherical", [False, True])
def test_the_objective_never_increases(spherical):
    X = np.random.default_rng(3).standard_normal((400, 5))
    init = np.random.default_rng(4).standard_normal((25, 5))
    init[:5] += 50.0  # five centroids far from every row: their clusters start empty and are relocated
    km = KMeans(25, init=init, tol=0.0, max_iter=200, spherical=spherical).fit(X)
    history = np.array(km.objective_history_)
    assert len(history) > 3
    assert np.all(np.diff(history) <= 1e-10 * history[0])
    assert len(np.unique(km.labels_)) == 25  # the relocated centroids took rows


def test_same_seed_same_centroids_and_codes():
    X, _, _ = blobs(seed=5)
    a, b = KMeans(10, seed=7).fit(X), KMeans(10, seed=7).fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    assert not np.array_equal(KMeans(10, seed=8).fit(X).cluster_centers_, a.cluster_centers_)


def test_kmeans_plus_plus_finds_separated_blobs():
    X, y, centers = blobs(k=4, seed=6)
    km = KMeans(4, seed=0).fit(X)
    nearest = sq_distances(centers, km.cluster_centers_).min(axis=1)
    assert np.all(nearest < 0.1)


def test_minibatch_finds_the_blobs_and_is_deterministic():
    X, y, centers = blobs(n=3000, d=8, k=5, seed=7)
    X = X.astype(np.float32)
    km = KMeans(5, algorithm="minibatch", batch_size=256, max_iter=10, seed=1).fit(X)
    assert np.all(sq_distances(centers, km.cluster_centers_.astype(np.float64)).min(axis=1) < 0.05)
    lloyd = KMeans(5, seed=1).fit(X)
    assert km.inertia_ <= 1.02 * lloyd.inertia_
    again = KMeans(5, algorithm="minibatch", batch_size=256, max_iter=10, seed=1).fit(X)
    np.testing.assert_array_equal(km.cluster_centers_, again.cluster_centers_)


def test_spherical_clusters_directions():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((300, 6)) * rng.uniform(0.1, 10, (300, 1))  # lengths must not matter
    km = KMeans(7, spherical=True, seed=0).fit(X)
    C = km.cluster_centers_
    np.testing.assert_allclose(np.linalg.norm(C, axis=1), 1.0, rtol=1e-12)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    np.testing.assert_array_equal(km.predict(X), (unit @ C.T).argmax(axis=1))
    np.testing.assert_array_equal(km.predict(X * 3.0), km.predict(X))


# -- encodings -----------------------------------------------------------------------------------
def test_triangle_and_hard_codes():
    X, _, _ = blobs(seed=9)
    km = KMeans(6, seed=0).fit(X)
    np.testing.assert_allclose(km.transform(X), ref_triangle(X, km.cluster_centers_), rtol=1e-10, atol=1e-10)
    hard = KMeans(6, encoding="hard", seed=0).fit(X)
    np.testing.assert_array_equal(hard.transform(X), np.eye(6)[sq_distances(X, hard.cluster_centers_).argmin(1)])


def test_standardized_codes():
    X, _, _ = blobs(seed=10)
    km = KMeans(6, standardize=True, seed=0).fit(X)
    codes = km.transform(X)
    raw = ref_triangle(X, km.cluster_centers_)
    np.testing.assert_allclose(codes, (raw - raw.mean(0)) / raw.std(0), rtol=1e-8, atol=1e-8)


def test_float32_in_float32_out():
    X, _, _ = blobs(seed=11)
    km = KMeans(5, seed=0).fit(X.astype(np.float32))
    assert km.cluster_centers_.dtype == np.float32 and km.transform(X).dtype == np.float32
    np.testing.assert_allclose(km.transform(X), ref_triangle(X, km.cluster_centers_.astype(np.float64)),
                               rtol=1e-3, atol=1e-3)


# -- the state protocol and registration ----------------------------------------------------------
def test_registered_through_the_entry_point():
    assert nk.registry.extractors["kmeans"] is KMeans
    entry = nk.registry.extractors.provider("kmeans")
    assert (entry.plugin, entry.distribution) == ("kmeans", "nkernels-kmeans")


def test_config_and_state_rebuild_the_extractor():
    X, _, _ = blobs(seed=12)
    km = KMeans(6, init=X[:6], standardize=True, seed=3).fit(X)
    config = json.loads(json.dumps(km.get_config()))
    rebuilt = KMeans.from_config(config).load_state_arrays({k: v.copy() for k, v in km.state_arrays().items()})
    np.testing.assert_array_equal(rebuilt.transform(X), km.transform(X))
    assert rebuilt.get_config() == config
    with pytest.raises(ValueError, match="missing \\['feature_mean', 'feature_std'\\]"):
        KMeans.from_config(config).load_state_arrays({"centroids": km.cluster_centers_})


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, match", [
    ({"n_clusters": 0}, ValueError, "n_clusters must be at least 1"),
    ({"n_clusters": 2.5}, TypeError, "n_clusters must be an integer"),
    ({"init": "kmeans"}, ValueError, "init must be one of"),
    ({"n_clusters": 2, "init": np.zeros((3, 2))}, ValueError, "init as an array must hold 2"),
    ({"algorithm": "elkan"}, ValueError, "algorithm must be one of 'lloyd', 'minibatch'"),
    ({"encoding": "soft"}, ValueError, "encoding must be one of 'triangle', 'hard'"),
    ({"tol": -1.0}, ValueError, "tol must be a finite number at least 0, got -1.0"),
    ({"spherical": 1}, TypeError, "spherical must be True or False"),
    ({"seed": 1.5}, TypeError, "seed must be an integer or None"),
])
def test_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        KMeans(**kwargs)


def test_bad_data():
    X = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(ValueError, match="needs at least as many samples"):
        KMeans(11).fit(X)
    with pytest.raises(ValueError, match="NaN or infinite"):
        KMeans(2).fit(np.where(X > 1, np.nan, X))
    with pytest.raises(ValueError, match="2-D array"):
        KMeans(2).fit(X.reshape(10, 3, 1))
    with pytest.raises(ValueError, match="empty"):
        KMeans(2).fit(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="init centroids have 2 features but X has 3"):
        KMeans(2, init=np.zeros((2, 2))).fit(X)
    with pytest.raises(NotFittedError, match="call fit"):
        KMeans(2).transform(X)
    with pytest.raises(ValueError, match="X has 4 features but the extractor was fitted on 3"):
        KMeans(2).fit(X).transform(np.zeros((2, 4)))


# -- the digits figure -----------------------------------------------------------------------------
def head_accuracy(first, n_features, X, y, X_test, y_test):
    """A logistic-regression head (Dense + softmax cross-entropy) trained by nk.train on top of ``first``."""
    L = nk.layers
    model = nk.Sequential(first + [L.Dense(n_features, 10)], seed=0)
    nk.train(model, X, y, epochs=40, batch_size=256, optimizer="adam", lr=3e-2, seed=0)
    return model, nk.evaluate(model, X_test, y_test)["accuracy"]


def test_digits_kmeans_features_beat_raw_pixels_and_reach_98_percent(tmp_path):
    X, y, X_test, y_test = nk.datasets.load("digits")
    km = KMeans(200, encoding="triangle", seed=0).fit(X)
    model, accuracy = head_accuracy([nk.layers.Frozen(km)], 200, X, y, X_test, y_test)
    _, raw = head_accuracy([], 64, X, y, X_test, y_test)
    assert accuracy >= 0.98 and accuracy > raw
    nk.save(model, tmp_path / "kmeans-head.safetensors")
    loaded = nk.load(tmp_path / "kmeans-head.safetensors")
    assert isinstance(loaded[0].extractor, KMeans)
    np.testing.assert_array_equal(loaded.predict(X_test), model.predict(X_test))
