"""Kernel records: which function implements an op on a device, and at what priority."""
from __future__ import annotations

import ast
import functools
import importlib
import inspect
from dataclasses import dataclass
from typing import Callable

DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class KernelRecord:
    """An implementation of ``op`` (e.g. ``"dense_forward"``) on ``device`` (``"cpu"``/``"cuda"``).

    Built-in kernels have priority 0. A plugin's kernel replaces a built-in only with a higher
    priority; equal priorities from two plugins are a conflict.
    """

    op: str
    device: str
    function: Callable
    priority: int = 0

    def __post_init__(self):
        if self.device not in DEVICES:
            raise ValueError(f"KernelRecord device must be one of {DEVICES}, got {self.device!r}")
        if not isinstance(self.op, str) or not self.op:
            raise TypeError(f"KernelRecord op must be a non-empty string, got {self.op!r}")


def records_from_module(module_name: str, device: str, priority: int = 0) -> list[KernelRecord]:
    """A record for every Numba kernel defined in ``module_name`` (helpers and imports are skipped)."""
    module = importlib.import_module(module_name)
    return [KernelRecord(name, device, obj, priority) for name, obj in vars(module).items()
            if not name.startswith("_") and _defined_kernel(module, name, obj)]


def _defined_kernel(module, name: str, obj) -> bool:
    """Whether ``obj`` is a Numba kernel that ``module`` defines (not a Python helper, not an import)."""
    from numba import config as numba_config

    if numba_config.DISABLE_JIT:  # the decorators returned the plain functions: the source tells them apart
        return getattr(obj, "__module__", None) == module.__name__ and name in _jit_decorated_functions(module)
    py_func = getattr(obj, "py_func", None)
    return py_func is not None and py_func.__module__ == module.__name__


@functools.lru_cache(maxsize=None)
def _jit_decorated_functions(module) -> frozenset[str]:
    """The names of the module-level functions written with Numba's ``njit`` or ``jit`` decorator
    (bare, called, or as an attribute: ``numba.njit(cache=True)``)."""
    names = set()
    for node in ast.parse(inspect.getsource(module)).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if (target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)) in ("njit", "jit"):
                names.add(node.name)
    return frozenset(names)


class LazyKernel:
    """A kernel imported on its first call: ``module:name``.

    The built-in CUDA kernels are registered this way, so that loading the plugins never
    imports numba.cuda (nor needs numba-cuda installed) until a CUDA kernel actually runs.
    """

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name
        self._function: Callable | None = None

    @property
    def function(self) -> Callable:
        """The kernel itself (imports its module on first use)."""
        if self._function is None:
            self._function = getattr(importlib.import_module(self.module), self.name)
        return self._function

    def __call__(self, *args, **kwargs):
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"LazyKernel({self.module}:{self.name})"


def kernel(op: str, device: str = "cpu") -> Callable:
    """The kernel function in force for ``op`` on ``device`` (loads the plugins on first use).

    For the CPU it first starts Numba's pool of ``prange`` threads (once per process): a kernel that
    Numba compiled while every parallel function it calls came from its cache is cached without the
    call that starts them, and segfaults when loaded as a process's first parallel code
    (numba/numba#8578; the conv kernels share their parallel helpers, so this happens to them).
    """
    from .. import registry

    if device == "cpu":
        from ..runtime.threads import start_parallel_runtime

        start_parallel_runtime()
    return registry.kernels[(op, device)]
