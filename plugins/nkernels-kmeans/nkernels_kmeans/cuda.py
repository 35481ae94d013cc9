"""k-means on the GPU: the assignment step (nearest centroid and cluster sums) and the codes, as CUDA
twins of :mod:`nkernels_kmeans.kernels`.

The pass is the CPU one: the cross term ``X @ C.T`` by a GEMM (nkernels' CUDA ``dense_forward``
kernel, found through :func:`nkernels.plugins.kernels.kernel`, so a faster registered GEMM takes
over), then one kernel that finds each row's nearest centroid: the CPU kernel's own
``_nearest``, compiled again as a device function, so both devices break ties and clip the same
way. The cluster sums follow the CPU's :func:`~nkernels_kmeans.kernels.cluster_sums`: rows in
fixed contiguous blocks, each block's float64 partial sums, then the blocks added in order; no
atomics, so the sums do not depend on the grid. Buffers live in a :class:`Workspace`, allocated
once per shape.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from nkernels.kernels.cuda.launch import grid_stride, python_function, simulator
from nkernels.plugins.kernels import kernel
from nkernels.runtime import devices

from . import kernels as K
from . import lloyd

_nearest = cuda.jit(device=True)(python_function(K._nearest))
#: row blocks of the cluster sums on a GPU (fixed: the sums do not depend on the grid), and under the simulator
SUM_BLOCKS, SIM_SUM_BLOCKS = 256, 3


@cuda.jit
def _row_sq_norms(X, out):
    """``out[i] = |X[i]|^2`` in X's dtype."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, X.shape[0], stride):
        acc = X[i, 0] * X[i, 0]
        for f in range(1, X.shape[1]):
            acc += X[i, f] * X[i, f]
        out[i] = acc


@cuda.jit
def _normalize_rows(X, out):
    """``out[i] = X[i] / |X[i]|`` (an all-zero row stays zero), as :func:`nkernels_kmeans.lloyd.normalize_rows`."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, X.shape[0], stride):
        acc = X[i, 0] * X[i, 0]
        for f in range(1, X.shape[1]):
            acc += X[i, f] * X[i, f]
        norm = math.sqrt(acc) if acc > 0 else X.dtype.type(1.0)
        for f in range(X.shape[1]):
            out[i, f] = X[i, f] / norm


@cuda.jit
def _nearest_centroid(cross, x_sq, c_sq, labels, min_dist):
    """CUDA twin of :func:`nkernels_kmeans.kernels.nearest_centroid`, one thread per row."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, cross.shape[0], stride):
        arg, best = _nearest(cross, i, c_sq)
        labels[i] = arg
        d = x_sq[i] + best
        min_dist[i] = d if d > 0 else d - d


@cuda.jit
def _partial_sums(X, labels, partial_sums, partial_counts):
    """Block ``t``'s float64 sums of its rows per cluster (feature ``f`` by thread (t, f)), and counts."""
    n, d = X.shape
    n_blocks, k = partial_counts.shape
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for item in range(start, n_blocks * d, stride):
        t = item // d
        f = item - t * d
        for j in range(k):
            partial_sums[t, j, f] = 0.0
        if f == 0:
            for j in range(k):
                partial_counts[t, j] = 0
        for i in range(t * n // n_blocks, (t + 1) * n // n_blocks):
            c = labels[i]
            partial_sums[t, c, f] += X[i, f]
            if f == 0:
                partial_counts[t, c] += 1


@cuda.jit
def _add_blocks(partial_sums, partial_counts, sums, counts):
    """CUDA twin of :func:`nkernels_kmeans.kernels.add_blocks`: the blocks added in block order."""
    n_blocks, k, d = partial_sums.shape
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for item in range(start, k * d, stride):
        j = item // d
        f = item - j * d
        acc = 0.0
        for t in range(n_blocks):
            acc += partial_sums[t, j, f]
        sums[j, f] = acc
        if f == 0:
            total = 0
            for t in range(n_blocks):
                total += partial_counts[t, j]
            counts[j] = total


@cuda.jit
def _triangle_encode(cross, x_sq, c_sq, out):
    """CUDA twin of :func:`nkernels_kmeans.kernels.triangle_encode`, one thread per row."""
    n, k = cross.shape
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, n, stride):
        total = 0.0
        for j in range(k):
            c = cross[i, j]
            d = x_sq[i] + c_sq[j] - (c + c)
            z = math.sqrt(d) if d > 0 else d - d
            out[i, j] = z
            total += z
        mu = total / k
        for j in range(k):
            v = mu - out[i, j]
            out[i, j] = v if v > 0.0 else 0.0


