"""nkernels' GEMM contract (:func:`nkernels.kernels.cuda.gemm.gemm`) on a vendor matmul: cuBLAS
through CuPy, or through PyTorch (:class:`TorchArrays`) where CuPy is missing.

The flat device arrays become strided 2-D views (no copy): ``A[m, k]``, ``B[k, n]`` and ``C[m, n]``
at their offsets and leading dimensions, or, for a convolution's NCHW output (``grp > 0``), the
``(m, n // grp, grp)`` view of ``C``. A plain product into a contiguous ``C`` goes straight there
(``out=``); a bias, ``beta`` (``C +=``), a row stride or the NCHW layout go through one temporary
product (CuPy's memory pool).
"""
from __future__ import annotations

import importlib

#: The array library in force: set by :func:`use` (the plugin's registration picks it).
_arrays = None


class TorchArrays:
    """PyTorch's CUDA tensors seen through the few CuPy calls the GEMM makes (``asarray``,
    ``lib.stride_tricks.as_strided`` with byte strides, ``matmul``): cuBLAS through PyTorch.
    PyTorch's ``allow_tf32`` setting for matmuls applies (off by default: full fp32)."""

    def __init__(self, torch, device="cuda"):
        self.torch, self.device = torch, device
        self.lib = type("lib", (), {"stride_tricks": type("stride_tricks", (), {
            "as_strided": staticmethod(self._as_strided)})})

    def asarray(self, x):
        return self.torch.as_tensor(x, device=self.device)

    def _as_strided(self, flat, shape, strides):
        item = flat.element_size()
        return self.torch.as_strided(flat, shape, tuple(s // item for s in strides))

    def matmul(self, a, b, out=None):
        return self.torch.matmul(a, b, out=out)


def use(arrays) -> None:
    """Run the vendor GEMM on ``arrays``: the ``cupy`` module, or a :class:`TorchArrays`."""
    global _arrays
    _arrays = arrays


def _library():
    return _arrays if _arrays is not None else importlib.import_module("cupy")


def _itemsize(flat):
    return flat.element_size() if hasattr(flat, "element_size") else flat.dtype.itemsize


def _matrix(cp, flat, off, rows, cols, row_stride, col_stride):
    item = _itemsize(flat)
    return cp.lib.stride_tricks.as_strided(flat[off:], (rows, cols), (row_stride * item, col_stride * item))


def vendor_gemm(a, b, c, m, n, k, *, a_kcontig, b_kcontig, lda, ldb, ldc=0, a_off=0, b_off=0, c_off=0,
                bias=None, bias_mode=0, grp=0, beta=False):
    """``C (m x n) [+]= A (m x k) @ B (k x n)`` (+ bias), the arguments of
    :func:`nkernels.kernels.cuda.gemm.gemm`, by the vendor's matmul (cuBLAS through CuPy)."""
    if m <= 0 or n <= 0:
        return None
    cp = _library()
    fa, fb, fc = cp.asarray(a), cp.asarray(b), cp.asarray(c)
    A = _matrix(cp, fa, a_off, m, k, lda, 1) if a_kcontig else _matrix(cp, fa, a_off, m, k, 1, lda)
    B = _matrix(cp, fb, b_off, k, n, 1, ldb) if b_kcontig else _matrix(cp, fb, b_off, k, n, ldb, 1)
    if grp:
        item = _itemsize(fc)
        C = cp.lib.stride_tricks.as_strided(fc[c_off:], (m, n // grp, grp), (grp * item, m * grp * item, item))
    else:
        C = _matrix(cp, fc, c_off, m, n, ldc, 1)
    if not (grp or beta or (bias is not None and bias_mode)) and ldc == n:  # C contiguous: out= it
        cp.matmul(A, B, out=C)
        return None
    product = cp.matmul(A, B)
    if bias is not None and bias_mode == 1:
        product += cp.asarray(bias)[None, :n]
    elif bias is not None and bias_mode == 2:
        product += cp.asarray(bias)[:m, None]
    if grp:
        product = product.reshape(m, n // grp, grp)
    if beta:
        C += product
    else:
        C[...] = product
    return None
