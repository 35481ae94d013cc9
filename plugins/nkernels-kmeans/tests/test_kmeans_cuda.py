"""k-means on the GPU (under the CUDA simulator in CI: tiny shapes): the assignment step and the codes
against their CPU twins, a Lloyd fit on "cuda", and Frozen extractors moving with their model."""
import numpy as np
import pytest
from nkernels_kmeans import ConvKMeans, KMeans, StackedKMeans
from nkernels_kmeans import cuda as G
from nkernels_kmeans import kernels as K

import nkernels as nk
from nkernels.runtime import devices

pytestmark = pytest.mark.cuda
L = nk.layers


def blobs(n=14, d=3, k=4, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-5, 5, (k, d))
    return (centers[rng.integers(0, k, n)] + 0.3 * rng.standard_normal((n, d))).astype(dtype), centers.astype(dtype)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_the_assignment_step_matches_its_cpu_twin(dtype, rtol):
    X, C = blobs(dtype=dtype)
    cross = X @ C.T
    x_sq, c_sq = np.einsum("ij,ij->i", X, X), np.einsum("ij,ij->i", C, C)
    labels, min_dist = np.empty(len(X), np.int64), np.empty(len(X), dtype)
    K.nearest_centroid(cross, x_sq, c_sq, labels, min_dist)
    blocks = 3
    sums, counts = np.empty(C.shape), np.empty(len(C), np.int64)
    K.cluster_sums(X, labels, np.empty((blocks,) + C.shape), np.empty((blocks, len(C)), np.int64), sums, counts)
    ws = G.Workspace(len(X), len(C), X.shape[1], dtype)
    got = G.assign_and_sum(devices.to_device(X), devices.to_device(C), ws)
    got_labels, got_dist, got_sums, got_counts = (devices.to_host(a) for a in got)
    np.testing.assert_array_equal(got_labels, labels)
    np.testing.assert_array_equal(got_counts, counts)
    np.testing.assert_allclose(got_dist, min_dist, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(got_sums, sums, rtol=rtol)
    assert G.Workspace.for_shape(ws, len(X), len(C), X.shape[1], dtype) is ws


@pytest.mark.parametrize("options", [{}, {"encoding": "hard"}, {"spherical": True, "standardize": True}],
                         ids=["triangle", "hard", "spherical-standardized"])
def test_codes_of_a_device_array_match_the_host_codes(options):
    X, _ = blobs(16)
    km = KMeans(4, seed=0, **options).fit(X)
    codes = km.transform(devices.to_device(X[:7]))
    assert devices.is_device_array(codes)
    np.testing.assert_allclose(devices.to_host(codes), km.transform(X[:7]), rtol=1e-10, atol=1e-12)
    km.cluster_centers_[0] += 1.0  # written in place (as a load does): the device copy follows
    np.testing.assert_allclose(devices.to_host(km.transform(devices.to_device(X[:7]))), km.transform(X[:7]),
                               rtol=1e-10, atol=1e-12)


def test_a_lloyd_fit_on_cuda_finds_the_cpu_centroids():
    X, _ = blobs(20)
    cpu = KMeans(4, seed=1, tol=0.0).fit(X)
    gpu = KMeans(4, seed=1, tol=0.0).to("cuda").fit(X)
    np.testing.assert_allclose(gpu.cluster_centers_, cpu.cluster_centers_, rtol=1e-12)
    np.testing.assert_array_equal(gpu.labels_, cpu.labels_)
    assert gpu.n_iter_ == cpu.n_iter_
    with pytest.raises(ValueError, match="mini-batch k-means has no GPU path"):
        KMeans(4, algorithm="minibatch").to("cuda").fit(X)


def test_frozen_extractors_move_to_the_gpu_with_their_model(tmp_path):
    X, _ = blobs(10, d=16)
    km = KMeans(3, seed=0).fit(X)
    images = np.random.default_rng(2).uniform(0, 1, (6, 1, 4, 4))
    ck = ConvKMeans(2, patch_size=3, pool_grid=1, seed=0).fit(images)
    for extractor, data, width in ((km, X[:5], 3), (ck, images[:5], 2)):
        model = nk.Sequential([L.Frozen(extractor), L.Dense(width, 2)], seed=0).astype(np.float64)
        expected = model.forward(data)
        model.to("cuda")
        assert model.device == "cuda" and model[0].device == "cuda"
        np.testing.assert_allclose(model.forward(data), expected, rtol=1e-10)
    assert km.device == "cuda" and ck.device == "cuda"  # moved by Frozen
    frozen_net = nk.Sequential([L.Frozen(nk.Sequential([L.Dense(4, 3), L.Tanh()], seed=1)), L.Dense(3, 2)], seed=0)
    frozen_net.to("cuda")
    assert devices.is_device_array(next(iter(frozen_net[0].buffers.values())))
    nk.save(frozen_net, tmp_path / "m.nkz")
    loaded = nk.load(tmp_path / "m.nkz")
    x = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(loaded.forward(x), frozen_net.forward(x), rtol=1e-6)


IMAGE_EXTRACTORS = {
    "conv-triangle": lambda: ConvKMeans(3, patch_size=3, pool_grid=2, seed=0),
    "conv-hard-standardized-stride": lambda: ConvKMeans(3, patch_size=2, stride=2, pool_grid=2, encoding="hard",
                                                        standardize=True, whiten=False, seed=0),
    "stacked-grouped": lambda: StackedKMeans([{"n_clusters": 3, "patch_size": 2},
                                              {"n_clusters": 2, "patch_size": 2, "groups": 2, "group_size": 2}],
                                             pool_size=2, pool_grid=2, seed=0),
}


@pytest.mark.parametrize("name", list(IMAGE_EXTRACTORS))
def test_image_codes_of_device_images_match_the_host_codes(name):
    images = np.random.default_rng(4).uniform(0, 1, (6, 2, 7, 7))
    extractor = IMAGE_EXTRACTORS[name]().fit(images)
    codes = extractor.transform(devices.to_device(images[:3]))
    assert devices.is_device_array(codes)
    np.testing.assert_allclose(devices.to_host(codes), extractor.transform(images[:3]), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="images on the GPU must be"):
        extractor.transform(devices.to_device(images[:3, :1]))


def test_frozen_conv_kmeans_on_cuda_never_leaves_the_device():
    from nkernels.runtime.counting import count_device_work

    images = np.random.default_rng(5).uniform(0, 1, (6, 1, 5, 5))
    ck = ConvKMeans(2, patch_size=3, pool_grid=1, seed=0).fit(images)
    model = nk.Sequential([L.Frozen(ck), L.Dense(2, 2)], seed=0).astype(np.float64).to("cuda")
    x = devices.to_device(images[:4])
    model.forward(x)  # the first call copies the coder over
    with count_device_work() as counts:
        out = model.forward(x)
    assert devices.is_device_array(out)
    assert counts.host_to_device == 0 and counts.device_to_host == 0 and counts.implicit_copies == 0
