"""From rows of activations to a factorized PMI matrix: the kernels' callers, and the factorizations."""
from __future__ import annotations

import numpy as np


def location_scale(X: np.ndarray) -> np.ndarray:
    """The largest training value of each location (1 where it never exceeds 0), float64: ``X / scale`` is in [0, 1]."""
    scale = X.max(axis=0).astype(np.float64)
    scale[scale <= 0] = 1.0
    return scale


def cooccurrence(X: np.ndarray, scale: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Co-activation counts (d, d) and marginals (d,), float64, of the rows of ``X`` scaled by ``scale``
    (soft activations; binary ones where ``threshold`` > 0)."""
    from . import kernels

    A = np.empty(X.shape, np.float64)
    kernels.activations(X, scale, float(threshold), A)
    counts = np.empty((X.shape[1], X.shape[1]), np.float64)
    marginals = np.empty(X.shape[1], np.float64)
    kernels.cooccurrence(A, counts, marginals)
    return counts, marginals


def pmi(counts: np.ndarray, marginals: np.ndarray, n_samples: int, smoothing: float, shift: float,
        positive: bool) -> np.ndarray:
    """The (positive, shifted, smoothed) PMI matrix (d, d) of :func:`nkernels_pmi.kernels.pmi_matrix`."""
    from . import kernels

    out = np.empty_like(counts)
    kernels.pmi_matrix(counts, marginals, float(n_samples), float(smoothing), float(shift), bool(positive), out)
    return out


def svd_factors(P: np.ndarray, k: int, power: float) -> np.ndarray:
    """``U_k diag(S_k) ** power`` (d, k) of the SVD ``P = U S V^T``, each column's sign fixed so that its
    largest-magnitude entry is positive (the SVD alone leaves the signs arbitrary)."""
    U, S, _ = np.linalg.svd(P)
    W = U[:, :k] * S[:k] ** power
    signs = np.sign(W[np.argmax(np.abs(W), axis=0), np.arange(k)])
    return W * np.where(signs == 0, 1.0, signs)


def nmf_factors(P: np.ndarray, k: int, max_iter: int, seed: int | None) -> np.ndarray:
    """The basis (d, k) of scikit-learn's non-negative factorization ``P ~ W H`` (``H.T``: one row per location)."""
    import warnings

    from sklearn.decomposition import NMF
    from sklearn.exceptions import ConvergenceWarning

    model = NMF(n_components=k, init="nndsvda", max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings():  # a short max_iter is a legitimate choice for features
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(P)
    return np.ascontiguousarray(model.components_.T)


def random_factors(d: int, k: int, seed: int | None) -> np.ndarray:
    """Gaussian directions (d, k) with variance 1/d: the baseline that ignores the PMI matrix."""
    return np.random.default_rng(seed).standard_normal((d, k)) / np.sqrt(d)
