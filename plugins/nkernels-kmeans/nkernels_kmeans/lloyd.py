"""k-means itself: initialization, Lloyd iterations, mini-batches, assignment and encoding.

Functions on checked arrays (float32 or float64, C-contiguous). The assignment and encoding
passes compute the cross term ``X @ C.T`` by BLAS (:func:`nkernels_kmeans.gemm.matmul`), outside
any ``prange`` region, and hand it to the fused kernels of :mod:`nkernels_kmeans.kernels`; a Lloyd
iteration calls BLAS inside its own parallel kernel (below). The extractors run BLAS on
one thread (:func:`nkernels.runtime.threads.blas_single_threaded`), so that its pool never spins
against Numba's; a large GEMM is split into row blocks run side by side on Python threads.

A Lloyd iteration fuses its passes (:meth:`LloydStep.assign`): one parallel kernel
(:func:`nkernels_kmeans.kernels.lloyd_pass`) splits the rows into fixed blocks, and each thread walks
its block (:func:`nkernels_kmeans.kernels.lloyd_block`) in chunks small enough that the chunk's
distances stay in the core's cache: BLAS writes ``|c|^2 - 2 x.c`` for the chunk (accumulating into
the broadcast centroid norms, as scikit-learn's ``_k_means_lloyd`` does), then each row finds its
nearest centroid and is added to that cluster's sum. The distance matrix never goes to memory, and
the sums, the labels changed and the objective come out of the same pass; no Python runs per chunk
and nothing is allocated per iteration. (The blocks ran on sleeping Python threads before: on a busy
machine OpenMP's spinning workers lose to them, but on a quiet one waking a sleeping thread and
waiting for it cost 55-120 µs of a 0.3 ms iteration on digits; benchmarks/RESULTS.md.)
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import numba
import numpy as np
from nkernels.runtime.threads import one_kernel_thread

from . import kernels as K
from .gemm import matmul

#: the largest cross-term block, in elements (64 MiB of float32): bigger inputs go in row blocks
CROSS_BLOCK = 1 << 24
#: below this many elements of work a kernel runs on the calling thread alone: waking Numba's
#: workers costs more than they save (a scheduler time slice, milliseconds, on a busy machine)
PARALLEL_MIN_WORK = 1 << 17
#: row blocks of the per-cluster sums: fixed, so that results do not depend on the thread count
SUM_BLOCKS = max(1, numba.config.NUMBA_NUM_THREADS)
#: elements of a fused chunk's cross term: 256 KiB of float32, which a core's L2 cache holds
CHUNK_ELEMENTS = 1 << 16


@contextmanager
def kernel_threads(work: int) -> Iterator[None]:
    """Within the block, Numba's parallel kernels use one thread when ``work`` (elements) is small."""
    if work >= PARALLEL_MIN_WORK:
        yield
        return
    with one_kernel_thread():
        yield


def row_sq_norms(X: np.ndarray) -> np.ndarray:
    """The squared Euclidean norm of each row."""
    return np.einsum("ij,ij->i", X, X)


def normalize_rows(X: np.ndarray) -> np.ndarray:
    """Each row scaled to unit Euclidean norm (all-zero rows stay zero); a new array."""
    norms = np.sqrt(row_sq_norms(X))
    return X / np.where(norms > 0, norms, 1).astype(X.dtype)[:, None]


