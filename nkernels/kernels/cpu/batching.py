"""Mini-batch assembly: gather shuffled rows into preallocated batch buffers."""
from numba import njit


@njit(cache=True, error_model="numpy")
def gather_rows(src, order, start, out):
    """``out[i] = src[order[start + i]]`` for every row of ``out``; src and out are 2-D."""
    n, f = out.shape
    for i in range(n):
        r = order[start + i]
        for j in range(f):
            out[i, j] = src[r, j]


@njit(cache=True, error_model="numpy")
def gather_labels(src, order, start, out):
    """``out[i] = src[order[start + i]]`` for a 1-D ``out``."""
    for i in range(out.shape[0]):
        out[i] = src[order[start + i]]
