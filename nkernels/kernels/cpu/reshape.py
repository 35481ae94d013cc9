"""Reshaping and combining kernels: the last step of a sequence, and copies and sums of flat views
(which layers composed of layers use). Flatten is a view and needs no kernel."""
from numba import njit


@njit(cache=True, error_model="numpy")
def last_step_forward(hs, out):
    """``out[n] = hs[n, -1]``: the last step of a (N, T, H) sequence into (N, H)."""
    n, t, h = hs.shape
    for b in range(n):
        for j in range(h):
            out[b, j] = hs[b, t - 1, j]


@njit(cache=True, error_model="numpy")
def last_step_backward(dy, dhs):
    """The gradient of :func:`last_step_forward`: zeros, with ``dhs[n, -1] = dy[n]``."""
    n, t, h = dhs.shape
    for b in range(n):
        for s in range(t - 1):
            for j in range(h):
                dhs[b, s, j] = 0.0
        for j in range(h):
            dhs[b, t - 1, j] = dy[b, j]


@njit(cache=True, error_model="numpy")
def copy_flat(src, dst):
    """``dst = src`` between 1-D views of equal length (a composed layer's view child)."""
    for i in range(src.shape[0]):
        dst[i] = src[i]


@njit(cache=True, error_model="numpy")
def add_flat(a, b, out):
    """``out = a + b`` on 1-D views of equal length (a residual block's two paths)."""
    for i in range(out.shape[0]):
        out[i] = a[i] + b[i]
