"""Numba code calls kernels by address instead of compiling them in again.

Numba compiles a function that calls another ``@njit`` function by linking the callee's whole call
tree into the caller's module and optimizing and generating machine code for all of it once more.
A convolution's public kernel calls a driver that calls four parallel helpers, each a ``prange``
region whose body Numba compiles as a function of its own: every level compiled everything below
it again, and every training step compiled all of it once more.

A :class:`KernelByAddress` (made with :func:`by_address`) is typed by Numba exactly as a call of its
kernel (the same overloads, literal specializations included), but the call is compiled as a call
of an external symbol whose name says which kernel and signature it is (:func:`symbol_name`); the
process registers the overload's address under that name with LLVM. The caller's machine code
holds only the caller. Generated training steps call every kernel this way, and kernels call the
kernels and parallel regions below them this way (small helpers in hot loops are still compiled
in, where LLVM can inline them).

Code loaded from Numba's cache needs those symbols before its machine code is loaded: a missing one
would be a call through a null address. Numba loads every cached function through its code
generator's ``unserialize_library``; importing this module wraps that method once per process so
that it first finds the by-address symbols the cached code calls (the kernel's module, name and
argument types are in the symbol's name), compiles or loads those overloads and registers them. It
does so for any cached function, a plugin's own ``@njit`` code that calls a built-in kernel
included, and it works whichever cache the callee's code is in or if it has none.
"""
from __future__ import annotations

import base64
import importlib
import pickle
import re
import zlib
from typing import Any

from numba.core import cgutils, types
from numba.core.compiler_lock import global_compiler_lock
from numba.core.dispatcher import Dispatcher
from numba.core.imputils import impl_ret_new_ref, lower_builtin, lower_constant
from numba.extending import models, register_model, typeof_impl

__all__ = ["KernelByAddress", "by_address", "symbol_name"]

_PREFIX = "nkernels.kernel:"
#: a symbol: the prefix, the kernel's module and qualified name, its argument types (pickled, zlib, base64)
_SYMBOL = re.compile(rb"nkernels\.kernel:([A-Za-z_][\w.]*):([A-Za-z_][\w.]*):([A-Za-z0-9_-]+)")
_registered: set[str] = set()


class KernelByAddress:
    """A kernel that Numba code calls through its address (see the module's docstring).

    Called from Python (or with ``NUMBA_DISABLE_JIT=1``) it is the kernel itself, and it answers
    for the kernel's attributes (``py_func``, ``signatures``, ...).
    """

    def __init__(self, kernel: Any):
        if isinstance(kernel, KernelByAddress):
            kernel = kernel.kernel
        qualname = getattr(getattr(kernel, "py_func", kernel), "__qualname__", "")
        if "<" in qualname:
            raise TypeError(f"{qualname} is defined inside a function: only a kernel at the top level of its "
                            f"module can be called by address (a process loading cached code finds it by name)")
        self.kernel = self.__wrapped__ = kernel

    def __call__(self, *args):
        return self.kernel(*args)

    def __getattr__(self, name: str):
        if name in ("kernel", "__wrapped__"):  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.kernel, name)

    def __repr__(self) -> str:
        return f"KernelByAddress({self.kernel!r})"


def by_address(kernel: Any) -> KernelByAddress:
    """``kernel`` (an ``@njit`` function defined at the top level of a module), called by address from
    Numba code; usable as a decorator above ``@njit``."""
    return KernelByAddress(kernel)


def symbol_name(kernel: Dispatcher, argtypes: tuple) -> str:
    """The symbol under which Numba code finds ``kernel``'s overload for ``argtypes``: the kernel's module,
    its name and its argument types, so that a process loading cached code can find the overload."""
    fn = kernel.py_func
    encoded = base64.urlsafe_b64encode(zlib.compress(pickle.dumps(tuple(argtypes), protocol=4), 9))
    return f"{_PREFIX}{fn.__module__}:{fn.__qualname__}:{encoded.decode().rstrip('=')}"


def _register(kernel: Dispatcher, argtypes: tuple, name: str | None = None):
    """Compile or load ``kernel``'s overload for ``argtypes`` and register its address under its symbol
    (``name`` when the symbol was read from cached code); return the name and the overload."""
    import llvmlite.binding as llvm

    with global_compiler_lock:  # the lock every compile and cache load already holds: one lock order
        kernel.compile(tuple(argtypes))
        overload = kernel.overloads[tuple(argtypes)]
        name = name or symbol_name(kernel, argtypes)
        if name not in _registered:
            llvm.add_symbol(name, overload.library.get_pointer_to_function(overload.fndesc.llvm_func_name))
            _registered.add(name)
    return name, overload


def _resolve(name: str, module: str, qualname: str, encoded: str) -> None:
    """Register the symbol ``name`` (read from cached code) of ``module.qualname`` for the encoded types."""
    if name in _registered:
        return
    try:
        kernel: Any = importlib.import_module(module)
        for part in qualname.split("."):
            kernel = getattr(kernel, part)
        kernel = getattr(kernel, "kernel", kernel)
        if not isinstance(kernel, Dispatcher):
            raise TypeError(f"{module}.{qualname} is not a Numba function")
        argtypes = pickle.loads(zlib.decompress(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))))
        _register(kernel, argtypes, name)
    except Exception as exc:  # gone, renamed, or no longer compiling for those types (code cached elsewhere)
        raise ImportError(f"cached Numba code calls the kernel {module}.{qualname}, which cannot be had now "
                          f"({exc}); clear the caches (`nkernels cache clear`) to compile it anew") from exc


def _symbols_first(original):
    """Wrap Numba's ``unserialize_library`` so that the by-address symbols cached code calls are registered
    before its machine code is loaded."""

    def unserialize_library(self, serialized):
        _, kind, data = serialized
        code = data[0] if kind == "object" else data
        if isinstance(code, bytes) and _PREFIX.encode() in code:
            symbols = {match.group(0): match.groups() for match in _SYMBOL.finditer(code)}
            for name, parts in sorted(symbols.items()):
                _resolve(name.decode(), *(part.decode() for part in parts))
        return original(self, serialized)

    unserialize_library.nkernels_symbols_first = True  # type: ignore[attr-defined]
    return unserialize_library


def _install() -> None:
    from numba.core.codegen import JITCPUCodegen

    if not getattr(JITCPUCodegen.unserialize_library, "nkernels_symbols_first", False):
        JITCPUCodegen.unserialize_library = _symbols_first(JITCPUCodegen.unserialize_library)  # type: ignore


_install()


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
                name, overload = _register(kernel, tuple(sig.args))
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
