"""CUDA activation kernels against their CPU twins.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes; they also run
on a real GPU (without the simulator) at realistic shapes when NKERNELS_REAL_GPU=1 (conftest.py).
"""
import numpy as np
import pytest

from nkernels.kernels.cpu import activation as cpu
from nkernels.kernels.cuda import activation as gpu

pytestmark = pytest.mark.cuda


@pytest.fixture
def shapes(pick):
    """Flat lengths: below, at and above one grid-stride sweep (16 simulated threads x 4)."""
    return pick([1, 37, 150], [1, 1000, 3_000_001])


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "silu", "gelu", "gelu_tanh"])
def test_activation_forward_backward_match_cpu(name, shapes, dtype, dev, poison, close):
    rng = np.random.default_rng(0)
    for n in shapes:
        x = (rng.standard_normal(n) * 4).astype(dtype)
        x[: min(n, 2)] = [60.0, -60.0][: min(n, 2)]  # sigmoid's overflow-free branches
        dy = rng.standard_normal(n).astype(dtype)
        y = np.empty_like(x)
        getattr(cpu, name + "_forward")(x, y)
        d_y = poison(n, dtype)
        getattr(gpu, name + "_forward")(dev(x), d_y)
        close(d_y, y, 4.0)
        saved = x if name.startswith(("silu", "gelu")) else y  # SiLU's and GELU's backward read the input
        dx = np.empty_like(x)
        getattr(cpu, name + "_backward")(saved, dy, dx)
        d_dx = poison(n, dtype)
        getattr(gpu, name + "_backward")(dev(saved), dev(dy), d_dx)
        close(d_dx, dx, 4.0)


def test_relu_is_exact(dtype, dev):
    x = np.array([-1.5, 0.0, 2.0, -0.0, 3.25], dtype)
    d_out = dev(np.full(5, np.nan, dtype))
    gpu.relu_forward(dev(x), d_out)
    np.testing.assert_array_equal(d_out.copy_to_host(), np.maximum(x, 0))
