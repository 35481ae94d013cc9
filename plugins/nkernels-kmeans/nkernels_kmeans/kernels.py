"""Numba kernels of the k-means extractors: plain functions on arrays, outputs preallocated.

The cross term ``X @ centroids.T`` of the squared distances
``|x|^2 - 2 x.c + |c|^2`` is computed by the caller with BLAS (:func:`nkernels_kmeans.gemm.matmul`),
never inside a ``prange`` region, and handed to the kernels here (``cross``) with the precomputed
squared norms; :func:`lloyd_block`, run block by block on Numba's threads by :func:`lloyd_pass`,
calls BLAS itself chunk by chunk (:func:`nkernels.kernels.cpu.blas.gemm_row_pieces`). Each kernel
trusts its inputs (labels within range, matching shapes): the extractors check them first.
"""
import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from nkernels.kernels.cpu.blas import gemm_row_pieces


@njit(inline="always", error_model="numpy")
def _nearest(cross, i, c_sq):
    """``(j, |c_j|^2 - 2 x_i.c_j)`` of the nearest centroid of row i (the lowest j on ties)."""
    # |x|^2 is the same for every j: compare |c|^2 - 2 x.c, in the data's dtype (c + c, not 2.0 * c,
    # which would promote float32 to float64 and slow the loop by a third)
    c = cross[i, 0]
    best = c_sq[0] - (c + c)
    arg = 0
    for j in range(1, cross.shape[1]):
        c = cross[i, j]
        d = c_sq[j] - (c + c)
        if d < best:
            best = d
            arg = j
    return arg, best


def _bit_views(a):
    """A float array's bits: the same memory viewed as ``(signed, unsigned)`` integers of its width.
    Compiled code only."""
    raise NotImplementedError


@overload(_bit_views, inline="always")
def _bit_views_impl(a):
    if a.dtype == types.float32:
        return lambda a: (a.view(np.int32), a.view(np.uint32))
    if a.dtype == types.float64:
        return lambda a: (a.view(np.int64), a.view(np.uint64))
    return None


@njit(inline="always", error_model="numpy")
def _first_equal(keys, value):
    """The lowest j with ``keys[j] == value`` (``len(keys)`` when none), without a branch per element."""
    k = keys.shape[0]
    arg = np.int32(k)
    for j in range(k):
        arg = min(arg, np.int32(j) if keys[j] == value else np.int32(k))
    return arg


@njit(inline="always", error_model="numpy")
def _first_min(row, signed, unsigned):
    """``(j, row[j])`` for the first smallest value of ``row`` (k >= 1), exactly what the scan
    ``if row[j] < best: best, arg = row[j], j`` from ``row[0]`` gives; ``signed``, ``unsigned`` are
    :func:`_bit_views` of row.

    Integer passes that vectorize, where the float compare-and-branch scan runs about one compare a
    cycle (and a float minimum does not vectorize in Numba without fast-math, which would also let it
    drop NaNs). A negative float's bits have the sign bit set and grow with its magnitude; so when the
    smallest signed bits are negative, the smallest value is the one with the largest unsigned bits,
    and otherwise the one with the smallest bits. Then the first index holding those bits. Zeros
    (0.0 equals -0.0) and NaNs (which the scan skips, unless row[0] is one) take the scan.
    """
    k = row.shape[0]
    low = signed[0]
    high = unsigned[0]
    for j in range(1, k):
        low = min(low, signed[j])
        high = max(high, unsigned[j])
    arg = _first_equal(unsigned, high) if low < 0 else _first_equal(signed, low)
    best = row[arg]
    if best == 0 or best != best or row[0] != row[0]:
        best = row[0]
        arg = np.int32(0)
        for j in range(1, k):
            if row[j] < best:
                best = row[j]
                arg = np.int32(j)
    return arg, best


@njit(parallel=True, cache=True, error_model="numpy")
def nearest_centroid(cross, x_sq, c_sq, labels, min_dist):
    """Fused distance and argmin: ``labels[i] = argmin_j |x_i - c_j|^2``, ``min_dist[i]`` that distance.

    cross (n, k) = X @ C.T, x_sq (n,) and c_sq (k,) the squared row norms of X and C, k >= 1.
    Ties go to the lowest index; a distance that rounding makes negative is clipped to 0.
    """
    for i in prange(cross.shape[0]):
        arg, best = _nearest(cross, i, c_sq)
        labels[i] = arg
        d = x_sq[i] + best
        min_dist[i] = d if d > 0 else 0


