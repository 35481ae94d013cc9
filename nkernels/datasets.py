"""Built-in datasets and the ``load`` helper that reads ``nk.registry.datasets``."""
from __future__ import annotations

from typing import Any

import numpy as np

DIGITS_TEST_SIZE = 0.3


def load_digits(flat: bool = True, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 handwritten digits, scaled to [0, 1], with a stratified 70/30 split.

    Returns ``(X_train, y_train, X_test, y_test)``: X as float32, (N, 64) when ``flat`` and
    (N, 1, 8, 8) images otherwise; y as int64 labels 0-9. The split is
    ``train_test_split(test_size=0.3, stratify=y, random_state=seed)``, fixed for a given seed.
    """
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    digits = sk_load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=DIGITS_TEST_SIZE, stratify=y,
                                                        random_state=seed)
    if not flat:
        X_train, X_test = X_train.reshape(-1, 1, 8, 8), X_test.reshape(-1, 1, 8, 8)
    return (np.ascontiguousarray(X_train), y_train, np.ascontiguousarray(X_test), y_test)


def load(name: str, **options: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load a registered dataset by name: ``(X_train, y_train, X_test, y_test)``."""
    from . import registry

    loader = registry.datasets[name]
    result = loader(**options)
    if not isinstance(result, tuple) or len(result) != 4:
        raise TypeError(f"dataset loader {name!r} must return (X_train, y_train, X_test, y_test)")
    return result
