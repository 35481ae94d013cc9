"""CUDA random translation against its CPU twin: the same shifts, the same images.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes; they also run
on a real GPU (without the simulator) at realistic shapes when NKERNELS_REAL_GPU=1 (conftest.py).
"""
import numpy as np
import pytest

from nkernels.kernels.cpu import augment as cpu
from nkernels.kernels.cuda import augment as gpu

pytestmark = pytest.mark.cuda


@pytest.fixture
def shapes(pick):
    """((N, C, H, W), max_shift): the second shifts past the edges."""
    return pick([((3, 2, 5, 4), 2), ((2, 1, 3, 3), 4)], [((128, 1, 28, 28), 2), ((64, 3, 32, 32), 40)])


def test_random_translate_matches_cpu(shapes, dtype, dev, poison):
    rng = np.random.default_rng(0)
    for shape, max_shift in shapes:
        x = rng.standard_normal(shape).astype(dtype)
        out = np.empty_like(x)
        cpu.random_translate(x, max_shift, 5, 321, out)
        d_out = poison(shape, dtype)
        gpu.random_translate(dev(x), max_shift, 5, 321, d_out)
        np.testing.assert_array_equal(d_out.copy_to_host(), out)
