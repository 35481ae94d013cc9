"""Checks on training data, run before any kernel sees it."""
from __future__ import annotations

from typing import Any

import numpy as np

from .layers.base import as_numeric_array, check_positive_int


def check_features(X: Any, name: str = "X", dtype: Any = None) -> np.ndarray:
    """``X`` as a C-contiguous float array with samples on the first axis; clear errors for bad input."""
    arr = as_numeric_array(X, name)
    if arr.ndim < 2:
        raise ValueError(f"{name} must have a sample axis and feature axes (at least 2-D), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); training needs at least one sample")
    if arr.size == 0:
        raise ValueError(f"{name} has no features (shape {arr.shape})")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite values; clean or impute them first")
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype=dtype or (arr.dtype if arr.dtype.kind == "f" else np.float32))
    if out.dtype != arr.dtype and not np.all(np.isfinite(out)):
        raise ValueError(f"{name} holds values too large for {out.dtype} (largest magnitude "
                         f"{float(np.abs(arr).max()):g}); rescale it first")
    return out


def check_same_length(X: np.ndarray, y: Any, x_name: str = "X", y_name: str = "y") -> None:
    """Raise a ValueError unless ``X`` and ``y`` have as many samples."""
    if y is None:
        raise ValueError(f"{y_name} is required: this scheme learns from targets")
    n_y = len(y)
    if n_y != len(X):
        raise ValueError(f"{x_name} has {len(X)} samples but {y_name} has {n_y}; they must match")


def check_fit_arguments(epochs: Any, batch_size: Any) -> tuple[int, int]:
    """``epochs`` and ``batch_size`` as positive ints."""
    return check_positive_int(epochs, "epochs"), check_positive_int(batch_size, "batch_size")


def check_model_input(model: Any, X: np.ndarray, name: str = "X") -> tuple[int, ...]:
    """Run one sample through the model (evaluation mode) so that shape errors surface now.

    Returns the output's shape for the whole of ``X``.
    """
    try:
        out = model.forward(X[:1], training=False)
    except ValueError as exc:
        raise ValueError(f"{name} of shape {X.shape} does not fit the model: {exc}") from None
    return (len(X),) + tuple(out.shape[1:])


def check_validation_data(validation_data: Any, model: Any, loss: Any) -> tuple[np.ndarray, Any]:
    """``(X_val, y_val)`` checked as the training data is, before training starts.

    Returns ``X_val`` as a contiguous array of the model's dtype and ``y_val`` as given; errors
    name ``X_val`` or ``y_val``.
    """
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError(f"validation_data must be a pair (X_val, y_val), got {type(validation_data).__name__}")
    X_val, y_val = validation_data
    X_val = check_features(X_val, "X_val", dtype=model.dtype)
    check_same_length(X_val, y_val, "X_val", "y_val")
    out_shape = check_model_input(model, X_val, "X_val")
    try:
        loss.prepare_targets(y_val, out_shape, model.dtype)
    except (TypeError, ValueError) as exc:
        raise (TypeError if isinstance(exc, TypeError) else ValueError)(f"y_val: {exc}") from None
    return X_val, y_val