@cuda.jit
def _one_hot(labels, out):
    """``out[i, j] = (labels[i] == j)``: the hard codes."""
    n, k = out.shape
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for item in range(start, n * k, stride):
        i = item // k
        j = item - i * k
        out[i, j] = 1 if labels[i] == j else 0


@cuda.jit
def _standardize(out, mean, std):
    """``out[i, j] = (out[i, j] - mean[j]) / std[j]``, as :func:`nkernels_kmeans.base.standardize`."""
    n, k = out.shape
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for item in range(start, n * k, stride):
        i = item // k
        j = item - i * k
        out[i, j] = (out[i, j] - mean[j]) / std[j]


def _launch(fn, items, *args):
    blocks, threads = grid_stride(items, per_thread=1)
    fn[blocks, threads](*args)


class Workspace:
    """The device buffers of the assignment and the codes for ``n`` rows, ``k`` centroids of ``d`` features."""

    def __init__(self, n: int, k: int, d: int, dtype):
        dtype = np.dtype(dtype)
        self.key = (n, k, d, dtype.str)
        blocks = max(1, min(n, SIM_SUM_BLOCKS if simulator() else SUM_BLOCKS))
        self.cross = cuda.device_array((n, k), dtype)
        self.no_bias = cuda.device_array(0, dtype)
        self.x_sq = cuda.device_array(n, dtype)
        self.c_sq = cuda.device_array(k, dtype)
        self.labels = cuda.device_array(n, np.int64)
        self.min_dist = cuda.device_array(n, dtype)
        self.partial_sums = cuda.device_array((blocks, k, d), np.float64)
        self.partial_counts = cuda.device_array((blocks, k), np.int64)
        self.sums = cuda.device_array((k, d), np.float64)
        self.counts = cuda.device_array(k, np.int64)

    @classmethod
    def for_shape(cls, previous: "Workspace | None", n: int, k: int, d: int, dtype) -> "Workspace":
        """``previous`` when it has these sizes, else a new workspace."""
        if previous is not None and previous.key == (n, k, d, np.dtype(dtype).str):
            return previous
        return cls(n, k, d, dtype)


def row_sq_norms(X, out):
    """``out`` = the squared norm of each row of the device array ``X``; returns ``out``."""
    _launch(_row_sq_norms, X.shape[0], X, out)
    return out


def normalize_rows(X):
    """A new device array: each row of ``X`` scaled to unit length (all-zero rows stay zero)."""
    out = cuda.device_array(X.shape, X.dtype)
    _launch(_normalize_rows, X.shape[0], X, out)
    return out


def _cross(X, centroids, ws: Workspace):
    """``ws.cross = X @ centroids.T`` and the squared norms of both."""
    kernel("dense_forward", "cuda")(X, centroids, ws.no_bias, ws.cross)
    row_sq_norms(X, ws.x_sq)
    row_sq_norms(centroids, ws.c_sq)


def assign(X, centroids, ws: Workspace):
    """The nearest centroid of each row of ``X`` and the squared distance to it: ``(ws.labels, ws.min_dist)``.

    X (n, d) and centroids (k, d): C-contiguous device arrays of one dtype; ``ws`` from
    :meth:`Workspace.for_shape` for these sizes.
    """
    _cross(X, centroids, ws)
    _launch(_nearest_centroid, X.shape[0], ws.cross, ws.x_sq, ws.c_sq, ws.labels, ws.min_dist)
    return ws.labels, ws.min_dist


