"""Samples of a generator: its outputs for latent vectors drawn from N(0, 1)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .validation import check_int, check_seed


def latent_dim(generator: Any) -> int:
    """The width of ``generator``'s latent vectors: its first layer's ``in_features`` (a Dense).

    A generator whose first layer does not say its input width is a TypeError naming the way out.
    """
    layers = getattr(generator, "layers", None)
    if not layers:
        raise TypeError(f"a generator must be an nk.Sequential with layers, got {generator!r}")
    width = getattr(layers[0], "in_features", None)
    if not isinstance(width, (int, np.integer)):
        raise TypeError(f"the generator's first layer, {layers[0]!r}, does not say its input width (in_features); "
                        f"start the generator with a Dense layer taking the latent vector")
    return int(width)


def sample(generator: Any, n: int, seed: Any = None) -> np.ndarray:
    """``n`` samples of ``generator``: ``generator.forward(z)`` (evaluation mode) for ``z`` of
    shape ``(n, latent_dim)`` drawn from N(0, 1) with ``np.random.default_rng(seed)``, in the
    generator's dtype. The same seed gives the same samples; ``latent_dim`` is the generator's
    first layer's ``in_features``.

    Example: ``nk.sample(G, 100, seed=0)`` after ``nk.train(D, X, scheme="gan", generator=G)``.
    """
    n = check_int(n, "n")
    width = latent_dim(generator)
    z = np.random.default_rng(check_seed(seed)).standard_normal((n, width)).astype(generator.dtype)
    from .runtime.threads import blas_single_threaded

    with blas_single_threaded():
        return np.asarray(generator.forward(z))


__all__ = ["sample", "latent_dim"]
