"""Norm kernels for gradient clipping by global norm and max-norm weight constraints.

Clipping by global norm, as ``torch.nn.utils.clip_grad_norm_(params, max_norm)`` (p = 2)::

    factor = clip_factor(sum(sum_of_squares(g.reshape(-1)) for g in grads), max_norm)   # float64
    if factor != 1.0:
        for g in grads: scale_inplace(g.reshape(-1), factor)

The sums accumulate in float64, so for float32 gradients ``total_norm`` can differ from
PyTorch's (float32 accumulation) in the last bits.
"""
import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def sum_of_squares(a):
    """``sum(a**2)`` as a float64, accumulated in float64; a is 1-D float32 or float64.

    Serial on purpose: a compiled training step that called these as parallel kernels crashed
    when Numba loaded it back from its cache.
    """
    s = 0.0
    for i in range(a.shape[0]):
        v = np.float64(a[i])
        s += v * v
    return s


@njit(cache=True, error_model="numpy")
def scale_inplace(a, factor):
    """``a *= factor`` in place; a is 1-D float32 or float64, factor a Python float.

    The product is formed in float64 and rounded once to a's dtype.
    """
    for i in range(a.shape[0]):
        a[i] = a[i] * factor


@njit(cache=True, error_model="numpy")
def combine_halves(grad, other, weight, other_weight, out):
    """``out = weight * grad + other_weight * other``; 1-D arrays of one dtype and length (``out`` may
    be ``grad``).

    Joins the gradients of the two halves of a batch (each the gradient of its half's mean loss)
    into the whole batch's: the weights are the halves' shares of the rows. Each entry is the sum
    of two rounded products, so exchanging the two (gradient, weight) pairs gives the same bits.
    """
    t = grad.dtype.type
    w, v = t(weight), t(other_weight)
    for i in range(grad.shape[0]):
        out[i] = w * grad[i] + v * other[i]


@njit(cache=True, error_model="numpy")
def clip_factor(sum_sq, max_norm):
    """The factor ``clip_grad_norm_`` multiplies every gradient by, from the sum of the squares of
    all gradients: ``min(1, max_norm / (sqrt(sum_sq) + 1e-6))``.

    Exactly PyTorch's ``clamp(max_norm / (total_norm + 1e-6), max=1.0)`` with ``total_norm =
    sqrt(sum_sq)``: so a norm within 1e-6 below ``max_norm`` still scales by slightly less than
    1, and a NaN or inf sum gives NaN or 0 (PyTorch's ``error_if_nonfinite=False``). Returns
    float64.
    """
    coef = max_norm / (np.sqrt(sum_sq) + 1e-6)
    if coef > 1.0:
        coef = 1.0
    return coef


@njit(cache=True, error_model="numpy")
def max_norm_rows(weight2d, max_norm):
    """Rescale in place each row whose L2 norm exceeds ``max_norm`` by ``max_norm / (norm + 1e-7)``.

    ``torch.renorm(w, p=2, dim=0, maxnorm=max_norm)`` semantics, in place (rows at or below
    ``max_norm`` are untouched). weight2d: (out, in), C-contiguous, float32 or float64; for a
    conv weight pass ``w.reshape(w.shape[0], -1)``. Row norms accumulate in float64.
    """
    rows, cols = weight2d.shape
    for r in range(rows):
        s = 0.0
        for j in range(cols):
            v = np.float64(weight2d[r, j])
            s += v * v
        norm = np.sqrt(s)
        if norm > max_norm:
            f = max_norm / (norm + 1e-7)
            for j in range(cols):
                weight2d[r, j] = weight2d[r, j] * f
