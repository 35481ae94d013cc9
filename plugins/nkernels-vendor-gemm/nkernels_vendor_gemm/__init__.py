"""The vendor GEMM as nkernels' CUDA GEMM: cuBLAS (through CuPy) registered for ``("gemm", "cuda")``
at priority :data:`PRIORITY`, above the built-in tiled kernel (priority 0).

It registers only where it can run: CuPy installed (or, with ``NKERNELS_VENDOR_GEMM=torch``, a CUDA
build of PyTorch, whose matmul is cuBLAS too), a CUDA GPU present, the CUDA simulator off.
``NKERNELS_VENDOR_GEMM=off`` keeps it out. Nothing is imported at plugin load unless the library
asked for is installed (so a CPU-only machine with PyTorch pays nothing).
Otherwise it registers nothing and says why (:func:`status`, ``python -m nkernels_vendor_gemm``,
and a log record of the ``nkernels_vendor_gemm`` logger when the plugins load), and nkernels'
own GEMM stays in force. nvmath-python is not used: its matmul returns a new array (nkernels'
GEMMs write into views of existing buffers), and it needs CuPy or PyTorch arrays anyway.
Neither CuPy wheel fits a device run's 64 MiB of carried files (cupy-cuda12x 14.2.0: 137 MB,
cupy-cuda13x: 70 MB), while the lent GPU machines have PyTorch: hence the PyTorch route, opt-in.

cuBLAS computes in full fp32 unless CuPy is told otherwise (``CUPY_TF32=1`` lets it use TF32
tensor cores): the baseline the issue asks for, TF32 off.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys

import nkernels as nk
from nkernels.plugins.kernels import KernelRecord

from .gemm import TorchArrays, use, vendor_gemm

__all__ = ["PRIORITY", "ENV", "LIBRARIES", "choice", "status", "backend", "use", "TorchArrays", "vendor_gemm", "nkernels_register_kernels"]

#: Above the built-in GEMM (0); leaves room for a plugin that wants to outrank this one.
PRIORITY = 10
#: Chooses the array library: ``cupy`` (default), ``torch`` or ``off``.
ENV = "NKERNELS_VENDOR_GEMM"
LIBRARIES = ("cupy", "torch", "off")

_log = logging.getLogger(__name__)


def _gpu_present() -> tuple[bool, str]:
    from nkernels.runtime.devices import cuda_status, simulator

    if simulator():
        return False, "the CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1)"
    return cuda_status()


def _installed(name: str) -> bool:
    # without importing it: importing PyTorch at plugin load would slow every start-up
    if name in sys.modules:
        return sys.modules[name] is not None
    return importlib.util.find_spec(name) is not None


def choice() -> str:
    """The array library asked for by ``NKERNELS_VENDOR_GEMM``: ``cupy`` (the default), ``torch``
    (cuBLAS through a CUDA build of PyTorch) or ``off``."""
    value = os.environ.get(ENV, "cupy").strip().lower() or "cupy"
    if value not in LIBRARIES:
        raise ValueError(f"{ENV}={value!r}: the vendor GEMM runs through one of {', '.join(LIBRARIES)}; set one "
                         f"of those, or unset {ENV} for CuPy")
    return value


def backend():
    """``(arrays, reason)``: the array library the vendor GEMM runs on here (the ``cupy`` module or
    a :class:`TorchArrays`), or ``None`` and why not. Nothing is imported unless the library
    asked for is installed; the GPU is asked only then."""
    library = choice()
    if library == "off":
        return None, f"{ENV}=off"
    if not _installed(library):
        hint = ("pip install cupy-cuda12x (or cupy-cuda13x), or NKERNELS_VENDOR_GEMM=torch with a CUDA build "
                "of PyTorch" if library == "cupy" else "install a CUDA build of PyTorch")
        return None, f"{'CuPy' if library == 'cupy' else 'PyTorch'} is not installed; {hint}"
    ok, why = _gpu_present()
    if not ok:
        return None, f"no CUDA GPU: {why}"
    module = importlib.import_module(library)
    if library == "cupy":
        return module, f"cuBLAS through CuPy {getattr(module, '__version__', '?')}"
    if not module.cuda.is_available():
        return None, f"PyTorch {module.__version__} sees no CUDA GPU (a CPU build?)"
    tf32 = "on" if module.backends.cuda.matmul.allow_tf32 else "off"
    return TorchArrays(module), f"cuBLAS through PyTorch {module.__version__} (TF32 {tf32})"


def status() -> str:
    """One line: whether the vendor GEMM is in force here, and why (not)."""
    module, reason = backend()
    if module is None:
        return f"nkernels-vendor-gemm registers nothing: {reason}; nkernels' tiled GEMM stays in force"
    return f"nkernels-vendor-gemm registers the CUDA gemm at priority {PRIORITY}: {reason}"


@nk.hookimpl
def nkernels_register_kernels():
    """The vendor GEMM for ``("gemm", "cuda")`` where CuPy and a GPU are present; nothing elsewhere."""
    module, _ = backend()
    _log.info(status())
    if module is None:
        return []
    use(module)
    return [KernelRecord("gemm", "cuda", vendor_gemm, priority=PRIORITY)]
