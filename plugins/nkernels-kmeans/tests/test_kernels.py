"""Each kernel against a plain NumPy reference written out at the top of this file (float64)."""
import numpy as np
import pytest

from nkernels_kmeans import kernels as K
from nkernels_kmeans.lloyd import SUM_BLOCKS


# -- references ----------------------------------------------------------------------------------
def ref_nearest(X, C):
    d = ((X[:, None, :] - C[None, :, :]) ** 2).sum(axis=2)
    return d.argmin(axis=1), d.min(axis=1)


def ref_cluster_sums(X, labels, k):
    sums = np.zeros((k, X.shape[1]))
    counts = np.zeros(k, np.int64)
    for x, c in zip(X, labels):
        sums[c] += x
        counts[c] += 1
    return sums, counts


def ref_triangle(X, C):
    z = np.sqrt(((X[:, None, :] - C[None, :, :]) ** 2).sum(axis=2))
    return np.maximum(z.mean(axis=1, keepdims=True) - z, 0.0)


def ref_contrast_normalize(P, eps):
    centered = P - P.mean(axis=1, keepdims=True)
    return centered / np.sqrt(P.var(axis=1, keepdims=True) + eps)


def ref_encode_pool(Z, C, n_images, ny, nx, region_y, region_x, hard):
    codes = np.eye(len(C))[ref_nearest(Z, C)[0]] if hard else ref_triangle(Z, C)
    codes = codes.reshape(n_images, ny, nx, len(C))
    out = np.zeros((n_images, len(C), region_y.max() + 1, region_x.max() + 1))
    for y in range(ny):
        for x in range(nx):
            out[:, :, region_y[y], region_x[x]] += codes[:, y, x, :]
    return out


# -- tests ---------------------------------------------------------------------------------------
@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((50, 7)), rng.standard_normal((6, 7))


def test_nearest_centroid(data):
    X, C = data
    labels, min_dist = np.empty(len(X), np.int64), np.empty(len(X))
    K.nearest_centroid(X @ C.T, (X ** 2).sum(1), (C ** 2).sum(1), labels, min_dist)
    ref_labels, ref_dist = ref_nearest(X, C)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(min_dist, ref_dist, rtol=1e-12, atol=1e-12)


