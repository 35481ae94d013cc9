"""The error projection of feedback alignment, as a Numba kernel.

The forward passes, the loss and the weight gradients reuse nkernels' own kernels; only the step
that replaces back-propagation through the transposed weights is new here.
"""
import numpy as np
from numba import njit

#: activation codes understood by :func:`project_error`
IDENTITY, RELU, SIGMOID, TANH = 0, 1, 2, 3


@njit(cache=True, error_model="numpy")
def project_error(error, feedback, y, activation, out):
    """``out = (error @ feedback) * f'(y)``: a fixed random projection of an error signal, then the
    derivative of the layer's activation, read from the activation's output ``y``.

    error (N, K); feedback (K, M), fixed and random; y (N, M), the output of the activation
    (ignored for IDENTITY); activation one of IDENTITY, RELU, SIGMOID, TANH; out (N, M).
    For direct feedback alignment ``error`` is the output error and ``feedback`` is (classes, M);
    for feedback alignment ``error`` is the layer above's pre-activation error and ``feedback``
    stands in for that layer's weight (out, in).
    """
    np.dot(error, feedback, out)
    n, m = out.shape
    if activation == RELU:
        for i in range(n):
            for j in range(m):
                if y[i, j] <= 0:
                    out[i, j] = 0.0
    elif activation == SIGMOID:
        for i in range(n):
            for j in range(m):
                out[i, j] *= y[i, j] * (1.0 - y[i, j])
    elif activation == TANH:
        for i in range(n):
            for j in range(m):
                out[i, j] *= 1.0 - y[i, j] * y[i, j]
