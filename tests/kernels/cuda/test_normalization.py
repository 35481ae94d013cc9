"""CUDA normalization kernels (BatchNorm, LayerNorm) against their CPU twins.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes; they also run
on a real GPU (without the simulator) at realistic shapes when NKERNELS_REAL_GPU=1 (conftest.py).
"""
import numpy as np
import pytest

from nkernels.kernels.cpu import normalization as cpu
from nkernels.kernels.cuda import normalization as gpu

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("cumulative", [False, True])
def test_batchnorm_matches_cpu(cumulative, dtype, dev, poison, close, pick):
    rng = np.random.default_rng(0)
    for n, c, length in pick([(3, 2, 5)], [(64, 32, 16 * 16), (5, 300, 1)]):
        x = (rng.standard_normal((n, c * length)) * 2 + 1).astype(dtype)
        w, b = rng.uniform(0.5, 1.5, c).astype(dtype), rng.standard_normal(c).astype(dtype)
        stats = {device: (np.full(c, 0.5, dtype), np.full(c, 2.0, dtype), np.array([3], np.int64))
                 for device in ("cpu", "cuda")}
        mean, invstd, out = np.empty(c, dtype), np.empty(c, dtype), np.empty_like(x)
        cpu.batchnorm_forward_train(x, c, w, b, 1e-5, 0.1, cumulative, *stats["cpu"], mean, invstd, out)
        d_mean, d_invstd, d_out = poison(c, dtype), poison(c, dtype), poison(x.shape, dtype)
        d_x, d_w, d_b = dev(x), dev(w), dev(b)
        gpu.batchnorm_forward_train(d_x, c, d_w, d_b, 1e-5, 0.1, cumulative, *stats["cuda"], d_mean, d_invstd,
                                    d_out)
        close(d_mean, mean, scale=5)  # the sums run in another order
        close(d_invstd, invstd, scale=5)
        close(d_out, out, scale=5)
        for ours, theirs in zip(stats["cuda"], stats["cpu"]):
            close(ours.astype(np.float64), theirs, scale=5, dtype=dtype)

        evaluated, d_evaluated = np.empty_like(x), poison(x.shape, dtype)
        cpu.batchnorm_forward_eval(x, c, w, b, 1e-5, *stats["cpu"][:2], evaluated)
        gpu.batchnorm_forward_eval(d_x, c, d_w, d_b, 1e-5, *stats["cpu"][:2], d_evaluated)
        close(d_evaluated, evaluated)

        dy = rng.standard_normal(x.shape).astype(dtype)
        dx, dw, db = np.empty_like(x), np.empty(c, dtype), np.empty(c, dtype)
        cpu.batchnorm_backward(x, dy, c, w, mean, invstd, True, dx, dw, db)
        d_dx, d_dw, d_db = poison(x.shape, dtype), poison(c, dtype), poison(c, dtype)
        gpu.batchnorm_backward(d_x, dev(dy), c, d_w, dev(mean), dev(invstd), True, d_dx, d_dw, d_db)
        close(d_db, db, scale=5)
        close(d_dw, dw, scale=5)
        close(d_dx, dx, scale=50)  # dx subtracts nearly equal terms
        untouched = poison(x.shape, dtype)
        gpu.batchnorm_backward(d_x, dev(dy), c, d_w, dev(mean), dev(invstd), False, untouched, d_dw, d_db)
        assert np.isnan(untouched.copy_to_host()).all()


@pytest.mark.parametrize("variant", ["plain", "scale", "affine"])
def test_layernorm_matches_cpu(variant, dtype, dev, poison, close, pick):
    rng = np.random.default_rng(1)
    prefix = {"plain": "layernorm", "scale": "layernorm_scale", "affine": "layernorm_affine"}[variant]
    for rows, d in pick([(5, 6)], [(64 * 8, 32), (33, 1000), (4096, 3)]):
        x = (rng.standard_normal(rows * d) * 3 + 2).astype(dtype)
        w, b = rng.uniform(0.5, 1.5, d).astype(dtype), rng.standard_normal(d).astype(dtype)
        params = {"plain": (), "scale": (w,), "affine": (w, b)}[variant]
        mean, invstd, out = np.empty(rows, dtype), np.empty(rows, dtype), np.empty_like(x)
        getattr(cpu, prefix + "_forward")(x, d, *params, 1e-5, mean, invstd, out)
        d_mean, d_invstd, d_out = poison(rows, dtype), poison(rows, dtype), poison(x.shape, dtype)
        getattr(gpu, prefix + "_forward")(dev(x), d, *map(dev, params), 1e-5, d_mean, d_invstd, d_out)
        close(d_mean, mean, scale=5)
        close(d_invstd, invstd, scale=5)
        close(d_out, out, scale=5)

        dy = rng.standard_normal(x.shape).astype(dtype)
        grads = [np.empty(d, dtype) for _ in params]
        dx = np.empty_like(x)
        getattr(cpu, prefix + "_backward")(x, dy, d, *params[:1], mean, invstd, True, dx, *grads)
        d_grads = [poison(d, dtype) for _ in params]
        d_dx = poison(x.shape, dtype)
        getattr(gpu, prefix + "_backward")(dev(x), dev(dy), d, *map(dev, params[:1]), dev(mean), dev(invstd), True,
                                          d_dx, *d_grads)
        close(d_dx, dx, scale=50)
        for ours, theirs in zip(d_grads, grads):
            close(ours, theirs, scale=5)
