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
import importlib.abc
import importlib.util
import sys
import warnings
from typing import Any

from ._version import __version__
from .plugins.marker import hookimpl

_SUBMODULES = {"layers", "losses", "optimizers", "schemes", "registry", "plugins", "datasets", "testing",
               "errors", "callbacks", "compiled", "kernels", "training", "trainers", "passes", "sklearn",
               "validation", "runtime", "export", "cli", "schedules", "history", "model", "leaderboard"}
#: public names that live in a subpackage: ``nk.interop`` is :mod:`nkernels.runtime.interop`
_SHORTCUTS = {"interop": "runtime.interop", "presets": "cli.presets", "io": "export.io"}
_ATTRIBUTES = {
    "Sequential": ("model", "Sequential"),
    "train": ("training", "train"),
    "evaluate": ("training", "evaluate"),
    "compare": ("leaderboard", "compare"),
    "save": ("export.io", "save"),
    "load": ("export.io", "load"),
    "export_onnx": ("export.onnx_export", "export_onnx"),
    "History": ("history", "History"),
    "PluginConflictError": ("errors", "PluginConflictError"),
    "TrainingDivergedError": ("errors", "TrainingDivergedError"),
}
#: modules that moved into packages in 0.2 (see CHANGELOG.md): the old paths still import, with a
#: DeprecationWarning naming the new one
MOVED_MODULES = {
    "nkernels.devices": "nkernels.runtime.devices",
    "nkernels.threads": "nkernels.runtime.threads",
    "nkernels.cache": "nkernels.runtime.cache",
    "nkernels.interop": "nkernels.runtime.interop",
    "nkernels.distributed": "nkernels.runtime.distributed",
    "nkernels.io": "nkernels.export.io",
    "nkernels.onnx_export": "nkernels.export.onnx_export",
    "nkernels.onnx_exporters": "nkernels.export.onnx_layers",
    "nkernels.hookspecs": "nkernels.plugins.hookspecs",
    "nkernels.plugin_marker": "nkernels.plugins.marker",
    "nkernels.kernel_registry": "nkernels.plugins.kernels",
    "nkernels.builtins": "nkernels.plugins.builtins",
    "nkernels.presets": "nkernels.cli.presets",
    "nkernels.plotting": "nkernels.cli.plotting",
    "nkernels.bench": "nkernels.cli.bench",
    "nkernels.bench_jax": "nkernels.cli.bench_jax",
    "nkernels.data": "nkernels.validation",
}

__all__ = ["__version__", "hookimpl", *sorted(_ATTRIBUTES), *sorted(_SUBMODULES | set(_SHORTCUTS))]


class _MovedModule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module path as the module at its new place (the same object), with a warning."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> Any:
        new = MOVED_MODULES[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; import it from there", DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module: Any) -> None:
        """The module is already executed at its new place."""


if not any(isinstance(finder, _MovedModule) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModule())


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES or name in _SHORTCUTS:
        module = importlib.import_module(f".{_SHORTCUTS.get(name, name)}", __name__)
        globals()[name] = module
        return module
    if name in _ATTRIBUTES:
        module_name, attr = _ATTRIBUTES[name]
        value = getattr(importlib.import_module(f".{module_name}", __name__), attr)
        globals()[name] = value
        return value
    if f"{__name__}.{name}" in MOVED_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'nkernels' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES | set(_SHORTCUTS) | set(_ATTRIBUTES))
