"""The checks of a trainer's ``run`` arguments, made before any kernel runs.

The compiled steps gather each batch's rows and targets by index without bounds checks (as every
Numba kernel does), so an ``order`` too short for the batches asked for, an index past the data's
rows, rows of the wrong width or a label past the model's classes would make them read outside
the arrays. Every trainer's ``run`` refuses those first, with a ValueError or TypeError that says
what was expected; the checks cost a few microseconds a call (a pass over the run's indices and
over their labels).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..runtime import devices
from ..validation import check_int


def check_run_arguments(X2d: Any, Y: Any, order: Any, start: Any, n_batches: Any, batch_size: Any,
                        last_batch: Any, sample_shape: tuple[int, ...], output_shape: tuple[int, ...],
                        target_kind: str) -> tuple[int, int, int, int]:
    """Check the arguments of a trainer's ``run`` (see :mod:`nkernels.trainers`) against the
    model's sample and output shapes (``output_shape`` of one sample, batch first) and the loss's
    ``target_kind``; returns ``start``, ``n_batches``, ``batch_size`` and ``last_batch`` as ints."""
    start, n_batches = check_int(start, "start", 0), check_int(n_batches, "n_batches", 0)
    batch_size, last_batch = check_int(batch_size, "batch_size"), check_int(last_batch, "last_batch", 0)
    features = math.prod(sample_shape)
    shape = tuple(getattr(X2d, "shape", ()))
    if len(shape) != 2 or shape[1] != features:
        raise ValueError(f"X2d must hold one sample a row, (N, {features}) for samples of shape {tuple(sample_shape)}, "
                         f"got shape {shape}")
    order = np.asarray(order)
    if order.ndim != 1 or order.dtype.kind not in "iu":
        raise TypeError(f"order must be a 1-D array of row indices, got {order.dtype} of shape {order.shape}")
    rows = n_batches * batch_size + last_batch
    if start + rows > len(order):
        more = f" and one of {last_batch}" if last_batch else ""
        raise ValueError(f"{n_batches} batches of {batch_size} rows{more} from position {start} need {start + rows} "
                         f"entries of order, it has {len(order)}")
    used = order[start:start + rows]
    if used.size and (used.min() < 0 or used.max() >= shape[0]):
        raise ValueError(f"order must hold row indices of X2d (0 to {shape[0] - 1}), got values from {used.min()} "
                         f"to {used.max()}")
    _check_targets(Y, shape[0], used, output_shape, target_kind)
    return start, n_batches, batch_size, last_batch


def _check_targets(Y: Any, n: int, used: np.ndarray, output_shape: tuple[int, ...], target_kind: str) -> None:
    """Targets in the loss's kernel form: labels ``(N,)`` (``(N, T)`` for a sequence's tokens), or
    value targets one row per sample; the labels of the rows ``used`` within the classes."""
    labels = target_kind == "labels"
    expected = (n,) + tuple(output_shape[1:-1]) if labels else (n, math.prod(output_shape[1:]))
    shape = tuple(getattr(Y, "shape", ()))
    if shape != expected:
        what = "labels, one class index per output row" if labels else "targets, one row per sample"
        raise ValueError(f"Y must hold the {what}: shape {expected} for outputs of shape (N, "
                         f"{', '.join(map(str, output_shape[1:]))}), got {shape}")
    if not labels or devices.is_device_array(Y):
        return
    if np.dtype(Y.dtype).kind not in "iu":
        raise TypeError(f"labels must be integers (class indices), got {Y.dtype}")
    classes, read = output_shape[-1], Y[used]  # only the run's rows: a call per batch stays a batch's work
    if read.size and (read.min() < 0 or read.max() >= classes):
        raise ValueError(f"labels must lie in [0, {classes - 1}] for a model with {classes} outputs, got values "
                         f"from {read.min()} to {read.max()}")


__all__ = ["check_run_arguments"]