@njit(parallel=True, cache=True, error_model="numpy")
def cluster_sums(X, labels, partial_sums, partial_counts, sums, counts):
    """The centroid update's reduction: per-cluster sums (k, d) and counts (k,) of the rows of X.

    The rows are summed in T = ``len(partial_sums)`` contiguous blocks in parallel (block t takes
    rows [t n / T, (t + 1) n / T) into partial_sums[t] (k, d) float64 and partial_counts[t]),
    then the blocks are added in order into ``sums`` and ``counts``: the result does not depend
    on scheduling or on the number of threads. Every output is overwritten.
    """
    n, d = X.shape
    n_blocks, k = partial_counts.shape
    for t in prange(n_blocks):
        block_sums = partial_sums[t]
        block_counts = partial_counts[t]
        block_sums[:] = 0.0
        block_counts[:] = 0
        for i in range(t * n // n_blocks, (t + 1) * n // n_blocks):
            c = labels[i]
            block_counts[c] += 1
            for f in range(d):
                block_sums[c, f] += X[i, f]
    add_blocks(partial_sums, partial_counts, sums, counts)


@njit(nogil=True, cache=True, error_model="numpy")
def lloyd_block(X, x_sq, centroids_t, c_sq, cross, labels, min_dist, block_sums, block_counts, start, stop):
    """One block of a Lloyd pass: rows [start, stop) of X, in chunks of ``len(cross)`` rows.

    Per chunk, ``cross`` (chunk, k) gets ``|c_j|^2 - 2 x_i.c_j`` from BLAS (accumulating into the
    broadcast ``c_sq``; ``centroids_t`` is the (d, k) transpose of the centroids, C-contiguous), and
    while it is still in the cache each row takes its nearest centroid (the lowest j on ties):
    ``labels``, ``min_dist`` (clipped at 0), and the row added to that cluster's sum and count in
    ``block_sums`` (k, d) float64 and ``block_counts`` (k,), in row order; both are overwritten.
    Returns ``(changed, inertia)``: the rows whose label differs from the one they had, and the sum
    of their ``min_dist`` (float64). Runs with the GIL released; BLAS must be on one thread.

    The product goes in row pieces (:func:`nkernels.kernels.cpu.blas.gemm_row_pieces`): where
    OpenBLAS has small-matrix kernels, pieces of at most a million multiply-adds skip packing the
    centroids again for every chunk (an iteration on 100,000 x 64, k = 256, 1.14x faster on one core).
    """
    block_sums[:] = 0.0
    block_counts[:] = 0
    d, k = centroids_t.shape
    chunk = cross.shape[0]
    changed = 0
    inertia = 0.0
    for lo in range(start, stop, chunk):
        hi = min(stop, lo + chunk)
        part = cross[:hi - lo]
        for i in range(hi - lo):
            for j in range(k):  # an explicit loop: the slice assignment part[i, :] = c_sq ran 4x slower
                part[i, j] = c_sq[j]
        gemm_row_pieces(False, -2.0, X[lo:hi], centroids_t, 1.0, part)
        signed, unsigned = _bit_views(part)
        for i in range(hi - lo):
            arg, best = _first_min(part[i], signed[i], unsigned[i])
            row = lo + i
            changed += labels[row] != arg
            labels[row] = arg
            dist = x_sq[row] + best
            dist = dist if dist > 0 else 0
            min_dist[row] = dist
            inertia += dist
            block_counts[arg] += 1
            for f in range(d):
                block_sums[arg, f] += X[row, f]
    return changed, inertia


@njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def lloyd_pass(X, x_sq, centroids_t, c_sq, cross, labels, min_dist, partial_sums, partial_counts, block_stats):
    """A whole Lloyd pass: the rows in T = ``len(block_stats)`` fixed blocks side by side, block t
    (rows [t n / T, (t + 1) n / T)) by :func:`lloyd_block` with ``cross[t]``, ``partial_sums[t]`` and
    ``partial_counts[t]``; ``block_stats[t]`` = its ``(changed, inertia)``. The blocks do not depend on
    the number of threads, so neither do the results. BLAS must be on one thread."""
    n = X.shape[0]
    n_blocks = block_stats.shape[0]
    for t in prange(n_blocks):
        changed, inertia = lloyd_block(X, x_sq, centroids_t, c_sq, cross[t], labels, min_dist, partial_sums[t],
                                       partial_counts[t], t * n // n_blocks, (t + 1) * n // n_blocks)
        block_stats[t, 0] = changed
        block_stats[t, 1] = inertia


@njit(cache=True, error_model="numpy")
def mean_centroids(sums, counts, centroids, moved):
    """``moved[j]`` = the mean of cluster j (``sums[j] / counts[j]``), or ``centroids[j]`` when it is empty.
    Returns the number of empty clusters."""
    k, d = centroids.shape
    empty = 0
    for j in range(k):
        if counts[j] > 0:
            for f in range(d):
                moved[j, f] = sums[j, f] / counts[j]
        else:
            empty += 1
            moved[j, :] = centroids[j, :]
    return empty


@njit(cache=True, error_model="numpy")
def replace_centroids(centroids, moved):
    """``centroids[:] = moved``; returns the summed squared shift (float64)."""
    k, d = centroids.shape
    shift = 0.0
    for j in range(k):
        for f in range(d):
            diff = np.float64(moved[j, f]) - np.float64(centroids[j, f])
            shift += diff * diff
            centroids[j, f] = moved[j, f]
    return shift


@njit(cache=True, error_model="numpy")
def add_blocks(partial_sums, partial_counts, sums, counts):
    """``sums``, ``counts`` = the blocks' partial sums and counts added in block order (overwritten)."""
    n_blocks, k = partial_counts.shape
    d = partial_sums.shape[2]
    for j in range(k):
        total = 0
        for t in range(n_blocks):
            total += partial_counts[t, j]
        counts[j] = total
        # the same additions, from 0.0 in block order, with the features innermost: they vectorize
        # (the block loop innermost took 36 of ~40 us for k=200, d=64, two blocks)
        out = sums[j]
        for f in range(d):
            out[f] = 0.0
        for t in range(n_blocks):
            block = partial_sums[t, j]
            for f in range(d):
                out[f] += block[f]


@njit(parallel=True, cache=True, error_model="numpy")
def triangle_encode(cross, x_sq, c_sq, out):
    """The triangle encoding of Coates, Lee and Ng (2011): ``out[i, j] = max(0, mean_k z_ik - z_ij)``

    with ``z_ij = |x_i - c_j|`` (Euclidean distances). cross (n, k), x_sq (n,), c_sq (k,), out (n, k).
    """
    n, k = cross.shape
    for i in prange(n):
        total = 0.0
        for j in range(k):
            c = cross[i, j]
            d = x_sq[i] + c_sq[j] - (c + c)
            z = np.sqrt(d) if d > 0 else 0.0
            out[i, j] = z
            total += z
        mu = total / k
        for j in range(k):
            v = mu - out[i, j]
            out[i, j] = v if v > 0.0 else 0.0


@njit(parallel=True, cache=True, error_model="numpy")
def gather_patches(images, index, ys, xs, ph, pw, out):
    """``out[r] = images[index[r], :, ys[r]:ys[r] + ph, xs[r]:xs[r] + pw]`` flattened (channel, row, column).

    images (N, C, H, W); index, ys, xs (R,) int64 with every patch inside its image; out (R, C ph pw).
    """
    n_channels = images.shape[1]
    for r in prange(out.shape[0]):
        img, y0, x0 = index[r], ys[r], xs[r]
        f = 0
        for c in range(n_channels):
            for dy in range(ph):
                for dx in range(pw):
                    out[r, f] = images[img, c, y0 + dy, x0 + dx]
                    f += 1


@njit(cache=True, error_model="numpy")
def contrast_normalize_row(rows, i, eps):
    """In place, row ``i`` minus its mean, divided by ``sqrt(variance + eps)`` (the CUDA patches kernel
    compiles it too)."""
    d = rows.shape[1]
    mean = 0.0
    for f in range(d):
        mean += rows[i, f]
    mean /= d
    var = 0.0
    for f in range(d):
        var += (rows[i, f] - mean) ** 2
    scale = 1.0 / math.sqrt(var / d + eps)
    for f in range(d):
        rows[i, f] = (rows[i, f] - mean) * scale


@njit(parallel=True, cache=True, error_model="numpy")
def contrast_normalize(rows, eps):
    """In place, each row minus its mean, divided by ``sqrt(variance + eps)`` (Coates et al. 2011)."""
    for i in prange(rows.shape[0]):
        contrast_normalize_row(rows, i, eps)


@njit(parallel=True, cache=True, error_model="numpy")
def encode_pool(cross, z_sq, c_sq, n_y, n_x, region_y, region_x, hard, out):
    """Encode every patch position of N images and sum-pool the codes over regions.

    cross (N n_y n_x, k) = Z @ C.T for the whitened patches Z, rows in (image, y, x) order, and
    z_sq (N n_y n_x,), c_sq (k,) their squared norms. Position (y, x) adds its code to region
    (region_y[y], region_x[x]) of out (N, k, R, Q), which is overwritten. The code is the
    triangle encoding, or with ``hard`` a one-hot of the nearest centroid.
    """
    n_rows, k = cross.shape
    n_images = out.shape[0]
    per_image = n_y * n_x
    for n in prange(n_images):
        out[n] = 0.0
        z = np.empty(k, np.float64)
        for p in range(per_image):
            i = n * per_image + p
            ry = region_y[p // n_x]
            rx = region_x[p % n_x]
            if hard:
                c = cross[i, 0]
                best = c_sq[0] - (c + c)
                arg = 0
                for j in range(1, k):
                    c = cross[i, j]
                    d = c_sq[j] - (c + c)
                    if d < best:
                        best = d
                        arg = j
                out[n, arg, ry, rx] += 1.0
            else:
                total = 0.0
                for j in range(k):
                    c = cross[i, j]
                    d = z_sq[i] + c_sq[j] - (c + c)
                    z[j] = np.sqrt(d) if d > 0 else 0.0
                    total += z[j]
                mu = total / k
                for j in range(k):
                    if z[j] < mu:
                        out[n, j, ry, rx] += mu - z[j]
