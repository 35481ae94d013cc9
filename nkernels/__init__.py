"""nkernels: deep-learning layers whose passes are Numba kernels, and a plugin system for new ways to train.

Quick tour::

    import nkernels as nk
    L = nk.layers
    model = nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 10)], seed=0)
    X, y, X_test, y_test = nk.datasets.load("digits")
    history = nk.train(model, X, y, epochs=10, batch_size=32, optimizer="adam", lr=1e-3,
                       validation_data=(X_test, y_test), seed=0)
    nk.evaluate(model, X_test, y_test)        # {"loss": ..., "accuracy": ...}

Importing nkernels compiles nothing and loads no plugin; submodules load on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__
from .plugin_marker import hookimpl

_SUBMODULES = {"layers", "losses", "optimizers", "schemes", "registry", "plugins", "datasets", "testing",
               "errors", "callbacks", "compiled", "kernels", "presets", "io", "hookspecs", "training", "sklearn",
               "interop"}
_ATTRIBUTES = {
    "Sequential": ("model", "Sequential"),
    "train": ("training", "train"),
    "evaluate": ("training", "evaluate"),
    "save": ("io", "save"),
    "load": ("io", "load"),
    "export_onnx": ("onnx_export", "export_onnx"),
    "History": ("history", "History"),
    "PluginConflictError": ("errors", "PluginConflictError"),
    "TrainingDivergedError": ("errors", "TrainingDivergedError"),
}

__all__ = ["__version__", "hookimpl", *sorted(_ATTRIBUTES), *sorted(_SUBMODULES)]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    if name in _ATTRIBUTES:
        module_name, attr = _ATTRIBUTES[name]
        value = getattr(importlib.import_module(f".{module_name}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nkernels' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES | set(_ATTRIBUTES))
