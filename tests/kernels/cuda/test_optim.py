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


@pytest.mark.parametrize("clip", [None, 0.5])
@pytest.mark.parametrize("kind", ["sgd", "momentum", "nesterov", "adam", "adamw"])
def test_the_fused_flat_update_matches_the_cpu_update_and_clipping(kind, clip, shapes, dtype, dev, close):
    """One launch over the flat buffer (clipping factor on the device) = the CPU's clip then update."""
    from nkernels.kernels.cpu import norms

    rng = np.random.default_rng(2)
    n = shapes[0]
    p, g = (rng.standard_normal(n).astype(dtype) for _ in range(2))
    s1, s2 = np.zeros(n, dtype), np.zeros(n, dtype)
    d_p, d_s1, d_s2 = dev(p), dev(s1), dev(s2)
    scale = dev(np.full(1, np.nan)) if clip is not None else None
    for step in (1, 2):
        grad = (g * step).astype(dtype)
        d_g = dev(grad)
        if clip is not None:
            norms.scale_inplace(grad, norms.clip_factor(norms.sum_of_squares(grad), clip))
            gpu.clip_factor_into(d_g, clip, scale)
        if kind in ("adam", "adamw"):
            cpu.adam_update(p, grad, s1, s2, 1e-2, 0.9, 0.999, 1e-8, 0.05, kind == "adamw", step)
            gpu.adam_update_flat(d_p, d_g, d_s1, d_s2, 1e-2, 0.9, 0.999, 1e-8, 0.05, kind == "adamw", step, scale)
        else:
            momentum = 0.0 if kind == "sgd" else 0.9
            cpu.sgd_update(p, grad, s1, 0.1, momentum, 0.01, kind == "nesterov")
            gpu.sgd_update_flat(d_p, d_g, d_s1, 0.1, momentum, 0.01, kind == "nesterov", scale)
        close(d_g, grad, 2.0)  # clipping writes the scaled gradient back, as on the CPU
    close(d_p, p, 4.0)
    if kind != "sgd":
        close(d_s1, s1, 4.0)


def test_the_clip_factor_stays_on_the_device_and_matches_the_cpu(dev):
    from nkernels.kernels.cpu import norms

    g = np.random.default_rng(3).standard_normal(41) * 3
    out = dev(np.zeros(1))
    for max_norm in (0.5, 1e6):
        gpu.clip_factor_into(dev(g), max_norm, out)
        assert out.copy_to_host()[0] == pytest.approx(norms.clip_factor(float((g * g).sum()), max_norm), rel=1e-12)
