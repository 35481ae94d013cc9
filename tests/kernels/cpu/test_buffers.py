"""The kernels' scratch arrays that start on a cache line (nkernels.kernels.cpu.buffers)."""
import numpy as np
import pytest

from nkernels.kernels.cpu.buffers import aligned_empty, aligned_empty_like
from nkernels.runtime.devices import ALIGNMENT


def starts_on_a_line(a: np.ndarray) -> bool:
    return a.ctypes.data % ALIGNMENT == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("size", [0, 1, 17, 4096, 70_001])
def test_aligned_empty_gives_size_entries_of_the_dtype_from_a_line(dtype, size):
    a = aligned_empty(size, np.zeros((2, 3), dtype))
    assert a.shape == (size,) and a.dtype == dtype and a.flags.c_contiguous and starts_on_a_line(a)
    a[:] = 5  # every entry is the array's own
    assert (a == 5).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (512, 16), (128, 512)])
def test_aligned_empty_like_keeps_the_shape_and_dtype(dtype, shape):
    a = np.zeros(shape, dtype)
    e = aligned_empty_like(a)
    assert e.shape == shape and e.dtype == dtype and e.flags.c_contiguous and starts_on_a_line(e)
