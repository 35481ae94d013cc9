"""``conv-kmeans`` and ``stacked-kmeans``: each step against a NumPy reference, the receptive fields,
the state protocol through nk.save/nk.load, bad input, and the digits figures."""
import json

import numpy as np
import pytest

import nkernels as nk
from nkernels.errors import NotFittedError
from nkernels_kmeans import ConvKMeans, StackedKMeans
from nkernels_kmeans.stacked import receptive_fields


# -- references ----------------------------------------------------------------------------------
def ref_patch(image, y, x, ph, pw, eps):
    """One patch, contrast-normalized (eps=None: as it is)."""
    p = image[:, y:y + ph, x:x + pw].ravel()
    return p if eps is None else (p - p.mean()) / np.sqrt(p.var() + eps)


def ref_codes(images, mean, whitening, centroids, ph, pw, stride, eps):
    """Triangle codes (N, k, ny, nx) of every patch position: normalize, whiten, encode."""
    n, _, h, w = images.shape
    ny, nx = (h - ph) // stride + 1, (w - pw) // stride + 1
    out = np.zeros((n, len(centroids), ny, nx))
    for i in range(n):
        for y in range(ny):
            for x in range(nx):
                z = (ref_patch(images[i], y * stride, x * stride, ph, pw, eps) - mean) @ whitening
                dist = np.sqrt(((z - centroids) ** 2).sum(axis=1))
                out[i, :, y, x] = np.maximum(dist.mean() - dist, 0.0)
    return out


def ref_sum_pool(maps, rows, cols):
    """Maps summed over regions: ``rows`` and ``cols`` are lists of index lists, one per region."""
    return np.stack([np.stack([maps[:, :, r][:, :, :, c].sum(axis=(2, 3)) for c in cols], axis=-1)
                     for r in rows], axis=-2)


def halves(n):
    """The two quadrant index lists of n positions (the first one larger when n is odd)."""
    first = (n + 1) // 2
    return [list(range(first)), list(range(first, n))]


def images(n=12, channels=1, size=7, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, channels, size, size))


# -- conv-kmeans -----------------------------------------------------------------------------------
def test_fit_normalizes_whitens_and_clusters_the_patches():
    X = images(10, 2, 5)
    ck = ConvKMeans(6, patch_size=3, n_patches=10**6, norm_eps=0.05, zca_eps=0.1, tol=0.0, max_iter=300,
                    seed=0).fit(X)
    state = ck.state_arrays()
    patches = np.array([ref_patch(x, y, c, 3, 3, 0.05) for x in X for y in range(3) for c in range(3)])
    np.testing.assert_allclose(state["mean"], patches.mean(0), rtol=1e-10, atol=1e-12)
    values, vectors = np.linalg.eigh(np.cov(patches, rowvar=False))
    np.testing.assert_allclose(state["whitening"], vectors @ np.diag((values + 0.1) ** -0.5) @ vectors.T,
                               rtol=1e-8, atol=1e-10)
    Z = (patches - state["mean"]) @ state["whitening"]
    labels = ((Z[:, None] - state["centroids"][None]) ** 2).sum(2).argmin(1)
    for j in range(6):  # Lloyd converged: each centroid is the mean of its patches
        np.testing.assert_allclose(state["centroids"][j], Z[labels == j].mean(0), rtol=1e-8, atol=1e-10)


def test_whitening_decorrelates():
    from nkernels_kmeans.patches import fit_zca

    rng = np.random.default_rng(1)
    P = rng.standard_normal((5000, 6)) @ rng.standard_normal((6, 6))
    mean, W = fit_zca(P, 1e-9)
    np.testing.assert_allclose(np.cov((P - mean) @ W, rowvar=False), np.eye(6), atol=1e-6)
    np.testing.assert_allclose(W, W.T, atol=1e-12)


