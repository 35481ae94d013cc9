"""CUDA attention kernels against their CPU twins: the same outputs and gradients, the same dropout masks.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes; they also run
on a real GPU (without the simulator) at realistic shapes when NKERNELS_REAL_GPU=1 (conftest.py).
"""
import numpy as np
import pytest

from nkernels.kernels.cpu import attention as cpu
from nkernels.kernels.cuda import attention as gpu

pytestmark = [pytest.mark.cuda, pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")]


@pytest.fixture
def shapes(pick):
    """(N, T, E, heads) cases."""
    return pick([(2, 3, 4, 2)], [(32, 8, 32, 4), (64, 64, 128, 8)])


@pytest.mark.parametrize("p, causal, bias", [(0.0, False, True), (0.3, True, False)],
                         ids=["plain", "dropout-causal-nobias"])
def test_attention_matches_cpu(p, causal, bias, shapes, dtype, dev, poison, close):
    rng = np.random.default_rng(0)
    for n, t, e, heads in shapes:
        x = rng.standard_normal((n, t, e)).astype(dtype)
        dy = rng.standard_normal((n, t, e)).astype(dtype)
        w_in = (rng.standard_normal((3 * e, e)) / np.sqrt(e)).astype(dtype)
        w_out = (rng.standard_normal((e, e)) / np.sqrt(e)).astype(dtype)
        b_in, b_out = (rng.standard_normal(3 * e) if bias else np.zeros(0)).astype(dtype), \
            (rng.standard_normal(e) if bias else np.zeros(0)).astype(dtype)
        saved = {"qkv": (n, t, 3 * e), "attn": (n, heads, t, t), "mask": (n, heads, t, t), "ctx": (n, t, e)}
        work = {"dctx": (n, t, e), "dattn": (n, heads, t, t), "dqkv": (n, t, 3 * e)}
        host = {k: np.zeros(s, dtype) for k, s in {**saved, **work}.items()}
        device = {k: poison(s, dtype) for k, s in {**saved, **work}.items()}
        seed = np.array([5], np.int64)
        counter, d_counter = np.array([77], np.int64), np.array([77], np.int64)
        out, d_out = np.empty((n, t, e), dtype), poison((n, t, e), dtype)
        cpu.attention_forward(x, w_in, b_in, w_out, b_out, heads, causal, p, seed, counter,
                              *[host[k] for k in saved], out)
        d_x, d_w_in, d_w_out = dev(x), dev(w_in), dev(w_out)
        gpu.attention_forward(d_x, d_w_in, dev(b_in), d_w_out, dev(b_out), heads, causal, p, seed, d_counter,
                              *[device[k] for k in saved], d_out)
        assert d_counter[0] == counter[0] == 77 + (n * heads * t * t if p > 0 else 0)
        if p > 0:
            np.testing.assert_array_equal(device["mask"].copy_to_host(), host["mask"])
        close(device["attn"], host["attn"], 20.0)
        close(d_out, out, 20.0)

        grads = [np.empty_like(a) for a in (x, w_in, b_in, w_out, b_out)]
        cpu.attention_backward(x, dy, w_in, w_out, heads, causal, p, *[host[k] for k in saved], True,
                               *[host[k] for k in work], *grads)
        d_grads = [poison(g.shape, dtype) for g in grads]
        gpu.attention_backward(d_x, dev(dy), d_w_in, d_w_out, heads, causal, p, *[device[k] for k in saved], True,
                               *[device[k] for k in work], *d_grads)
        for got, ref in zip(d_grads, grads):
            close(got, ref, 50.0)