def row_blocks(n: int, k: int):
    """``(start, stop)`` blocks of rows whose cross term fits in :data:`CROSS_BLOCK` elements."""
    step = max(1, CROSS_BLOCK // max(k, 1))
    return [(lo, min(n, lo + step)) for lo in range(0, n, step)]


def assign(X: np.ndarray, centroids: np.ndarray, x_sq: np.ndarray | None = None,
           labels: np.ndarray | None = None, min_dist: np.ndarray | None = None, cross: np.ndarray | None = None):
    """The nearest centroid of each row and the squared distance to it: ``(labels, min_dist)``."""
    n, k = len(X), len(centroids)
    x_sq = row_sq_norms(X) if x_sq is None else x_sq
    c_sq = row_sq_norms(centroids)
    labels = np.empty(n, np.int64) if labels is None else labels
    min_dist = np.empty(n, X.dtype) if min_dist is None else min_dist
    blocks = row_blocks(n, k)
    if cross is None:
        cross = np.empty((blocks[0][1] - blocks[0][0], k), X.dtype)
    with kernel_threads(n * k):
        for lo, hi in blocks:
            block = cross[:hi - lo]
            matmul(X[lo:hi], centroids.T, block)
            K.nearest_centroid(block, x_sq[lo:hi], c_sq, labels[lo:hi], min_dist[lo:hi])
    return labels, min_dist


def encode(X: np.ndarray, centroids: np.ndarray, encoding: str) -> np.ndarray:
    """The codes of each row: ``"triangle"`` (Coates et al. 2011) or ``"hard"`` (one-hot of the nearest)."""
    n, k = len(X), len(centroids)
    out = np.empty((n, k), X.dtype)
    x_sq, c_sq = row_sq_norms(X), row_sq_norms(centroids)
    if encoding == "hard":
        labels, _ = assign(X, centroids, x_sq)
        out[:] = 0
        out[np.arange(n), labels] = 1
        return out
    with kernel_threads(n * k):
        for lo, hi in row_blocks(n, k):
            cross = matmul(X[lo:hi], centroids.T, np.empty((hi - lo, k), X.dtype))
            K.triangle_encode(cross, x_sq[lo:hi], c_sq, out[lo:hi])
    return out


def kmeans_plusplus(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k initial centroids by greedy k-means++ (Arthur and Vassilvitskii 2007), scikit-learn's implementation."""
    from sklearn.cluster import kmeans_plusplus as sk_kmeans_plusplus

    centers, _ = sk_kmeans_plusplus(X, k, random_state=int(rng.integers(2**31 - 1)))
    return np.ascontiguousarray(centers, dtype=X.dtype)


def initial_centroids(X: np.ndarray, k: int, init, rng: np.random.Generator) -> np.ndarray:
    """``init`` ("k-means++", "random" rows, or an array of shape (k, d)) as a fresh (k, d) array."""
    if isinstance(init, np.ndarray):
        return np.array(init, dtype=X.dtype, order="C")
    if init == "random":
        return np.ascontiguousarray(X[np.sort(rng.choice(len(X), k, replace=False))])
    return kmeans_plusplus(X, k, rng)


@dataclass
class Result:
    """What a k-means run found."""

    centroids: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int
    #: the objective (sum of squared distances to the nearest centroid) at every assignment step
    history: list[float] = field(default_factory=list)


class _Workspace:
    """Buffers of one run, allocated once."""

    def __init__(self, X: np.ndarray, k: int):
        n, d = X.shape
        self.partial_sums = np.empty((SUM_BLOCKS, k, d))
        self.partial_counts = np.empty((SUM_BLOCKS, k), np.int64)
        self.sums = np.empty((k, d))
        self.counts = np.empty(k, np.int64)
        self.labels = np.empty(n, np.int64)
        self.min_dist = np.empty(n, X.dtype)
        first = row_blocks(n, k)[0]
        self.cross = np.empty((first[1] - first[0], k), X.dtype)

    def cluster_sums(self, X: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-cluster sums and counts of the rows of X (the kernel, on one thread for small X)."""
        with kernel_threads(X.size):
            K.cluster_sums(X, labels, self.partial_sums, self.partial_counts, self.sums, self.counts)
        return self.sums, self.counts


def _relocate_empty(X, centroids, counts, min_dist):
    """Move the centroid of each empty cluster onto one of the rows farthest from their centroid."""
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        far = np.argsort(min_dist, kind="stable")[::-1][:empty.size]
        centroids[empty[:far.size]] = X[far]


class LloydStep:
    """One Lloyd iteration on X, with every buffer allocated once: :meth:`assign`, then :meth:`update`.

    Run it with BLAS on one thread (:func:`nkernels.runtime.threads.blas_single_threaded`, as the
    extractors do): the pass calls BLAS from several threads at once.
    """

    def __init__(self, X: np.ndarray, k: int, spherical: bool = False):
        self.X, self.spherical = X, spherical
        self.x_sq = row_sq_norms(X)
        self.ws = _Workspace(X, k)
        self.ws.labels[:] = -1  # no row has a label yet: the first pass changes them all
        self.moved = np.empty((k, X.shape[1]), X.dtype)
        self.c_sq = np.empty(k, X.dtype)
        self.centroids_t = np.empty((X.shape[1], k), X.dtype)
        self.block_stats = np.empty((SUM_BLOCKS, 2))  # per block: labels changed, inertia
        n = len(X)
        chunk = min(max(16, CHUNK_ELEMENTS // k), max(1, -(-n // SUM_BLOCKS)))
        self.chunk_cross = np.empty((SUM_BLOCKS, chunk, k), X.dtype)
        #: rows whose label the last :meth:`assign` changed, and the objective it found
        self.changed, self.inertia = n, np.inf
        self._summed = False

    def assign(self, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The nearest centroid of each row and its squared distance (buffers reused by the next call).

        The rows go in :data:`SUM_BLOCKS` fixed blocks side by side, in one compiled call
        (:func:`nkernels_kmeans.kernels.lloyd_pass`), which also sums the rows of each cluster for the
        following :meth:`update`, counts the rows whose label changed (:attr:`changed`) and sums the
        distances (:attr:`inertia`)."""
        ws, X, stats = self.ws, self.X, self.block_stats
        np.einsum("ij,ij->i", centroids, centroids, out=self.c_sq)
        self.centroids_t[:] = centroids.T
        with kernel_threads(len(X) * len(centroids)):
            K.lloyd_pass(X, self.x_sq, self.centroids_t, self.c_sq, self.chunk_cross, ws.labels, ws.min_dist,
                         ws.partial_sums, ws.partial_counts, stats)
        K.add_blocks(ws.partial_sums, ws.partial_counts, ws.sums, ws.counts)
        changed, inertia = stats.sum(axis=0)
        self.changed, self.inertia = int(changed), float(inertia)
        self._summed = True
        return ws.labels, ws.min_dist

    def update(self, centroids: np.ndarray, labels: np.ndarray, min_dist: np.ndarray) -> float:
        """Move each centroid (in place) to the mean of its rows; returns the summed squared shift.

        The centroid of an empty cluster moves onto a far row; with ``spherical`` the centroids
        are scaled to unit length.
        """
        if self._summed and labels is self.ws.labels:  # the sums of the last assignment
            sums, counts = self.ws.sums, self.ws.counts
        else:
            sums, counts = self.ws.cluster_sums(self.X, labels)
        self._summed = False
        moved = self.moved
        if K.mean_centroids(sums, counts, centroids, moved):
            _relocate_empty(self.X, moved, counts, min_dist)
        if self.spherical:
            moved[:] = normalize_rows(moved)
        return K.replace_centroids(centroids, moved)


def lloyd(X: np.ndarray, centroids: np.ndarray, max_iter: int, tol: float, spherical: bool = False,
          step: LloydStep | None = None) -> Result:
    """Lloyd's algorithm from ``centroids`` (modified in place).

    Each iteration assigns every row to its nearest centroid, then moves each centroid to the
    mean of its rows (:class:`LloydStep`). It stops when the assignment no longer changes, when
    the centroids move by at most ``tol`` (scikit-learn's convention: the summed squared shift
    against ``tol`` times the mean feature variance), or after ``max_iter`` iterations; a last
    assignment then matches the labels to the final centroids.
    """
    step = LloydStep(X, len(centroids), spherical) if step is None else step  # the GPU's: nkernels_kmeans.cuda
    tol = tol * float(np.mean(np.var(X, axis=0))) if tol > 0 else 0.0
    history: list[float] = []
    converged_labels = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        labels, min_dist = step.assign(centroids)
        history.append(step.inertia)
        if step.changed == 0:
            converged_labels = True
            break
        if step.update(centroids, labels, min_dist) <= tol:
            break
    if not converged_labels:
        labels, min_dist = step.assign(centroids)
        history.append(step.inertia)
    return Result(centroids, labels.copy(), history[-1], n_iter, history)


def minibatch(X: np.ndarray, centroids: np.ndarray, batch_size: int, max_iter: int, tol: float,
              rng: np.random.Generator, spherical: bool = False) -> Result:
    """Mini-batch k-means (Sculley 2010) from ``centroids`` (modified in place).

    ``max_iter`` passes over the data in shuffled batches of ``batch_size`` rows; each batch
    moves its centroids to the running mean of every row they were assigned. It stops early
    when a whole pass moves the centroids by at most ``tol`` (scaled as in :func:`lloyd`). The
    history holds, per pass, the summed distances of each batch to the centroids it saw.
    """
    n = len(X)
    batch_size = min(batch_size, n)
    ws = _Workspace(X[:batch_size], len(centroids))
    totals = np.zeros(len(centroids), np.int64)
    x_sq = row_sq_norms(X)
    tol = tol * float(np.mean(np.var(X, axis=0))) if tol > 0 else 0.0
    history: list[float] = []
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        start = centroids.copy()
        order = rng.permutation(n)
        objective = 0.0
        for lo in range(0, n, batch_size):
            index = np.sort(order[lo:lo + batch_size])
            xb = np.ascontiguousarray(X[index])
            m = len(xb)
            labels, min_dist = assign(xb, centroids, x_sq[index], ws.labels[:m], ws.min_dist[:m], ws.cross)
            objective += float(np.sum(min_dist, dtype=np.float64))
            sums, counts = ws.cluster_sums(xb, labels)
            # each centroid moves to the running mean of every row it was ever assigned
            hit = counts > 0
            totals[hit] += counts[hit]
            centroids[hit] += ((sums[hit] - counts[hit, None] * centroids[hit]) / totals[hit, None]).astype(
                centroids.dtype)
            if spherical:
                centroids[:] = normalize_rows(centroids)
        history.append(objective)
        if float(np.sum((centroids - start) ** 2, dtype=np.float64)) <= tol:
            break
    labels, min_dist = assign(X, centroids, x_sq)
    return Result(centroids, labels, float(np.sum(min_dist, dtype=np.float64)), n_iter, history)
