"""The vectorizable math of the CPU kernels (nkernels.kernels.cpu.vecmath): exp, sigmoid, tanh and the
standard normal's CDF against float64 references."""
import numpy as np
import pytest
from numba import njit

from nkernels.kernels.cpu import vecmath


@njit(cache=True)
def _approximations(x, exp_out, sigmoid_out, tanh_out):
    for i in range(x.shape[0]):
        exp_out[i] = vecmath.exp(x[i])
        sigmoid_out[i] = vecmath.sigmoid(x[i])
        tanh_out[i] = vecmath.tanh(x[i])


@pytest.mark.needs_jit("the polynomial exp, sigmoid and tanh are Numba overloads that exist in compiled code only; as "
                       "plain Python they are math.exp and friends")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_sigmoid_tanh_are_accurate_to_a_few_ulp(dtype):
    """The Cephes/Eigen polynomials behind the LSTM/GRU gates and GELU, against float64 NumPy: exp to 2 ulp
    (relative) inside the range it clamps its input to, sigmoid and tanh to 2 and 4 ulp (absolute) anywhere;
    infinities saturate, NaN stays NaN."""
    eps = np.finfo(dtype).eps
    clamp = 87.0 if dtype == np.float32 else 708.0
    x = np.concatenate([np.linspace(-clamp, clamp, 4001), np.linspace(-1.0, 1.0, 401), np.linspace(-30, 30, 601),
                        [0.0, -0.0, 1e-30, -1e-30, np.inf, -np.inf, np.nan]]).astype(dtype)
    e, s, t = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    _approximations(x, e, s, t)
    x64, finite = x.astype(np.float64), np.isfinite(x)
    ref_e = np.exp(x64[finite])
    np.testing.assert_array_less(np.abs(e[finite] - ref_e), 2 * eps * ref_e)
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(s[finite], 1.0 / (1.0 + np.exp(-x64[finite])), rtol=0, atol=2 * eps)
    np.testing.assert_allclose(t[finite], np.tanh(x64[finite]), rtol=0, atol=4 * eps)
    np.testing.assert_allclose(s[-3:-1], [1.0, 0.0], rtol=0, atol=2 * eps)
    np.testing.assert_array_equal(t[-3:-1], [1.0, -1.0])
    assert np.isfinite(e[-3:-1]).all() and e[-2] >= 0  # exp clamps its input: never inf
    assert np.isnan(e[-1]) and np.isnan(s[-1]) and np.isnan(t[-1])



@njit
def _normal_cdf_of(x, out):
    for i in range(x.shape[0]):
        out[i] = vecmath.normal_cdf(x[i])


@pytest.mark.needs_jit("normal_cdf is a Numba overload in compiled code; as plain Python it is math.erfc")
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 4e-7), (np.float64, 1e-14)])
def test_normal_cdf_is_relatively_accurate_in_both_tails(dtype, rtol):
    """GELU's Phi (vecmath.normal_cdf) against scipy's ndtr, relative error, from the far left tail (Phi(-12)
    is 2e-33) to where it rounds to 1: within rtol * (1 + x**2) (float32's rounding of x**2 / 2 inside the
    exp grows with x**2: 1.5e-5 at x = -12); NaN stays NaN, infinities give 0 and 1."""
    from scipy.special import ndtr

    x = np.concatenate([np.linspace(-12.0, 8.0, 4001), [-1e-30, 0.0]]).astype(dtype)
    got = np.empty_like(x)
    _normal_cdf_of(x, got)
    x64 = x.astype(np.float64)
    expected = ndtr(x64)
    error = np.abs(got - expected) / expected
    assert np.all(error <= rtol * (1.0 + x64 * x64)), f"relative error {error.max():.3g} at x = {x[error.argmax()]}"
    special = np.array([np.nan, -np.inf, np.inf], dtype)
    out = np.empty_like(special)
    _normal_cdf_of(special, out)
    assert np.isnan(out[0]) and out[1] == 0.0 and out[2] == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_all_finite_finds_one_bad_entry_anywhere(dtype, bad):
    a = (np.linspace(-1, 1, 101) * np.finfo(dtype).max).astype(dtype)  # finite, however large
    assert vecmath.all_finite(a) and vecmath.all_finite(a[:0])
    for i in (0, 37, 100):
        b = a.copy()
        b[i] = bad
        assert not vecmath.all_finite(b)