def test_nearest_centroid_clips_rounding_below_zero():
    rng = np.random.default_rng(0)
    C = rng.standard_normal((1, 4)) * 1e4
    X = C + rng.standard_normal((20, 4)) * 1e-6  # the expanded distances round to tiny negatives
    x_sq, c_sq, cross = (X ** 2).sum(1), (C ** 2).sum(1), X @ C.T
    assert np.any(x_sq - 2 * cross[:, 0] + c_sq < 0)
    labels, min_dist = np.empty(20, np.int64), np.empty(20)
    K.nearest_centroid(cross, x_sq, c_sq, labels, min_dist)
    assert np.all(min_dist >= 0) and np.all(labels == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_first_min_is_the_scan_of_each_row(dtype):
    """The vectorized argmin of lloyd_block (on the floats' bits) picks what the scan ``if row[j] < best``
    picks: the first of tied minima, either zero sign as the first zero, NaNs skipped (or row[0]'s NaN)."""
    from numba import njit

    @njit
    def first_min_of_rows(rows, labels, best):
        signed, unsigned = K._bit_views(rows)
        for i in range(rows.shape[0]):
            labels[i], best[i] = K._first_min(rows[i], signed[i], unsigned[i])

    rng = np.random.default_rng(6)
    for k in (1, 2, 9, 40):
        rows = rng.integers(-3, 4, (300, k)).astype(dtype)  # many ties
        rows[150:] = np.abs(rows[150:])  # minima of zero
        special = rng.random(rows.shape) < 0.1
        rows[special] = rng.choice(np.array([0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 1e-39], dtype),
                                   special.sum())
        rows[:30] = rng.standard_normal((30, k))
        labels, best = np.empty(len(rows), np.int64), np.empty(len(rows), dtype)
        first_min_of_rows(rows, labels, best)
        for row, label, value in zip(rows, labels, best):
            ref_label, ref_value = 0, row[0]
            for j in range(1, k):
                if row[j] < ref_value:
                    ref_label, ref_value = j, row[j]
            assert label == ref_label
            np.testing.assert_array_equal(value, ref_value)


@pytest.mark.parametrize("n_blocks", [1, 3, SUM_BLOCKS])
def test_cluster_sums(data, n_blocks):
    X, _ = data
    labels = np.random.default_rng(1).integers(0, 5, len(X))
    labels[:3] = 4  # cluster 5 of 6 stays empty
    labels[labels == 5] = 0
    sums, counts = np.full((6, 7), np.nan), np.full(6, -1, np.int64)
    K.cluster_sums(X, labels, np.full((n_blocks, 6, 7), np.nan), np.full((n_blocks, 6), -1, np.int64), sums, counts)
    ref_sums, ref_counts = ref_cluster_sums(X, labels, 6)
    np.testing.assert_array_equal(counts, ref_counts)
    np.testing.assert_allclose(sums, ref_sums, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("chunk", [4, 50, 64])
def test_lloyd_block_assigns_sums_and_counts_changes(data, chunk):
    """One block of the fused pass, in chunks (a last short one, or one bigger than the block): the nearest
    centroids, clipped distances, cluster sums and counts (overwritten), the labels changed and the inertia."""
    X, C = data
    lo, hi = 3, 45  # rows outside the block stay as they were
    labels, min_dist = np.full(len(X), 7, np.int64), np.full(len(X), -1.0)
    ref_labels, ref_dist = ref_nearest(X, C)
    labels[lo:lo + 5] = ref_labels[lo:lo + 5]  # five rows already have their label
    sums, counts = np.full((6, 7), np.nan), np.full(6, -1, np.int64)
    cross = np.full((chunk, 6), np.nan)
    changed, inertia = K.lloyd_block(X, (X ** 2).sum(1), np.ascontiguousarray(C.T), (C ** 2).sum(1), cross, labels,
                                     min_dist, sums, counts, lo, hi)
    np.testing.assert_array_equal(labels[lo:hi], ref_labels[lo:hi])
    np.testing.assert_allclose(min_dist[lo:hi], ref_dist[lo:hi], rtol=1e-12, atol=1e-12)
    assert np.all(labels[:lo] == 7) and np.all(labels[hi:] == 7) and np.all(min_dist[hi:] == -1)
    assert changed == hi - lo - 5
    assert inertia == pytest.approx(ref_dist[lo:hi].sum(), rel=1e-12)
    ref_sums, ref_counts = ref_cluster_sums(X[lo:hi], ref_labels[lo:hi], 6)
    np.testing.assert_array_equal(counts, ref_counts)
    np.testing.assert_allclose(sums, ref_sums, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nk_small_kernels", [0, 1], indirect=True, ids=["whole", "pieces"])
def test_lloyd_block_products_in_row_pieces(nk_small_kernels):
    """A chunk whose product exceeds OpenBLAS's small-matrix size (400 x 64 x 64 multiply-adds) goes in row
    pieces of 128 and a short last one when the small kernels are on, whole when off: the same nearest
    centroids and distances either way."""
    rng = np.random.default_rng(4)
    X, C = rng.normal(size=(400, 64)), rng.normal(size=(64, 64))
    labels, min_dist = np.full(400, -1, np.int64), np.empty(400)
    sums, counts = np.empty((64, 64)), np.empty(64, np.int64)
    changed, _ = K.lloyd_block(X, (X ** 2).sum(1), np.ascontiguousarray(C.T), (C ** 2).sum(1), np.empty((400, 64)),
                               labels, min_dist, sums, counts, 0, 400)
    ref_labels, ref_dist = ref_nearest(X, C)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(min_dist, ref_dist, rtol=1e-9)
    assert changed == 400


@pytest.mark.parametrize("n, k, chunk_elements", [(50, 6, 1 << 16), (1000, 40, 64), (3, 6, 1 << 16)])
def test_the_fused_lloyd_pass_matches_the_separate_passes(monkeypatch, n, k, chunk_elements):
    """LloydStep.assign in chunks (several per block, a last short one, blocks without rows) gives the labels
    and distances of nearest_centroid (up to the rounding of BLAS's accumulation) and the cluster sums of
    cluster_sums, bit for bit; update uses them, and labels from elsewhere get their own sums."""
    from nkernels_kmeans import lloyd

    monkeypatch.setattr(lloyd, "CHUNK_ELEMENTS", chunk_elements)
    rng = np.random.default_rng(2)
    X, C = rng.standard_normal((n, 7)).astype(np.float32), rng.standard_normal((k, 7)).astype(np.float32)
    step = lloyd.LloydStep(X, k)
    labels, min_dist = step.assign(C)
    assert step.changed == n and step.inertia == pytest.approx(float(min_dist.sum(dtype=np.float64)), rel=1e-6)
    ref_labels, ref_dist = np.empty(n, np.int64), np.empty(n, np.float32)
    K.nearest_centroid(X @ C.T, step.x_sq, lloyd.row_sq_norms(C), ref_labels, ref_dist)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(min_dist, ref_dist, rtol=1e-5, atol=1e-5)
    fused = step.ws.sums.copy(), step.ws.counts.copy()
    separate = step.ws.cluster_sums(X, ref_labels)
    np.testing.assert_array_equal(fused[0], separate[0])
    np.testing.assert_array_equal(fused[1], separate[1])
    moved = C.copy()
    step.assign(C)
    assert step.changed == 0
    step.update(moved, labels, min_dist)
    other = C.copy()
    step.update(other, ref_labels.copy(), min_dist)  # not the assignment's own labels: summed afresh
    np.testing.assert_array_equal(moved, other)


def test_triangle_encode(data):
    X, C = data
    out = np.empty((len(X), len(C)))
    K.triangle_encode(X @ C.T, (X ** 2).sum(1), (C ** 2).sum(1), out)
    np.testing.assert_allclose(out, ref_triangle(X, C), rtol=1e-10, atol=1e-10)
    assert np.all(out >= 0) and np.any(out == 0)


def test_gather_patches():
    rng = np.random.default_rng(2)
    images = rng.standard_normal((3, 2, 6, 5))
    index, ys, xs = np.array([0, 2, 1, 2]), np.array([0, 3, 1, 2]), np.array([0, 2, 3, 0])
    out = np.empty((4, 2 * 3 * 2))
    K.gather_patches(images, index, ys, xs, 3, 2, out)
    for r in range(4):
        np.testing.assert_array_equal(out[r], images[index[r], :, ys[r]:ys[r] + 3, xs[r]:xs[r] + 2].ravel())


def test_contrast_normalize():
    P = np.random.default_rng(3).standard_normal((20, 9)) * 3 + 1
    P[0] = 0.5  # a flat patch stays finite
    expected = ref_contrast_normalize(P, 0.1)
    K.contrast_normalize(P, 0.1)
    np.testing.assert_allclose(P, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("hard", [False, True])
def test_encode_pool(hard):
    rng = np.random.default_rng(4)
    n_images, ny, nx, k = 3, 5, 4, 6
    Z, C = rng.standard_normal((n_images * ny * nx, 8)), rng.standard_normal((k, 8))
    region_y, region_x = np.array([0, 0, 0, 1, 1]), np.array([0, 0, 1, 1])
    out = np.full((n_images, k, 2, 2), np.nan)
    K.encode_pool(Z @ C.T, (Z ** 2).sum(1), (C ** 2).sum(1), ny, nx, region_y, region_x, hard, out)
    np.testing.assert_allclose(out, ref_encode_pool(Z, C, n_images, ny, nx, region_y, region_x, hard),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("parallel_work", [1, 1 << 40])
def test_blocked_gemm_matches_one_product(monkeypatch, parallel_work):
    from nkernels_kmeans import gemm

    monkeypatch.setattr(gemm, "BLOCK", 50)  # many row blocks, side by side on threads or one after another
    monkeypatch.setattr(gemm, "MIN_PARALLEL_WORK", parallel_work)
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((97, 8)), rng.standard_normal((6, 8))
    out = np.full((97, 6), np.nan)
    gemm.matmul(a, b.T, out)
    np.testing.assert_allclose(out, a @ b.T, rtol=1e-12, atol=1e-12)


def test_run_blocks_runs_every_block_once_and_reraises_a_helpers_error(monkeypatch):
    """Blocks on the helper threads: each block runs once; an error in any block reaches the caller, and the
    helpers keep working afterwards (a lost hand-back would hang here)."""
    import threading

    import numba

    from nkernels_kmeans import gemm

    monkeypatch.setattr(numba, "get_num_threads", lambda: 3)  # two helpers, whatever this machine has
    seen, lock = [], threading.Lock()

    def block(i):
        with lock:
            seen.append(i)

    gemm.run_blocks(block, 7, 1 << 40)
    assert sorted(seen) == list(range(7))

    def failing(i):
        if i == 5:
            raise KeyError("block 5")

    for _ in range(3):
        with pytest.raises(KeyError, match="block 5"):
            gemm.run_blocks(failing, 6, 1 << 40)
    seen.clear()
    gemm.run_blocks(block, 4, 1 << 40)
    assert sorted(seen) == list(range(4))
