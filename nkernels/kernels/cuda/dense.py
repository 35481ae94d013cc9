"""Dense (fully connected) kernels on the GPU: ``y = x @ weight.T + bias`` in PyTorch's layout.

CUDA twins of :mod:`nkernels.kernels.cpu.dense`: same names and signatures, device arrays in
place of NumPy arrays, outputs written in place. Every product runs through the tiled GEMM of
:mod:`nkernels.kernels.cuda.gemm`, on the arrays as they are (the transposes are index math in
the GEMM's loaders, not copies):

* forward ``out = x @ weight.T`` (both operands k-contiguous), the bias added in the GEMM's
  epilogue, so ``out`` is written once;
* ``dweight = dy.T @ x`` (both operands m/n-contiguous);
* ``dx = dy @ weight`` (A k-contiguous, B n-contiguous);
* ``dbias`` = column sums of ``dy``, accumulated in float64 (the CPU kernel sums in the dtype).
"""
from .gemm import column_sums, gemm
from .launch import as_device_array, device_arrays, flat_view

__all__ = ["dense_forward", "dense_forward_activation", "dense_backward"]


def dense_forward(x, weight, bias, out):
    """Write ``x @ weight.T + bias`` into ``out``.

    x (N, in), weight (out, in), bias (out,) or a 0-length array for no bias, out (N, out);
    C-contiguous device arrays of one dtype.
    """
    dense_forward_activation(x, weight, bias, out, None)


def dense_forward_activation(x, weight, bias, out, activation):
    """Write ``f(x @ weight.T + bias)`` into ``out``, ``f`` the ``activation`` the GEMM's epilogue
    applies as it stores (:data:`~nkernels.kernels.cuda.gemm.EPILOGUE_ACTIVATIONS`; None: none):
    Dense followed by that activation in one launch (the device step plan's fusion)."""
    x, weight, bias, out = device_arrays(x=x, weight=weight, bias=bias, out=out)
    n, k = x.shape
    m = weight.shape[0]
    has_bias = bias.shape[0] > 0
    gemm(flat_view(x), flat_view(weight), flat_view(out), n, m, k, a_kcontig=True, b_kcontig=True, lda=k, ldb=k,
         ldc=m, bias=bias if has_bias else None, bias_mode=1 if has_bias else 0, activation=activation)


def dense_backward(x, dy, weight, need_dx, dx, dweight, dbias):
    """Gradients of :func:`dense_forward`, overwriting ``dx``, ``dweight`` and ``dbias``.

    x (N, in), dy (N, out), weight (out, in); dx (N, in) is written only when ``need_dx``;
    dweight (out, in); dbias (out,) or 0-length when the layer has no bias.
    """
    x, dy, weight, dweight, dbias = device_arrays(x=x, dy=dy, weight=weight, dweight=dweight, dbias=dbias)
    n, k_in = x.shape
    m_out = dy.shape[1]
    fdy = flat_view(dy)
    # dweight (out, in) = dy.T (out, N) @ x (N, in)
    gemm(fdy, flat_view(x), flat_view(dweight), m_out, k_in, n, a_kcontig=False, b_kcontig=False,
         lda=m_out, ldb=k_in, ldc=k_in)
    if dbias.shape[0] > 0:
        column_sums(fdy, n, m_out, m_out, dbias)
    if need_dx:
        dx = as_device_array(dx, "dx")
        # dx (N, in) = dy (N, out) @ weight (out, in)
        gemm(fdy, flat_view(weight), flat_view(dx), n, k_in, m_out, a_kcontig=True, b_kcontig=False,
             lda=m_out, ldb=k_in, ldc=k_in)
