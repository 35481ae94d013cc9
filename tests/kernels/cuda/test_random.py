"""CUDA counter-based random fills against their CPU twins: uniform draws agree bit for bit.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes; they also run
on a real GPU (without the simulator) at realistic shapes when NKERNELS_REAL_GPU=1 (conftest.py),
where the bit-for-bit agreement of the uint64 hash compiled by NVVM is what is being checked.
"""
import numpy as np
import pytest

from nkernels.kernels.cpu import random as cpu
from nkernels.kernels.cuda import random as gpu

pytestmark = [pytest.mark.cuda, pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")]


@pytest.fixture
def shapes(pick):
    return pick([1, 45], [10_000_019])


def test_uniform_and_normal_fill_match_cpu(shapes, dtype, dev, poison, close):
    for n in shapes:
        u = np.empty(n, dtype)
        cpu.uniform_fill(3, 99, u)
        d_u = poison(n, dtype)
        gpu.uniform_fill(3, 99, d_u)
        np.testing.assert_array_equal(d_u.copy_to_host(), u)
        z = np.empty(n, dtype)
        cpu.normal_fill(3, 99, 1.0, 2.0, z)
        d_z = poison(n, dtype)
        gpu.normal_fill(3, 99, 1.0, 2.0, d_z)
        close(d_z, z, 1e3 if dtype == np.float64 else 1.0)  # libdevice vs libm: last bits


def test_scalar_helpers_are_shared():
    assert gpu.hash_uniform is cpu.hash_uniform

