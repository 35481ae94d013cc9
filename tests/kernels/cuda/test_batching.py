"""CUDA mini-batch gathers against their CPU twins.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes; they also run
on a real GPU (without the simulator) at realistic shapes when NKERNELS_REAL_GPU=1 (conftest.py).
"""
import numpy as np
import pytest

from nkernels.kernels.cpu import batching as cpu
from nkernels.kernels.cuda import batching as gpu

pytestmark = pytest.mark.cuda


@pytest.fixture
def shapes(pick):
    """(rows in the data set, features, batch size, start)."""
    return pick([(11, 5, 4, 3)], [(60000, 784, 128, 1000)])


def test_gather_rows_and_labels_match_cpu(shapes, dtype, dev, poison):
    rng = np.random.default_rng(0)
    for rows, f, b, start in shapes:
        src = rng.standard_normal((rows, f)).astype(dtype)
        labels = rng.integers(0, 10, rows).astype(np.int64)
        order = rng.permutation(rows).astype(np.int64)
        out = np.empty((b, f), dtype)
        cpu.gather_rows(src, order, start, out)
        d_out = poison((b, f), dtype)
        d_order = dev(order)
        gpu.gather_rows(dev(src), d_order, start, d_out)
        np.testing.assert_array_equal(d_out.copy_to_host(), out)
        lab = np.empty(b, np.int64)
        cpu.gather_labels(labels, order, start, lab)
        d_lab = dev(np.full(b, -1, np.int64))
        gpu.gather_labels(dev(labels), d_order, start, d_lab)
        np.testing.assert_array_equal(d_lab.copy_to_host(), lab)
