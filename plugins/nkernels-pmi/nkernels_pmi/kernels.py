"""Numba kernels of the PMI extractors: the co-activation statistics and the PMI matrix.

Plain functions on arrays, outputs preallocated; they trust their inputs (shapes, finite values):
the extractors check them first. Every reduction runs in a fixed order, so the results do not
depend on the number of threads.
"""
import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, error_model="numpy")
def activations(X, scale, threshold, out):
    """The activations (n, d) float64 of the rows of ``X``: ``X / scale`` (soft), clipped to [0, 1].

    With ``threshold`` > 0 they are binary: 1 where ``X / scale > threshold``, else 0.
    """
    n, d = X.shape
    for s in prange(n):
        for i in range(d):
            a = X[s, i] / scale[i]
            if a < 0.0:
                a = 0.0
            elif a > 1.0:
                a = 1.0
            if threshold > 0.0:
                a = 1.0 if a > threshold else 0.0
            out[s, i] = a


@njit(parallel=True, cache=True, error_model="numpy")
def cooccurrence(A, counts, marginals):
    """Co-activation counts ``counts[i, j] = sum_s A[s, i] A[s, j]`` (d, d) and ``marginals[i] = sum_s A[s, i]``.

    ``A`` (n, d) holds activations in [0, 1]. Row i of the counts is summed by one thread over
    the samples in order, skipping the samples where location i is silent (activations are
    mostly zeros); the lower triangle is then mirrored from the upper one.
    """
    n, d = A.shape
    for i in prange(d):
        total = 0.0
        for j in range(d):
            counts[i, j] = 0.0
        for s in range(n):
            a = A[s, i]
            if a != 0.0:
                total += a
                for j in range(i, d):
                    counts[i, j] += a * A[s, j]
        marginals[i] = total
    for i in range(d):
        for j in range(i):
            counts[i, j] = counts[j, i]


@njit(parallel=True, cache=True, error_model="numpy")
def pmi_matrix(counts, marginals, n_samples, smoothing, shift, positive, out):
    """The smoothed, shifted (and with ``positive`` rectified) PMI of every pair of locations (d, d).

    ``p(i, j) = (counts[i, j] + smoothing) / (n_samples + smoothing)`` and
    ``p(i) = (marginals[i] + smoothing) / (n_samples + smoothing)``;
    ``out[i, j] = log(p(i, j) / (p(i) p(j))) - shift``, then ``max(0, .)`` when ``positive``.
    """
    d = counts.shape[0]
    total = n_samples + smoothing
    for i in prange(d):
        pi = (marginals[i] + smoothing) / total
        for j in range(d):
            pj = (marginals[j] + smoothing) / total
            value = np.log((counts[i, j] + smoothing) / total / (pi * pj)) - shift
            if positive and value < 0.0:
                value = 0.0
            out[i, j] = value
