"""ONNX agreement: a model written by ``nk.export_onnx`` gives ``model.forward``'s numbers in onnxruntime."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime import devices


class OnnxMismatch(AssertionError):
    """onnxruntime's outputs of an exported model disagree with the model's own."""


def check_onnx_export(model: Any, input_shape: Any, inputs: Any = None, *, rtol: float | None = None, seed: int = 0,
                      **options: Any) -> float:
    """Export ``model`` for ``input_shape`` and check onnxruntime's outputs against ``model.forward``.

    ``inputs`` is an array or a list of arrays (other batch sizes check a dynamic batch axis);
    by default one standard-normal batch of ``input_shape`` (2 samples for a ``None`` batch),
    drawn with ``seed`` (a model that takes indices needs ``inputs``). ``options`` go to
    :func:`nkernels.export_onnx` (``opset``, ``dtype``, ``dynamic_batch`` ...); the file is written to a temporary folder and removed. Each output
    must have ``model.forward``'s shape, the graph's dtype, and a max-norm difference relative
    to the largest value of at most ``rtol`` (default 1e-5 for a float32 graph, 1e-12 for
    float64). Returns the largest relative difference; raises :class:`OnnxMismatch` beyond it.
    Needs onnxruntime (``pip install "nkernels[onnx]"``).

    Example, for a plugin's exporter::

        from nkernels.testing import check_onnx_export
        check_onnx_export(nk.Sequential([nk.layers.Frozen(extractor), nk.layers.Dense(8, 2)]), (None, 5),
                          [X[:3], X[:1]])
    """
    from ..validation import check_float_dtype
    from ..export.onnx_export import export_onnx

    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError(f'check_onnx_export needs onnxruntime ({exc}); install the extra: '
                          f'pip install "nkernels[onnx]"') from None
    indices = np.dtype(model.input_dtype).kind in "iu"  # an Embedding's indices go in as int64
    if inputs is None and indices:
        raise ValueError("the model takes integer indices (its first layer is an Embedding): pass inputs, "
                         "arrays of valid indices")
    if inputs is None:
        batch = input_shape[0] or 2
        inputs = np.random.default_rng(seed).standard_normal((batch,) + tuple(input_shape[1:]))
    batches = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    with tempfile.TemporaryDirectory(prefix="nkernels-onnx-") as folder:
        path = Path(folder) / "model.onnx"
        export_onnx(model, path, input_shape, **options)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dtype = check_float_dtype(options.get("dtype") or model.dtype)
    tolerance = rtol if rtol is not None else (1e-5 if dtype == np.float32 else 1e-12)
    worst = 0.0
    for x in batches:
        x = np.asarray(x) if indices else np.asarray(x, model.dtype)  # indices are never cast from floats
        expected = np.asarray(devices.to_host(model.forward(x)), np.float64)
        actual = session.run(None, {session.get_inputs()[0].name: np.asarray(x, np.int64 if indices else dtype)})[0]
        if actual.shape != expected.shape or actual.dtype != dtype:
            raise OnnxMismatch(f"onnxruntime gave a {actual.dtype} array of shape {actual.shape} for a batch of "
                               f"shape {np.shape(x)}; the model gives shape {expected.shape} (graph dtype {dtype})")
        error = float(np.abs(actual - expected).max(initial=0.0)) / max(float(np.abs(expected).max(initial=0.0)),
                                                                      1e-30)
        if not error <= tolerance:
            raise OnnxMismatch(f"onnxruntime and model.forward differ by {error:.3g} (relative to the largest "
                               f"value) on a batch of shape {np.shape(x)}, more than the tolerance {tolerance:.1g}")
        worst = max(worst, error)
    return worst
