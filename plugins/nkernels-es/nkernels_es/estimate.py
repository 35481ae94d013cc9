"""Fitness shaping and the antithetic gradient estimate of OpenAI-ES (Salimans et al. 2017).

With ``n`` antithetic pairs ``theta +- sigma * eps_i`` whose (shaped) returns are ``r+_i`` and
``r-_i``, the estimate is, as in the paper's code::

    g = sum_i (r+_i - r-_i) * eps_i / (2 n)

It is not divided by ``sigma`` (Adam's step does not care about the scale), and the step is the
optimizer's on ``-g`` (plus ``weight_decay * theta``). With raw returns, ``g / sigma`` estimates
the gradient of the Gaussian-smoothed fitness ``E[f(theta + sigma eps)]``.
"""
from __future__ import annotations

import numpy as np

from .noise import NoiseTable

SHAPINGS = ("centered_rank", "none")


def centered_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks of ``values`` scaled to [-0.5, 0.5] (the lowest -0.5, the highest 0.5), as float64.

    Tied values share their average rank, so equal returns get equal weights (the paper's code
    ranks ties by position, which would make a constant fitness look like a slope).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        raise ValueError(f"centered ranks need at least 2 values, got {values.size}")
    _, inverse, counts = np.unique(values.ravel(), return_inverse=True, return_counts=True)
    last = np.cumsum(counts) - 1                   # the rank of the last copy of each distinct value
    average = last - (counts - 1) / 2.0            # the mean rank of its copies
    return (average[inverse] / (values.size - 1) - 0.5).reshape(values.shape)


def shape_fitness(fitness: np.ndarray, shaping: str) -> np.ndarray:
    """``fitness`` (n, 2) transformed by ``shaping``: ``"centered_rank"`` or ``"none"`` (unchanged)."""
    if shaping == "centered_rank":
        return centered_ranks(fitness)
    if shaping == "none":
        return np.asarray(fitness, dtype=np.float64)
    raise ValueError(f"unknown fitness shaping {shaping!r}; available: {', '.join(SHAPINGS)}")


def gradient_estimate(noise: NoiseTable, offsets: np.ndarray, returns: np.ndarray, dim: int) -> np.ndarray:
    """``sum_i (returns[i, 0] - returns[i, 1]) * noise.get(offsets[i], dim) / (2 n)`` as float64 (dim,).

    ``returns[i, 0]`` belongs to ``theta + sigma * eps_i`` and ``returns[i, 1]`` to its antithetic
    twin. One parallel pass over the table; the order of the sum does not depend on the threads.
    """
    from .kernels import weighted_noise_sum

    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    returns = np.asarray(returns, dtype=np.float64)
    if returns.ndim != 2 or returns.shape != (len(offsets), 2):
        raise ValueError(f"returns must have shape (pairs, 2) = ({len(offsets)}, 2), got {returns.shape}")
    noise.check_dim(dim)
    if len(offsets) == 0:
        raise ValueError("the gradient estimate needs at least one antithetic pair")
    if offsets.min() < 0 or offsets.max() > noise.size - dim:
        raise ValueError(f"offsets must lie in [0, {noise.size - dim}] for {dim} parameters")
    weights = (returns[:, 0] - returns[:, 1]) / returns.size
    out = np.empty(dim)
    weighted_noise_sum(noise.table, offsets, weights, out)
    return out
