"""CUDA LSTM/GRU kernels (per-step GEMM + fused cell kernels) against their CPU twins.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes; they also run
on a real GPU (without the simulator) at realistic shapes when NKERNELS_REAL_GPU=1 (conftest.py).
"""
import numpy as np
import pytest

from nkernels.kernels.cpu import recurrent as cpu
from nkernels.kernels.cuda import recurrent as gpu

pytestmark = pytest.mark.cuda


@pytest.fixture
def shapes(pick):
    """(N, T, I, H) cases."""
    return pick([(2, 3, 4, 5), (1, 1, 2, 3)], [(64, 8, 8, 64), (128, 28, 28, 128)])


def _params(rng, n, t, ni, h, gates, dtype):
    bound = 1 / np.sqrt(h)
    u = lambda *s: rng.uniform(-bound, bound, s).astype(dtype)  # noqa: E731
    x = rng.standard_normal((n, t, ni)).astype(dtype)
    return x, u(gates * h, ni), u(gates * h, h), u(gates * h), u(gates * h)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_recurrent_matches_cpu(kind, shapes, dtype, dev, poison, close):
    rng = np.random.default_rng(0)
    ngates = 4 if kind == "lstm" else 3
    shape_fn = getattr(cpu, kind + "_workspace_shapes")
    fwd_names = getattr(cpu, kind.upper() + "_FORWARD_WORKSPACES")
    bwd_names = getattr(cpu, kind.upper() + "_BACKWARD_WORKSPACES")
    for n, t, ni, h in shapes:
        x, w_ih, w_hh, b_ih, b_hh = _params(rng, n, t, ni, h, ngates, dtype)
        dhs = rng.standard_normal((n, t, h)).astype(dtype)
        ws = {k: np.empty(v, dtype) for k, v in shape_fn(n, t, ni, h).items()}
        d_ws = {k: poison(v, dtype) for k, v in shape_fn(n, t, ni, h).items()}
        hs = np.empty((n, t, h), dtype)
        getattr(cpu, kind + "_forward")(x, w_ih, w_hh, b_ih, b_hh, *[ws[k] for k in fwd_names], hs)
        d_x, d_wih, d_whh = dev(x), dev(w_ih), dev(w_hh)
        d_hs = poison((n, t, h), dtype)
        getattr(gpu, kind + "_forward")(d_x, d_wih, d_whh, dev(b_ih), dev(b_hh),
                                        *[d_ws[k] for k in fwd_names], d_hs)
        close(d_hs, hs, 20.0)
        for k in fwd_names[:3]:  # the saved workspaces
            close(d_ws[k], ws[k], 20.0)

        grads = [np.empty_like(a) for a in (x, w_ih, w_hh, b_ih, b_hh)]
        saved = [ws[k] for k in fwd_names[:3]]
        getattr(cpu, kind + "_backward")(x, w_ih, w_hh, *saved, dhs, True, *[ws[k] for k in bwd_names],
                                         *grads)
        d_grads = [poison(g.shape, dtype) for g in grads]
        d_saved = [d_ws[k] for k in fwd_names[:3]]
        getattr(gpu, kind + "_backward")(d_x, d_wih, d_whh, *d_saved, dev(dhs), True,
                                         *[d_ws[k] for k in bwd_names], *d_grads)
        for got, ref in zip(d_grads, grads):
            close(got, ref, 50.0)
        # A first layer (need_dx False): dx stays as it was (NaN), the weight gradients as with it.
        d_grads = [poison(g.shape, dtype) for g in grads]
        getattr(gpu, kind + "_backward")(d_x, d_wih, d_whh, *d_saved, dev(dhs), False,
                                         *[d_ws[k] for k in bwd_names], *d_grads)
        assert np.isnan(d_grads[0].copy_to_host()).all()
        for got, ref in zip(d_grads[1:], grads[1:]):
            close(got, ref, 50.0)
