"""The vendor GEMM as nkernels' CUDA GEMM: cuBLAS (through CuPy) registered for ``("gemm", "cuda")``
at priority :data:`PRIORITY`, above the built-in tiled kernel (priority 0).

It registers only where it can run: CuPy importable (else a CUDA build of PyTorch, whose matmul is
cuBLAS too), a CUDA GPU present, the CUDA simulator off.
Otherwise it registers nothing and says why (:func:`status`, ``python -m nkernels_vendor_gemm``,
and a log record of the ``nkernels_vendor_gemm`` logger when the plugins load), and nkernels'
own GEMM stays in force. nvmath-python is not used: its matmul returns a new array (nkernels'
GEMMs write into views of existing buffers), and it needs CuPy or PyTorch arrays anyway.
Neither CuPy wheel fits a device run's 64 MiB of carried files (cupy-cuda12x 14.2.0: 137 MB,
cupy-cuda13x: 70 MB), while the lent GPU machines have PyTorch: hence the PyTorch route.

cuBLAS computes in full fp32 unless CuPy is told otherwise (``CUPY_TF32=1`` lets it use TF32
tensor cores): the baseline the issue asks for, TF32 off.
"""
from __future__ import annotations

import importlib
import logging

import nkernels as nk
from nkernels.plugins.kernels import KernelRecord

from .gemm import TorchArrays, use, vendor_gemm

__all__ = ["PRIORITY", "status", "backend", "use", "TorchArrays", "vendor_gemm", "nkernels_register_kernels"]

#: Above the built-in GEMM (0); leaves room for a plugin that wants to outrank this one.
PRIORITY = 10

_log = logging.getLogger(__name__)


def _gpu_present() -> tuple[bool, str]:
    from nkernels.runtime.devices import cuda_status, simulator

    if simulator():
        return False, "the CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1)"
    return cuda_status()


def backend():
    """``(module, reason)``: CuPy when the vendor GEMM can run here, else ``None`` and why not."""
    ok, why = _gpu_present()
    if not ok:
        return None, f"no CUDA GPU: {why}"
    try:
        cupy = importlib.import_module("cupy")
        return cupy, f"cuBLAS through CuPy {getattr(cupy, '__version__', '?')}"
    except ImportError as error:
        missing = f"CuPy is not installed ({error}); pip install cupy-cuda12x (or cupy-cuda13x)"
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return None, missing + ", or a CUDA build of PyTorch"
    if not torch.cuda.is_available():
        return None, missing + f"; PyTorch {torch.__version__} sees no CUDA GPU"
    return TorchArrays(torch), (f"cuBLAS through PyTorch {torch.__version__} (CuPy missing; TF32 "
                                f"{'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'})")


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
