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
