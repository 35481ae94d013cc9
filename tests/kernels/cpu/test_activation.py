"""The CPU activation kernels (nkernels.kernels.cpu.activation) against the naive references, and SiLU
against torch at the extremes, where exp would overflow."""
import warnings

import numpy as np
import pytest
import torch

import naive
from nkernels.kernels.cpu import activation

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-6, np.float64: 1e-13}
#: name -> (reference forward, reference backward, whether the backward takes the input rather than the output)
ACTIVATIONS = {
    "relu": (naive.relu, naive.relu_backward, False),
    "sigmoid": (naive.sigmoid, naive.sigmoid_backward, False),
    "tanh": (naive.tanh, naive.tanh_backward, False),
    "silu": (naive.silu, naive.silu_backward, True),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("n", [1, 2, 37])
def test_forward_and_backward_match_naive(name, dtype, n):
    forward_ref, backward_ref, takes_input = ACTIVATIONS[name]
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 4).astype(dtype)
    x[:2] = [-50.0, 50.0][:n]  # saturated sigmoid and tanh
    dy = rng.standard_normal(n).astype(dtype)
    y = np.full_like(x, np.nan)
    getattr(activation, name + "_forward")(x, y)
    dx = np.full_like(x, np.nan)
    getattr(activation, name + "_backward")(x if takes_input else y, dy, dx)
    assert y.dtype == dtype and dx.dtype == dtype
    np.testing.assert_allclose(y, forward_ref(x), rtol=RTOL[dtype], atol=1e-30)
    # 1 - y * y in the dtype cancels near saturation: an absolute tolerance of a few ulp of dy
    atol = 4 * np.finfo(dtype).eps * np.abs(dy).max()
    np.testing.assert_allclose(dx, backward_ref(x if takes_input else y, dy), rtol=RTOL[dtype], atol=atol)


def test_relu_at_zero_and_signed_zero():
    x = np.array([-0.0, 0.0, -1e-300, 1e-300])
    y, dx = np.empty_like(x), np.empty_like(x)
    activation.relu_forward(x, y)
    activation.relu_backward(y, np.ones_like(x), dx)
    np.testing.assert_array_equal(y, [0.0, 0.0, 0.0, 1e-300])
    np.testing.assert_array_equal(dx, [0.0, 0.0, 0.0, 1.0])  # the kink belongs to the flat side


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


@pytest.mark.parametrize("code, name", [(activation.IDENTITY, None), (activation.RELU, "relu"),
                                        (activation.SIGMOID, "sigmoid"), (activation.TANH, "tanh")])
def test_the_activation_chosen_by_code_is_that_kernel(code, name):
    """The schemes' fused loops pick an activation by number: the same numbers as the named kernels (a copy for
    IDENTITY), on 2-D arrays, and the backward may write over dy."""
    rng = np.random.default_rng(code)
    x, dy = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    y = np.full_like(x, np.nan)
    activation.activation_forward_by_code(code, x, y)
    expected_y, expected_dx = x.copy(), dy.copy()
    if name is not None:
        getattr(activation, name + "_forward")(x.ravel(), expected_y.ravel())
        getattr(activation, name + "_backward")(expected_y.ravel(), dy.ravel(), expected_dx.ravel())
    np.testing.assert_array_equal(y, expected_y)
    activation.activation_backward_by_code(code, y, dy, dy)
    np.testing.assert_array_equal(dy, expected_dx)
