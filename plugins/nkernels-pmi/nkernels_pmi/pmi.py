"""The ``pmi-factorization`` extractor: one stage of PMI statistics, factorization, projection, nonlinearity."""
from __future__ import annotations

from typing import Any

import numpy as np

from nkernels.validation import check_bool, check_choice, check_int, check_number, check_rows, check_seed

from .state import FittedState

ACTIVATIONS = ("soft", "binary")
FACTORIZATIONS = ("svd", "nmf", "random")
NONLINEARITIES = ("relu-pm", "relu", "linear")
SCALES = ("global", "component", "none")
STATE_NAMES = ("scale", "components", "offset", "spread")
#: the values the options that only some settings use take when left at None
DEFAULT_THRESHOLD, DEFAULT_POWER, DEFAULT_MAX_ITER = 0.5, 0.5, 200


class PMIFactorization(FittedState):
    """Features from a factorized matrix of pointwise mutual information between input locations;
    registered as ``"pmi-factorization"``. One stage: stack stages with :class:`StackedPMI` or with
    ``nk.layers.Frozen``.

    ``fit(X)`` takes rows (n, d) of non-negative values, one column per input location (a pixel,
    or a unit of the stage below), and computes, for the activations ``a[s, i] = X[s, i] / m_i``
    (``m_i`` the largest training value of location i), thresholded at ``threshold`` (0.5 by
    default) into binary activations (``activation="binary"``, the default) or kept as they are
    (``"soft"``, in [0, 1]):

    - the co-activation statistics ``C[i, j] = sum_s a[s, i] a[s, j]`` and ``c[i] = sum_s a[s, i]``
      (a Numba kernel), as probabilities with additive smoothing ``smoothing`` (lambda > 0):
      ``p(i, j) = (C[i, j] + lambda) / (n + lambda)``, ``p(i) = (c[i] + lambda) / (n + lambda)``;
    - the PMI matrix ``PMI[i, j] = log(p(i, j) / (p(i) p(j))) - shift``, rectified to
      ``max(0, PMI)`` (positive PMI) unless ``positive=False``; ``shift = log k`` is the
      shifted PPMI of Levy and Goldberg (2014);
    - its factorization into ``n_components`` (k) vectors per location, W (d, k):
      ``factorization="svd"`` (default) takes ``U_k S_k ** singular_power`` of the truncated SVD
      (``singular_power`` 0.5 by default, as Levy and Goldberg recommend); ``"nmf"`` the basis of
      scikit-learn's non-negative factorization (``max_iter`` iterations, 200 by default, needs
      ``positive=True``); ``"random"`` ignores the statistics and draws Gaussian directions: the
      baseline of the same width.

    ``transform(X)`` projects the activations: ``z = (X / m) @ W``, centred by the mean training
    projection and divided by its spread (``scale="global"``: one RMS for all components, which
    keeps their relative sizes; ``"component"``: each its own standard deviation; ``"none"``),
    then applies ``nonlinearity``: ``"relu-pm"`` (default) gives ``[max(0, z), max(0, -z)]``
    (2k features), ``"relu"`` ``max(0, z)``, ``"linear"`` z. The features of ``"relu-pm"`` and
    ``"relu"`` are non-negative activations again, so a second stage can learn on them.

    ``seed`` seeds the NMF initialization and the random directions; the SVD is deterministic.
    Fitted state: ``scale`` (d,), ``components`` W (d, k), ``offset`` and ``spread`` (k,), in X's
    float dtype; after ``fit``, ``pmi_`` holds the PMI matrix.
    """

    def __init__(self, n_components: int = 64, activation: str = "binary", threshold: float | None = None,
                 smoothing: float = 1.0, shift: float = 0.0, positive: bool = True, factorization: str = "svd",
                 singular_power: float | None = None, nonlinearity: str = "relu-pm", scale: str = "global",
                 max_iter: int | None = None, seed: int | None = None):
        self._config = {"n_components": n_components, "activation": activation, "threshold": threshold,
                        "smoothing": smoothing, "shift": shift, "positive": positive, "factorization": factorization,
                        "singular_power": singular_power, "nonlinearity": nonlinearity, "scale": scale,
                        "max_iter": max_iter, "seed": seed}
        self.n_components = check_int(n_components, "n_components")
        self.activation = check_choice(activation, "activation", ACTIVATIONS)
        self.factorization = check_choice(factorization, "factorization", FACTORIZATIONS)
        _only_with(threshold, "threshold", self.activation == "binary", "activation='binary'")
        _only_with(singular_power, "singular_power", self.factorization == "svd", "factorization='svd'")
        _only_with(max_iter, "max_iter", self.factorization == "nmf", "factorization='nmf'")
        self.threshold = check_number(DEFAULT_THRESHOLD if threshold is None else threshold, "threshold",
                                      low=0, high=1, low_open=True, high_open=True)
        self.smoothing = check_number(smoothing, "smoothing", low=0, low_open=True)
        self.shift = check_number(shift, "shift", low=0)
        self.positive = check_bool(positive, "positive")
        if self.factorization == "nmf" and not self.positive:
            raise ValueError("factorization='nmf' needs a non-negative matrix: keep positive=True, or use 'svd'")
        self.singular_power = check_number(DEFAULT_POWER if singular_power is None else singular_power,
                                           "singular_power", low=0)
        self.max_iter = check_int(DEFAULT_MAX_ITER if max_iter is None else max_iter, "max_iter")
        self.nonlinearity = check_choice(nonlinearity, "nonlinearity", NONLINEARITIES)
        self.scale = check_choice(scale, "scale", SCALES)
        self.seed = check_seed(seed)

    @property
    def n_features_out(self) -> int:
        """The number of features ``transform`` gives."""
        return 2 * self.n_components if self.nonlinearity == "relu-pm" else self.n_components

    # -- fitting --------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> "PMIFactorization":
        """Learn the factors from the rows of non-negative activations ``X`` (n, d); ``y`` is ignored. Returns self."""
        from nkernels.runtime.threads import blas_single_threaded

        X = check_rows(X)
        n, d = X.shape
        if n < 2:
            raise ValueError(f"fit needs at least 2 samples to estimate co-activations, got {n}")
        lowest = float(X.min())
        if lowest < 0:
            raise ValueError(f"X holds negative values (minimum {lowest:g}); co-activation statistics need "
                             f"non-negative activations: rectify or shift the inputs first (a stage below with "
                             f"nonlinearity='relu-pm' or 'relu' gives non-negative features)")
        if self.factorization != "random" and self.n_components > d:
            raise ValueError(f"n_components={self.n_components} exceeds the {d} input locations; a rank-"
                             f"{self.n_components} factorization of a {d} x {d} matrix needs n_components <= {d}")
        with blas_single_threaded():  # BLAS threads and Numba's threads would contend
            scale, W, P = self._factors(X)
            Z = (X / scale) @ W
        offset = Z.mean(axis=0)
        if self.scale == "global":
            spread = np.full(self.n_components, np.sqrt(np.mean((Z - offset) ** 2)))
        elif self.scale == "component":
            spread = Z.std(axis=0)
        else:
            spread = np.ones(self.n_components)
        spread[spread < 1e-12] = 1.0
        dtype = X.dtype
        self._adopt({"scale": scale.astype(dtype), "components": np.ascontiguousarray(W, dtype=dtype),
                     "offset": offset.astype(dtype), "spread": spread.astype(dtype)})
        self.pmi_ = P
        return self

    def _factors(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The location scales (d,), the factors W (d, k) and the PMI matrix (d, d) of the rows of ``X``."""
        from . import statistics

        scale = statistics.location_scale(X)
        counts, marginals = statistics.cooccurrence(X, scale, self.threshold if self.activation == "binary" else 0.0)
        P = statistics.pmi(counts, marginals, len(X), self.smoothing, self.shift, self.positive)
        if self.factorization == "svd":
            W = statistics.svd_factors(P, self.n_components, self.singular_power)
        elif self.factorization == "nmf":
            W = statistics.nmf_factors(P, self.n_components, self.max_iter, self.seed)
        else:
            W = statistics.random_factors(X.shape[1], self.n_components, self.seed)
        return scale, W, P

    # -- using it -------------------------------------------------------------------------------
    def transform(self, X: Any) -> np.ndarray:
        """The features (n, 2k for ``"relu-pm"``, else k) of the rows of ``X`` (n, d), in the fitted dtype."""
        state = self._check_fitted()
        W = state["components"]
        X = np.ascontiguousarray(check_rows(X, W.shape[0]), dtype=W.dtype)
        z = (X / state["scale"]) @ W
        z -= state["offset"]
        z /= state["spread"]
        if self.nonlinearity == "relu-pm":
            return np.concatenate([np.maximum(z, 0), np.maximum(-z, 0)], axis=1)
        if self.nonlinearity == "relu":
            return np.maximum(z, 0, out=z)
        return z

    def _state_names(self) -> list[str]:
        return list(STATE_NAMES)


def _only_with(value: Any, name: str, used: bool, setting: str) -> None:
    """Refuse an option given where it has no effect."""
    if value is not None and not used:
        raise ValueError(f"{name} has an effect only with {setting}; leave it unset (None) otherwise")
