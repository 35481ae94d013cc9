"""nkernels' GEMM contract (:func:`nkernels.kernels.cuda.gemm.gemm`) on a vendor matmul.

The flat device arrays become strided 2-D views (no copy): ``A[m, k]``, ``B[k, n]`` and ``C[m, n]``
at their offsets and leading dimensions, or, for a convolution's NCHW output (``grp > 0``), the
``(m, n // grp, grp)`` view of ``C``. A plain product into a contiguous ``C`` goes straight there
(``out=``); a bias, ``beta`` (``C +=``), a row stride or the NCHW layout go through one temporary
product (CuPy's memory pool).
"""
from __future__ import annotations

import importlib


def _cupy():
    return importlib.import_module("cupy")


def _matrix(cp, flat, off, rows, cols, row_stride, col_stride):
    item = flat.dtype.itemsize
    return cp.lib.stride_tricks.as_strided(flat[off:], (rows, cols), (row_stride * item, col_stride * item))


def vendor_gemm(a, b, c, m, n, k, *, a_kcontig, b_kcontig, lda, ldb, ldc=0, a_off=0, b_off=0, c_off=0,
                bias=None, bias_mode=0, grp=0, beta=False):
    """``C (m x n) [+]= A (m x k) @ B (k x n)`` (+ bias), the arguments of
    :func:`nkernels.kernels.cuda.gemm.gemm`, by the vendor's matmul (cuBLAS through CuPy)."""
    if m <= 0 or n <= 0:
        return None
    cp = _cupy()
    fa, fb, fc = cp.asarray(a), cp.asarray(b), cp.asarray(c)
    A = _matrix(cp, fa, a_off, m, k, lda, 1) if a_kcontig else _matrix(cp, fa, a_off, m, k, 1, lda)
    B = _matrix(cp, fb, b_off, k, n, 1, ldb) if b_kcontig else _matrix(cp, fb, b_off, k, n, ldb, 1)
    if grp:
        item = fc.dtype.itemsize
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
