"""Generated steps call their kernels by address instead of compiling them in again.

Numba compiles a function that calls another ``@njit`` function by linking the callee's whole call
tree into the caller's module and optimizing and generating machine code for all of it once more. A
training step calls every kernel of its model, so each new step re-optimized the convolutions,
GEMMs and recurrent cells it calls: a small conv model's first run took 4.8 s with all its kernels
cached, 1.9 s now.

A generated step module wraps each kernel it imports in :class:`KernelByAddress`. Numba types a
call through it exactly as a call of the kernel (the same overloads, literal specializations
included), but the call is compiled as a call of an external symbol named after the kernel and its
signature (:func:`symbol_name`), whose address this process registers with LLVM. The step's machine
code holds only the step.

A step loaded from Numba's cache needs those symbols before its machine code is loaded: a missing
one would be a call through a null address. :class:`StepFunctionCache` is the cache of each
generated step function: beside every entry it saves, it writes the kernels and signatures the
entry calls (a ``.kernels`` file); before loading an entry it compiles or loads those overloads and
registers their symbols. An entry without a readable list, or whose kernels cannot all be had, is
compiled anew rather than loaded.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import pickle
import tempfile
import threading
from typing import Any, cast

from numba.core import cgutils, types
from numba.core.caching import FunctionCache
from numba.core.dispatcher import Dispatcher
from numba.core.imputils import impl_ret_new_ref, lower_builtin, lower_constant
from numba.extending import models, register_model, typeof_impl

__all__ = ["KernelByAddress", "StepFunctionCache", "cache_step_functions", "symbol_name"]

#: the (module, name, argument types) of each kernel overload the step being compiled calls
_recording = threading.local()


class KernelByAddress:
    """A kernel that generated Numba code calls through its address (see the module's docstring).

    Called from Python (or with ``NUMBA_DISABLE_JIT=1``) it is the kernel itself.
    """

    def __init__(self, kernel: Any):
        self.kernel = self.__wrapped__ = kernel

    def __call__(self, *args):
        return self.kernel(*args)

    def __repr__(self) -> str:
        return f"KernelByAddress({self.kernel!r})"


def symbol_name(kernel: Dispatcher, argtypes: tuple) -> str:
    """The symbol under which generated code finds ``kernel``'s overload for ``argtypes``."""
    fn = kernel.py_func
    digest = hashlib.sha256(repr(tuple(argtypes)).encode()).hexdigest()[:20]
    return f"nkernels.kernel.{fn.__module__}.{fn.__qualname__}.{digest}"


def _register(kernel: Dispatcher, argtypes: tuple):
    """Register the address of ``kernel``'s (compiled or cached) overload for ``argtypes`` under its
    :func:`symbol_name`; return the name and the overload."""
    import llvmlite.binding as llvm

    kernel.compile(argtypes)
    overload = kernel.overloads[tuple(argtypes)]
    name = symbol_name(kernel, argtypes)
    llvm.add_symbol(name, overload.library.get_pointer_to_function(overload.fndesc.llvm_func_name))
    return name, overload


class KernelByAddressType(types.Callable):
    """Numba's type of a :class:`KernelByAddress`: typed as its kernel, lowered as a call of its symbol."""

    def __init__(self, kernel: Dispatcher):
        self.kernel = kernel
        self._lowering = None
        fn = kernel.py_func
        super().__init__(f"KernelByAddress({fn.__module__}.{fn.__qualname__})")

    @property
    def key(self):
        return self.kernel

    def get_call_type(self, context, args, kws):
        template, pysig, args, kws = self.kernel.get_call_template(args, kws)
        signature = template(context).apply(args, kws)
        return signature.replace(pysig=pysig) if signature else None

    def get_call_signatures(self):
        return list(self.kernel.nopython_signatures), True

    def get_impl_key(self, sig):
        if self._lowering is None:  # one lowering per kernel: Numba keys implementations by an object
            kernel = self.kernel

            def call_by_address(context, builder, sig, args):
                argtypes = tuple(sig.args)
                name, overload = _register(kernel, argtypes)
                calls = getattr(_recording, "calls", None)
                if calls is not None:
                    calls.add((kernel.py_func.__module__, kernel.py_func.__qualname__, argtypes))
                restype, fe_argtypes = overload.fndesc.restype, overload.fndesc.argtypes
                callee = cgutils.get_or_insert_function(
                    builder.module, context.call_conv.get_function_type(restype, fe_argtypes), name)
                status, result = context.call_conv.call_function(builder, callee, restype, fe_argtypes, args)
                with cgutils.if_unlikely(builder, status.is_error):
                    context.call_conv.return_status_propagate(builder, status)
                return impl_ret_new_ref(context, builder, sig.return_type, result)

            lower_builtin(call_by_address, types.VarArg(types.Any))(call_by_address)
            self._lowering = call_by_address
        return self._lowering


@typeof_impl.register(KernelByAddress)
def _typeof_kernel_by_address(value, context):
    if not isinstance(value.kernel, Dispatcher):
        return None
    return KernelByAddressType(value.kernel)


register_model(KernelByAddressType)(models.OpaqueModel)


@lower_constant(KernelByAddressType)
def _constant_kernel_by_address(context, builder, ty, value):
    return context.get_dummy_value()


class StepFunctionCache(FunctionCache):
    """Numba's cache of one generated step function, keeping with each entry the kernel overloads it calls."""

    def _calls_path(self, sig) -> str:
        digest = hashlib.sha256(repr(tuple(sig)).encode()).hexdigest()[:20]
        stem = self._cache_file._index_name[:-len(".nbi")]
        return os.path.join(self._cache_path, f"{stem}.{digest}.kernels")

    def load_overload(self, sig, target_context):
        _recording.calls = set()  # a miss compiles next: record what that compile calls
        try:
            with open(self._calls_path(sig), "rb") as f:
                calls = pickle.load(f)
            for module, name, argtypes in calls:
                kernel = getattr(importlib.import_module(module), name)
                if not isinstance(kernel, Dispatcher):
                    return None
                _register(kernel, argtypes)
        except Exception:  # no list, or a kernel that cannot be had: compile the step anew
            return None
        loaded = super().load_overload(sig, target_context)
        if loaded is not None:
            _recording.calls = None
        return loaded

    def save_overload(self, sig, data):
        calls = getattr(_recording, "calls", None)
        _recording.calls = None
        super().save_overload(sig, data)
        if calls is None or not self._enabled:
            return
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self._cache_path, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                pickle.dump(sorted(calls, key=repr), f)
            os.replace(tmp, self._calls_path(sig))
        except OSError:  # an unwritable cache or a full disk: the entry is never loaded without its list
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.remove(tmp)


def cache_step_functions(namespace: dict) -> None:
    """Give each ``@njit(cache=True)`` function defined in a generated module (its ``namespace``) a
    :class:`StepFunctionCache`; a generated module calls this last."""
    for function in namespace.values():
        if isinstance(function, Dispatcher) and function.py_func.__module__ == namespace["__name__"] \
                and type(getattr(function, "_cache", None)) is FunctionCache:
            cast(Any, function)._cache = StepFunctionCache(function.py_func)