@pytest.mark.parametrize("stride, grid", [(1, 2), (2, 3)])
def test_transform_is_the_convolutional_encoding_pooled_over_a_grid(stride, grid):
    X = images(8, 2, 7, seed=2)
    ck = ConvKMeans(5, patch_size=3, stride=stride, pool_grid=grid, norm_eps=0.02, seed=1).fit(X)
    s = ck.state_arrays()
    codes = ref_codes(X, s["mean"], s["whitening"], s["centroids"], 3, 3, stride, 0.02)
    n = codes.shape[2]
    regions = [list(np.flatnonzero(np.arange(n) * grid // n == g)) for g in range(grid)]
    expected = ref_sum_pool(codes, regions, regions).reshape(8, -1)
    np.testing.assert_allclose(ck.transform(X), expected, rtol=1e-8, atol=1e-8)


def test_hard_codes_count_the_nearest_centroid_per_quadrant():
    X = images(6, 1, 6, seed=3)
    ck = ConvKMeans(4, patch_size=3, encoding="hard", seed=0).fit(X)
    features = ck.transform(X).reshape(6, 4, 2, 2)
    np.testing.assert_array_equal(features.sum(axis=1), np.full((6, 2, 2), 4.0))  # 2 x 2 positions a quadrant


def test_conv_state_round_trip_and_determinism():
    X = images(10, 1, 6, seed=4).astype(np.float32)
    a = ConvKMeans(5, patch_size=3, n_patches=50, standardize=True, seed=3).fit(X)
    b = ConvKMeans.from_config(json.loads(json.dumps(a.get_config())))
    b.load_state_arrays({k: v.copy() for k, v in a.state_arrays().items()})
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    np.testing.assert_array_equal(ConvKMeans(5, patch_size=3, n_patches=50, standardize=True, seed=3).fit(X)
                                  .transform(X), a.transform(X))
    assert a.transform(X).dtype == np.float32


def test_conv_bad_input():
    with pytest.raises(ValueError, match="patch_size must be an int or a pair"):
        ConvKMeans(patch_size=(1, 2, 3))
    with pytest.raises(ValueError, match="norm_eps must be a finite number above 0, got 0.0"):
        ConvKMeans(norm_eps=0)
    with pytest.raises(ValueError, match=r"images of shape \(N, C, H, W\)"):
        ConvKMeans(4).fit(np.zeros((5, 64)))
    with pytest.raises(ValueError, match="does not fit in images"):
        ConvKMeans(4, patch_size=9).fit(images(3, 1, 8))
    with pytest.raises(ValueError, match="need at least as many patches"):
        ConvKMeans(50, patch_size=3).fit(images(2, 1, 4))
    with pytest.raises(NotFittedError):
        ConvKMeans(4).transform(images(2))
    ck = ConvKMeans(4, patch_size=3).fit(images(4, 1, 6))
    with pytest.raises(ValueError, match=r"fitted on \(1, 6, 6\)"):
        ck.transform(images(2, 1, 7))


# -- stacked-kmeans --------------------------------------------------------------------------------
def test_stacked_is_each_stage_on_the_window_pooled_maps_below():
    X = images(8, 1, 8, seed=5)
    stages = [{"n_clusters": 6, "patch_size": 3}, {"n_clusters": 4, "patch_size": 2}]
    sk = StackedKMeans(stages, pool_size=2, norm_eps=0.03, seed=0).fit(X)
    s = sk.state_arrays()
    first = ref_codes(X, s["stage0.group0.mean"], s["stage0.group0.whitening"], s["stage0.group0.centroids"],
                      3, 3, 1, 0.03)                                      # (8, 6, 6, 6)
    windows = [[0, 1], [2, 3], [4, 5]]
    pooled = ref_sum_pool(first, windows, windows)                        # (8, 6, 3, 3)
    second = ref_codes(pooled, s["stage1.group0.mean"], s["stage1.group0.whitening"],
                       s["stage1.group0.centroids"], 2, 2, 1, 0.03)       # (8, 4, 2, 2)
    expected = np.concatenate([ref_sum_pool(pooled, halves(3), halves(3)).reshape(8, -1),
                               ref_sum_pool(second, halves(2), halves(2)).reshape(8, -1)], axis=1)
    np.testing.assert_allclose(sk.transform(X), expected, rtol=1e-7, atol=1e-7)
    top_only = StackedKMeans(stages, pool_size=2, norm_eps=0.03, concat=False, seed=0).fit(X)
    np.testing.assert_allclose(top_only.transform(X), expected[:, 6 * 4:], rtol=1e-7, atol=1e-7)


def ref_similarity(maps):
    v = maps.transpose(1, 0, 2, 3).reshape(maps.shape[1], -1)
    v = (v - v.mean(1, keepdims=True)) / v.std(1, keepdims=True)
    return np.corrcoef(v ** 2)


def test_receptive_fields_group_maps_whose_energies_correlate():
    rng = np.random.default_rng(6)
    energy = rng.uniform(0, 3, (3, 200, 4, 4))  # three hidden sources, four maps each
    maps = np.concatenate([energy[g][:, None] * rng.standard_normal((200, 4, 4, 4)) for g in range(3)], axis=1)
    groups = receptive_fields(maps, 5, 4, np.random.default_rng(0))
    truth = [set(range(4 * g, 4 * g + 4)) for g in range(3)]
    assert len(groups) == 5 and all(set(g.tolist()) in truth for g in groups)
    similarity = ref_similarity(maps)
    for group in groups:  # each group is some map and its three most similar others
        assert any(set(np.argsort(-similarity[c])[:4].tolist()) == set(group.tolist()) for c in group)


def test_stacked_with_receptive_fields_saves_and_loads_inside_a_model(tmp_path):
    X = images(30, 1, 8, seed=7).astype(np.float32)
    y = np.arange(30) % 3
    stages = [{"n_clusters": 8, "patch_size": 3},
              {"n_clusters": 3, "patch_size": 2, "groups": 4, "group_size": 3}]
    sk = StackedKMeans(stages, n_patches=400, standardize=True, seed=1).fit(X)
    names = sk.state_arrays()
    assert {f"stage1.group{g}.channels" for g in range(4)} <= set(names)
    assert all(len(names[f"stage1.group{g}.channels"]) == 3 for g in range(4))
    features = sk.transform(X)
    assert features.shape == (30, 8 * 4 + 4 * 3 * 4)
    model = nk.Sequential([nk.layers.Frozen(sk), nk.layers.Flatten(), nk.layers.Dense(features.shape[1], 3)],
                          seed=0)
    nk.train(model, X, y, epochs=2, batch_size=10, seed=0)
    nk.save(model, tmp_path / "stacked.safetensors")
    loaded = nk.load(tmp_path / "stacked.safetensors")
    np.testing.assert_array_equal(loaded(X), model(X))
    again = StackedKMeans(stages, n_patches=400, standardize=True, seed=1).fit(X)
    np.testing.assert_array_equal(again.transform(X), features)


def test_stacked_bad_input():
    with pytest.raises(ValueError, match="non-empty list"):
        StackedKMeans([])
    with pytest.raises(ValueError, match="unknown keys \\['size'\\]"):
        StackedKMeans([{"n_clusters": 4, "size": 3}])
    with pytest.raises(ValueError, match="give both groups and group_size"):
        StackedKMeans([{"n_clusters": 4, "groups": 2}])
    with pytest.raises(ValueError, match="stage 1: patch_size \\(3, 3\\) does not fit"):
        StackedKMeans([{"n_clusters": 4, "patch_size": 3}, {"n_clusters": 4, "patch_size": 3}]).fit(images(6, 1, 6))
    with pytest.raises(ValueError, match="group_size=9 exceeds the 4 maps"):
        StackedKMeans([{"n_clusters": 4, "patch_size": 3},
                       {"n_clusters": 2, "patch_size": 1, "groups": 2, "group_size": 9}]).fit(images(6, 1, 6))


# -- the digits figures ------------------------------------------------------------------------------
def head_accuracy(extractor, X, y, X_test, y_test):
    """A logistic-regression head trained by nk.train on the extractor's features."""
    F, F_test = extractor.transform(X), extractor.transform(X_test)
    model = nk.Sequential([nk.layers.Dense(F.shape[1], 10)], seed=0)
    nk.train(model, F, y, epochs=30, batch_size=128, optimizer="adam", lr=3e-3, seed=0)
    return nk.evaluate(model, F_test, y_test)["accuracy"]


@pytest.fixture(scope="module")
def digit_images():
    return nk.datasets.load("digits", flat=False)


def test_digits_conv_kmeans_reaches_98_5_percent(digit_images):
    X, y, X_test, y_test = digit_images
    ck = ConvKMeans(200, patch_size=4, n_patches=20_000, max_iter=30, standardize=True, seed=0).fit(X)
    assert head_accuracy(ck, X, y, X_test, y_test) >= 0.985


def test_digits_stacked_kmeans_reaches_98_5_percent(digit_images):
    X, y, X_test, y_test = digit_images
    sk = StackedKMeans([{"n_clusters": 64, "patch_size": 3}, {"n_clusters": 128, "patch_size": 2}],
                       n_patches=20_000, max_iter=30, standardize=True, seed=0).fit(X)
    assert head_accuracy(sk, X, y, X_test, y_test) >= 0.985