def cluster_sums(X, labels, ws: Workspace):
    """Per-cluster float64 sums (k, d) and counts (k,) of the rows of ``X`` by ``labels``: ``(ws.sums, ws.counts)``."""
    n_blocks, _, d = ws.partial_sums.shape
    _launch(_partial_sums, n_blocks * d, X, labels, ws.partial_sums, ws.partial_counts)
    _launch(_add_blocks, ws.sums.size, ws.partial_sums, ws.partial_counts, ws.sums, ws.counts)
    return ws.sums, ws.counts


def assign_and_sum(X, centroids, ws: Workspace):
    """The Lloyd step's assignment on the GPU: ``(labels, min_dist, sums, counts)``, device arrays of ``ws``."""
    labels, min_dist = assign(X, centroids, ws)
    sums, counts = cluster_sums(X, labels, ws)
    return labels, min_dist, sums, counts


def encode(X, centroids, encoding: str, ws: Workspace, mean=None, std=None):
    """The codes (n, k), a new device array: ``"triangle"`` or ``"hard"``, standardized by ``mean`` and ``std``
    (device arrays (k,)) when given."""
    n, k = X.shape[0], centroids.shape[0]
    out = cuda.device_array((n, k), X.dtype)
    if encoding == "hard":
        labels, _ = assign(X, centroids, ws)
        _launch(_one_hot, n * k, labels, out)
    else:
        _cross(X, centroids, ws)
        _launch(_triangle_encode, n, ws.cross, ws.x_sq, ws.c_sq, out)
    if mean is not None:
        standardize(out, mean, std)
    return out


def standardize(out, mean, std):
    """``out`` (n, k) standardized in place by the device arrays ``mean`` and ``std`` (k,); returns it."""
    _launch(_standardize, out.size, out, mean, std)
    return out


class LloydStep(lloyd.LloydStep):
    """:class:`nkernels_kmeans.lloyd.LloydStep` with its assignment (nearest centroids and cluster sums) on
    the GPU: X goes to the device once; each iteration sends the centroids over and brings the labels,
    distances, sums and counts back for the update, which runs on the host."""

    def __init__(self, X: np.ndarray, k: int, spherical: bool = False):
        super().__init__(X, k, spherical)
        self.X_device = devices.to_device(X)
        self.device_ws = Workspace(len(X), k, X.shape[1], X.dtype)

    def assign(self, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """As the CPU step's: ``(labels, min_dist)`` on the host, the sums ready for :meth:`update`."""
        labels, min_dist, sums, counts = assign_and_sum(self.X_device, devices.to_device(centroids),
                                                        self.device_ws)
        ws = self.ws
        labels.copy_to_host(ws.labels)
        min_dist.copy_to_host(ws.min_dist)
        sums.copy_to_host(ws.sums)
        counts.copy_to_host(ws.counts)
        self._summed = True
        return ws.labels, ws.min_dist


class DeviceState:
    """Device copies of an extractor's float state arrays in one dtype, copied again only when the host
    arrays change (a load or a resume writes them in place): each use compares them with the copy's
    snapshot, on the host, without touching the GPU."""

    def __init__(self):
        self._snapshot: dict[str, np.ndarray] = {}
        self._device: dict[str, object] = {}
        self._dtype: np.dtype | None = None
        #: the :class:`Workspace` of the last call
        self.workspace: Workspace | None = None

    def __deepcopy__(self, memo) -> "DeviceState":
        return DeviceState()  # a copy of the extractor copies its host state, and this fills again on use

    def __reduce__(self):
        return DeviceState, ()

    def get(self, state: dict[str, np.ndarray], names, dtype) -> dict[str, object]:
        """The arrays ``names`` of ``state`` as device arrays of ``dtype``."""
        dtype = np.dtype(dtype)
        fresh = dtype == self._dtype and set(names) <= set(self._snapshot) and all(
            np.array_equal(self._snapshot[n], state[n]) for n in names)
        if not fresh:
            self._snapshot = {n: np.array(state[n], copy=True) for n in names}
            self._device = {n: devices.to_device(np.ascontiguousarray(state[n], dtype=dtype)) for n in names}
            self._dtype = dtype
        return {n: self._device[n] for n in names}
