"""Numerical gradient checks: analytic gradients against central finite differences in float64."""
from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np


class GradientMismatch(AssertionError):
    """An analytic gradient disagrees with the finite-difference estimate."""


def _sample_indices(size: int, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    if limit is None or size <= limit:
        return np.arange(size)
    return np.sort(rng.choice(size, limit, replace=False))


def _compare(name: str, analytic: np.ndarray, numeric: np.ndarray, rtol: float, atol: float) -> float:
    error = np.abs(analytic - numeric)
    scale = np.maximum(np.abs(analytic), np.abs(numeric))
    bad = error > atol + rtol * scale
    if np.any(bad):
        i = int(np.argmax(np.where(bad, error, -1)))
        raise GradientMismatch(
            f"gradient of {name} disagrees with finite differences at {np.count_nonzero(bad)} of "
            f"{bad.size} checked elements; worst: analytic {analytic[i]:.8g} vs numeric {numeric[i]:.8g}")
    return float(np.max(error / np.maximum(scale, atol), initial=0.0))


def _numeric_gradient(f: Callable[[], float], array: np.ndarray, indices: np.ndarray, eps: float) -> np.ndarray:
    flat = array.reshape(-1)
    out = np.empty(len(indices))
    for k, i in enumerate(indices):
        saved = flat[i]
        flat[i] = saved + eps
        up = f()
        flat[i] = saved - eps
        down = f()
        flat[i] = saved
        out[k] = (up - down) / (2 * eps)
    return out


def check_layer_gradients(layer: Any, input_shape: tuple[int, ...], dtype: Any = np.float64, *,
                          seed: int = 0, eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-8,
                          max_checks: int | None = 200, inputs: np.ndarray | None = None) -> dict[str, float]:
    """Check the input gradient and every parameter gradient of ``layer`` numerically.

    A copy of the layer is cast to ``dtype`` (float64 by default, which the check needs); the
    layer itself is left as it was. The scalar checked is ``sum(forward(x) * r)`` for a fixed
    random ``r``, in training mode; the layer's ``buffers`` are restored before every
    evaluation, so random layers such as dropout see the same mask each time. ``max_checks``
    bounds the elements checked per array (a random subset); ``inputs`` replaces the random
    input (for layers that need inputs away from kinks, or positive ones). A layer that takes
    integer indices (an Embedding: ``input_dtype``) needs ``inputs``, valid indices, which have
    no gradient: only its parameters are checked. Returns the worst relative error per array
    (``"input"`` and each parameter's name); raises :class:`GradientMismatch` on a mismatch.

    Example::

        from nkernels.testing import check_layer_gradients
        check_layer_gradients(nk.layers.Dense(5, 3), (4, 5))
    """
    rng = np.random.default_rng(seed)
    layer = copy.deepcopy(layer).astype(dtype)
    indices = getattr(layer, "input_dtype", None) is not None
    if indices:
        if inputs is None:
            raise ValueError(f"{type(layer).__name__} takes integer indices: pass inputs=, an array of valid indices")
        x = np.array(inputs)
        if x.dtype.kind not in "iu":
            raise TypeError(f"{type(layer).__name__} takes integer indices, got inputs of dtype {x.dtype}")
    else:
        x = (rng.standard_normal(input_shape) if inputs is None else np.array(inputs, dtype=float)).astype(dtype)
    buffers = {k: np.array(v) for k, v in layer.buffers.items()}
    y = layer.forward(x, training=True)
    r = rng.standard_normal(y.shape).astype(dtype)
    dx = np.asarray(layer.backward(r))
    grads = {k: np.array(v) for k, v in layer.grads.items()}

    def objective() -> float:
        for k, v in buffers.items():  # the same random state each time, e.g. the same dropout mask
            layer.buffers[k][...] = v
        return float(np.sum(np.asarray(layer.forward(x, training=True), dtype=np.float64) * r))

    report = {}
    if not indices:
        checked = _sample_indices(x.size, max_checks, rng)
        report["input"] = _compare("the input", dx.reshape(-1)[checked],
                                   _numeric_gradient(objective, x, checked, eps), rtol, atol)
    for name, param in layer.params.items():
        checked = _sample_indices(param.size, max_checks, rng)
        numeric = _numeric_gradient(objective, param, checked, eps)
        report[name] = _compare(f"parameter {name!r}", grads[name].reshape(-1)[checked], numeric, rtol, atol)
    return report


def check_loss_gradients(loss: Any, outputs: np.ndarray, targets: np.ndarray, *, eps: float = 1e-6,
                         rtol: float = 1e-5, atol: float = 1e-8) -> float:
    """Check ``loss.backward()`` against finite differences of ``loss.forward`` at ``outputs`` (float64)."""
    outputs = np.array(outputs, dtype=np.float64)
    loss.forward(outputs, targets)
    analytic = np.asarray(loss.backward()).reshape(-1)
    indices = np.arange(outputs.size)
    numeric = _numeric_gradient(lambda: loss.forward(outputs, targets), outputs, indices, eps)
    return _compare(f"{type(loss).__name__} outputs", analytic, numeric, rtol, atol)
