"""CUDA dropout against its CPU twin: masks agree bit for bit.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes; they also run
on a real GPU (without the simulator) at realistic shapes when NKERNELS_REAL_GPU=1 (conftest.py),
where the bit-for-bit agreement of the uint64 hash compiled by NVVM is what is being checked.
"""
import numpy as np
import pytest

from nkernels.kernels.cpu import dropout as cpu
from nkernels.kernels.cuda import dropout as gpu

pytestmark = [pytest.mark.cuda, pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")]


@pytest.fixture
def shapes(pick):
    return pick([45], [10_000_019])


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_dropout_masks_agree_bit_for_bit(p, shapes, dtype, dev, poison):
    rng = np.random.default_rng(0)
    for n in shapes:
        x = rng.standard_normal(n).astype(dtype)
        dy = rng.standard_normal(n).astype(dtype)
        seed, offset = 7, 12345
        mask, out = np.empty_like(x), np.empty_like(x)
        counter = np.array([offset], np.int64)
        cpu.dropout_forward(x, p, np.array([seed], np.int64), counter, mask, out)
        d_mask, d_out = poison(n, dtype), poison(n, dtype)
        d_counter = np.array([offset], np.int64)  # the layer's buffers stay on the host
        gpu.dropout_forward(dev(x), p, np.array([seed], np.int64), d_counter, d_mask, d_out)
        assert d_counter[0] == counter[0] == offset + n
        np.testing.assert_array_equal(d_mask.copy_to_host(), mask)
        np.testing.assert_array_equal(d_out.copy_to_host(), out)
        dx = np.empty_like(x)
        cpu.dropout_backward(dy, mask, dx)
        d_dx = poison(n, dtype)
        gpu.dropout_backward(dev(dy), d_mask, d_dx)
        np.testing.assert_array_equal(d_dx.copy_to_host(), dx)
