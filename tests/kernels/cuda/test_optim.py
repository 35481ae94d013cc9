"""CUDA optimizer updates (SGD, Adam/AdamW) against their CPU twins.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes; they also run
on a real GPU (without the simulator) at realistic shapes when NKERNELS_REAL_GPU=1 (conftest.py).
"""
import numpy as np
import pytest

from nkernels.kernels.cpu import optim as cpu
from nkernels.kernels.cuda import optim as gpu

pytestmark = pytest.mark.cuda


@pytest.fixture
def shapes(pick):
    return pick([37], [1_000_003])


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_matches_cpu(momentum, nesterov, shapes, dtype, dev, close):
    rng = np.random.default_rng(0)
    for n in shapes:
        p, g, v = (rng.standard_normal(n).astype(dtype) for _ in range(3))
        d_p, d_g, d_v = dev(p), dev(g), dev(v)
        for _ in range(2):
            cpu.sgd_update(p, g, v, 0.1, momentum, 0.01, nesterov)
            gpu.sgd_update(d_p, d_g, d_v, 0.1, momentum, 0.01, nesterov)
        close(d_p, p, 2.0)
        close(d_v, v, 2.0)


@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_matches_cpu(decoupled, shapes, dtype, dev, close):
    rng = np.random.default_rng(1)
    for n in shapes:
        p, g = (rng.standard_normal(n).astype(dtype) for _ in range(2))
        m, v = np.zeros(n, dtype), np.zeros(n, dtype)
        d_p, d_g, d_m, d_v = dev(p), dev(g), dev(m), dev(v)
        for step in (1, 2, 3):
            cpu.adam_update(p, g, m, v, 1e-2, 0.9, 0.999, 1e-8, 0.05, decoupled, step)
            gpu.adam_update(d_p, d_g, d_m, d_v, 1e-2, 0.9, 0.999, 1e-8, 0.05, decoupled, step)
        close(d_p, p, 2.0)
        close(d_m, m, 2.0)
        close(d_v, v, 2.0)
