"""Flatten: a copy between flat views (the layout of a C-contiguous batch is already flat)."""
from numba import njit


@njit(cache=True)
def flatten_forward(x, out):
    """Copy the 1-D view ``x`` into the 1-D view ``out`` (same length)."""
    for i in range(x.shape[0]):
        out[i] = x[i]


@njit(cache=True)
def flatten_backward(dy, dx):
    """Copy the 1-D view ``dy`` into the 1-D view ``dx`` (same length)."""
    for i in range(dy.shape[0]):
        dx[i] = dy[i]
