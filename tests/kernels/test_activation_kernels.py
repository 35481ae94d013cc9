"""The CPU activation kernels at the extremes: SiLU against torch where exp would overflow."""
import warnings

import numpy as np
import pytest
import torch

from nkernels.kernels.cpu import activation


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-6)])
def test_silu_matches_torch_without_overflow(dtype, rtol):
    x = np.array([-1000.0, -88.0, -40.0, -3.5, -1e-8, 0.0, 1e-8, 0.75, 40.0, 88.0, 1000.0], dtype)
    dy = np.linspace(-2.0, 3.0, x.size).astype(dtype)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.nn.functional.silu(tx)
    ty.backward(torch.from_numpy(dy))
    out, dx = np.empty_like(x), np.empty_like(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow in exp, no 0 * inf
        activation.silu_forward(x, out)
        activation.silu_backward(x, dy, dx)
    np.testing.assert_allclose(out, ty.detach().numpy(), rtol=rtol, atol=1e-30)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=rtol, atol=1e-30)


@pytest.mark.parametrize("approximate, op", [("none", "gelu"), ("tanh", "gelu_tanh")])
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-6)])
def test_gelu_matches_torch_over_the_whole_range(approximate, op, dtype, rtol):
    """Both forms of GELU against torch, in the tails (where x * Phi(x) is 0 or x) and around 0."""
    x = np.concatenate([[-1000.0, -40.0, -8.0, -1e-8, 0.0, 1e-8, 8.0, 40.0, 1000.0],
                        np.linspace(-5.0, 5.0, 41)]).astype(dtype)
    dy = np.linspace(-2.0, 3.0, x.size).astype(dtype)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.nn.functional.gelu(tx, approximate=approximate)
    ty.backward(torch.from_numpy(dy))
    out, dx = np.empty_like(x), np.empty_like(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow in exp or x**3, no 0 * inf
        getattr(activation, op + "_forward")(x, out)
        getattr(activation, op + "_backward")(x, dy, dx)
    # the derivative cancels in the left tail (0.5 * (1 + t) against the x * (1 - t**2) term): both
    # are accurate there to the resolution of the terms (about 1 + |x|, |dy| <= 3), not of the result
    scale = 3.0 * (1.0 + np.abs(x.astype(np.float64)))
    for what, got, expected in (("output", out, ty.detach().numpy()), ("gradient", dx, tx.grad.numpy())):
        error = np.abs(got.astype(np.float64) - expected) / (np.abs(expected) + scale)
        assert error.max() <= rtol, f"{what}: relative error {error.max():.3g} at x = {x[error.argmax()]}"
