"""Data augmentation on NCHW device batches: CUDA twins of :mod:`nkernels.kernels.cpu.augment`.

A sample's shift comes from the CPU's own counter-based hash of ``(seed, offset + n)``,
compiled as a device function, so CPU and GPU shift every image identically.
``translation_shift`` takes no arrays: it is the CPU's scalar function, re-exported.
"""
from numba import cuda

from ..cpu import augment as _cpu
from ..cpu.augment import translation_shift  # noqa: F401  (host-callable scalar function)
from .launch import device_arrays, flat_view, python_function, simulator, sm_count

__all__ = ["random_translate", "translation_shift"]

_shift_device = cuda.jit(device=True)(python_function(_cpu.translation_shift))


@cuda.jit(cache=True)
def _random_translate(xf, n_size, c_size, h, w, max_shift, seed, offset, outf):
    """One block per (n, c) plane (grid-stride over planes), its threads over the plane's pixels."""
    plane = h * w
    for pc in range(cuda.blockIdx.x, n_size * c_size, cuda.gridDim.x):
        n = pc // c_size
        dy, dx = _shift_device(seed, offset, n, max_shift)
        base = pc * plane
        for q in range(cuda.threadIdx.x, plane, cuda.blockDim.x):
            i = q // w
            j = q - i * w
            si = i - dy
            sj = j - dx
            if si >= 0 and si < h and sj >= 0 and sj < w:
                outf[base + q] = xf[base + si * w + sj]
            else:
                outf[base + q] = 0


def random_translate(x, max_shift, seed, offset, out):
    """Shift each image by a random integer ``(dy, dx)``, filling the uncovered border with 0.

    ``out[n, c, i, j] = x[n, c, i - dy, j - dx]`` where that index is inside the image, else 0,
    with ``(dy, dx) = translation_shift(seed, offset, n, max_shift)``. x, out: (N, C, H, W)
    C-contiguous device arrays of one dtype; out must not alias x. Counters used are
    ``offset .. offset + N - 1``.
    """
    x, out = device_arrays(x=x, out=out)
    n, c, h, w = x.shape
    if n * c * h * w == 0:
        return
    planes = n * c
    if simulator():
        blocks, threads = min(planes, 2), 8
    else:
        blocks, threads = min(planes, sm_count() * 16), 256 if h * w >= 256 else 128
    _random_translate[blocks, threads](flat_view(x), n, c, h, w, int(max_shift), int(seed), int(offset),
                                       flat_view(out))
