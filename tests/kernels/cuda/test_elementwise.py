"""The CUDA elementwise generator: its language, its launchers, its cache, and a plugin's kernels made with it.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes.
"""
import inspect

import numpy as np
import pytest
from numba import njit

import nkernels as nk
from nkernels.plugins.kernels import KernelRecord
from nkernels.kernels.cpu import activation as cpu_activation
from nkernels.kernels.cpu import dropout as cpu_dropout
from nkernels.kernels.cuda import activation, dropout, recurrent, reshape
from nkernels.kernels.cuda.elementwise import ElementwiseKernel, ExpressionError, elementwise
from nkernels.passes import DX, DY, X, Y, Call, LayerPasses, Scalar
from nkernels.testing import check_cpu_cuda_agreement

pytestmark = pytest.mark.cuda


# -- the language: what is refused, before anything runs ------------------------------------------
@pytest.mark.parametrize("signature, body, message", [
    ("f(x, out)", "out = x.real", "not part of the expression language"),
    ("f(x, out)", "out = __import__('os')", "only these functions may be called"),
    ("f(x, out)", "out = eval('x')", "only these functions may be called"),
    ("f(x, out)", "out = 'x'", "only finite numbers"),
    ("f(x, out)", "out = x * 1e999", "only finite numbers"),
    ("f(x, out)", "out = y", "unknown name"),
    ("f(x, out)", "out = (lambda: x)()", "only these functions may be called"),
    ("f(x, out)", "import os", "is not an assignment"),
    ("f(x, out)", "out[0] = x", "is not an assignment"),
    ("f(x, out)", "out = x if x else 0", "a condition must be a comparison"),
    ("f(x, out)", "out = x[x]", "the index must be an integer"),
    ("f(x, out)", "out = x[i - 0.5]", "meets an integer"),
    ("f(x, out)", "out = x\ny = out[i]", "cannot be read at another index"),
    ("f(x, a: scalar, out)", "a = x", "number parameter; it cannot be assigned"),
    ("f(x, out)", "tmp = x", "no output"),
    ("f(x, out)", "i = x\nout = i", "element index"),
    ("f(x, out)", "_t = x\nout = _t", "must not start with an underscore"),
    ("f(x, out)", "out = exp(x, x)", "exp takes 1 arguments"),
    ("f(x, a: float32, out)", "out = x", "is not one of scalar, float64, int64, uint64"),
    ("f(x, out=None)", "out = x", "only plain parameters"),
    ("f(x, *out)", "out = x", "only plain parameters"),
    ("f(x, x)", "x = x", "appears twice"),
    ("f(x): pass\ndef g(out)", "out = x", "is not of the form"),
    ("f(a: scalar)", "b = a", "has no array parameter"),
    ("f(x, exp)", "exp = x", "a function of the expressions"),
    ("f(x, out", "out = x", "is not of the form"),
    ("f(x, out)", "out = = x", "the body does not parse"),
])
def test_the_language_refuses_what_it_does_not_know(signature, body, message):
    with pytest.raises(ExpressionError, match=message):
        elementwise(signature, body)


def test_numbers_take_the_type_of_what_they_meet():
    source = elementwise("f(x, n: int64, out)", "out = x * 0.5 if i < n - 1 else x").source
    assert "_k0 = _dt(0.5)" in source and "(x_0 * _k0)" in source  # beside an array element: the arrays' dtype
    assert "_k1 = _nk_np.int64(1)" in source and "(n_ - _k1)" in source  # beside an int64: an int64


def test_boolean_logic_integer_division_and_calls_of_several_arguments(dev):
    """``and``, ``or``, ``not`` and ``True`` in conditions; ``/`` of integers is a float64; ``max`` of three."""
    x = np.linspace(-2.0, 2.0, 13)
    kern = elementwise("f(x, n: int64, out)",
                       "out = max(x, 0, copysign(0.5, x)) + n / 4 if (x > -1 and not x > 1) or i == 0 else "
                       "(x if True else 0)")
    out = dev(np.full(13, np.nan))
    kern(dev(x), 3, out)
    keep = ((x > -1) & ~(x > 1)) | (np.arange(13) == 0)
    expected = np.where(keep, np.maximum(np.maximum(x, 0), np.copysign(0.5, x)) + 0.75, x)
    np.testing.assert_array_equal(out.copy_to_host(), expected)


def test_the_source_holds_names_and_typed_numbers_only():
    """Nothing of the caller's text but identifiers reaches the source: the body is re-rendered
    from its syntax tree, with every name suffixed (so no caller's name can shadow a module)."""
    kern = elementwise("f(math, np, out)", "out = math * np + 2")
    assert "math_0 = math_[_i0]" in kern.source and "out_0 = ((math_0 * np_0) + _k0)" in kern.source
    assert "@_nk_cuda.jit(cache=True)" in kern.source


# -- launchers -------------------------------------------------------------------------------------
GENERATED_TWINS = [(cpu_activation, activation, name) for name in activation.__all__] + [
    (cpu_dropout, dropout, "dropout_backward")]


@pytest.mark.parametrize("cpu, gpu, name", GENERATED_TWINS, ids=[t[2] for t in GENERATED_TWINS])
def test_generated_launchers_have_their_cpu_twins_name_and_signature(cpu, gpu, name):
    twin = getattr(gpu, name)
    assert isinstance(twin, ElementwiseKernel) and twin.__name__ == name
    assert inspect.signature(twin) == inspect.signature(getattr(cpu, name))


def test_launchers_check_their_arrays(dev):
    x = np.arange(5, dtype=np.float32)
    with pytest.raises(TypeError, match="x is a NumPy array"):
        activation.relu_forward(x, dev(x))
    with pytest.raises(ValueError, match="relu_forward: x has 4 elements but out has 5"):
        activation.relu_forward(dev(x[:4]), dev(x))
    with pytest.raises(TypeError, match="relu_forward: x is float64 but out is float32"):
        activation.relu_forward(dev(x.astype(np.float64)), dev(x))
    with pytest.raises(ValueError, match=r"must be a 1-D device array \(a flat view\), got shape \(5, 1\)"):
        activation.relu_forward(dev(x[:, None]), dev(x))


def test_empty_arrays_launch_nothing(dev):
    empty = dev(np.zeros(0, np.float32))
    activation.sigmoid_forward(empty, empty)


def test_scalars_are_typed_in_the_arrays_dtype_unless_declared(dev):
    """``scalar`` is converted to the arrays' dtype on the host (as launch.scalar does), ``float64`` is not."""
    x = np.random.default_rng(0).standard_normal(23).astype(np.float32)
    out = dev(np.full(23, np.nan, np.float32))
    elementwise("scale(x, a: scalar, out)", "out = x * a")(dev(x), 0.1, out)
    np.testing.assert_array_equal(out.copy_to_host(), x * np.float32(0.1))
    elementwise("scale(x, a: float64, out)", "out = x * a")(dev(x), 0.1, out)
    wide = (x.astype(np.float64) * 0.1).astype(np.float32)
    np.testing.assert_array_equal(out.copy_to_host(), wide)
    assert not np.array_equal(wide, x * np.float32(0.1))  # the two differ, so the test tells them apart


def test_in_place_updates_gathers_and_the_element_index(dev):
    """An array both read and assigned is updated in place (each element loaded before any store);
    ``a[index]`` gathers; ``i`` is the element's index; several outputs in one pass."""
    rng = np.random.default_rng(1)
    n = 37  # past one sweep of the simulator's grid (2 blocks x 8 threads x 4 elements)
    p, g, table = rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(5)
    velocity = np.zeros(n)
    step = elementwise("step(p, g, table, lr: scalar, velocity)", """
        velocity = 0.9 * velocity + g
        p -= lr * velocity
        g = table[i % 5] + i
    """)
    d_p, d_g, d_v = dev(p), dev(g), dev(velocity)
    step(d_p, d_g, dev(table), 0.5, d_v)
    np.testing.assert_allclose(d_v.copy_to_host(), g, rtol=1e-15)
    np.testing.assert_allclose(d_p.copy_to_host(), p - 0.5 * g, rtol=1e-15)
    np.testing.assert_array_equal(d_g.copy_to_host(), table[np.arange(n) % 5] + np.arange(n))


def test_the_kernel_is_written_to_the_cache_under_its_content_hash(tmp_path, monkeypatch, dev):
    monkeypatch.setenv("NKERNELS_CACHE_DIR", str(tmp_path))
    kern = elementwise("halve(x, out)", "out = x / 2")
    assert not (tmp_path / "cuda").exists()  # nothing is generated before the first call
    x = np.arange(6, dtype=np.float64)
    out = dev(np.zeros(6))
    kern(dev(x), out)
    np.testing.assert_array_equal(out.copy_to_host(), x / 2)
    files = list((tmp_path / "cuda").glob("nk_ew_halve_*.py"))
    assert len(files) == 1 and files[0].read_text() == kern.source
    again = elementwise("halve(x, out)", "out = x / 2")
    again(dev(x), out)
    assert list((tmp_path / "cuda").glob("nk_ew_halve_*.py")) == files and again.kernel is kern.kernel


def test_recurrent_and_reshape_use_generated_kernels():
    for kern in (recurrent.copy_flat, reshape.copy_flat, reshape.add_flat, reshape._last_step_forward,
                 reshape._last_step_backward, dropout._dropout_mask):
        assert isinstance(kern, ElementwiseKernel)


# -- a plugin's kernels ----------------------------------------------------------------------------
@njit(cache=True)
def leaky_relu_forward(x, negative_slope, out):
    for i in range(x.shape[0]):
        out[i] = x[i] if x[i] > 0 else negative_slope * x[i]


@njit(cache=True)
def leaky_relu_backward(x, dy, negative_slope, dx):
    for i in range(x.shape[0]):
        dx[i] = dy[i] if x[i] > 0 else negative_slope * dy[i]


class LeakyReLU(nk.layers.Layer):
    """A plugin-style layer whose CUDA twins come from the generator."""

    supported_devices = ("cpu", "cuda")

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = float(negative_slope)

    def scalars(self):
        return {"negative_slope": self.negative_slope}

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def passes(self, input_shape):
        slope = Scalar("negative_slope")
        return LayerPasses(forward=(Call("test_leaky_relu_forward", X.flat, slope, Y.flat),),
                           backward=(Call("test_leaky_relu_backward", X.flat, DY.flat, slope, DX.flat),))


@pytest.mark.needs_jit("moves a model of built-in layers to the GPU: the kernel registry takes the built-in kernels "
                       "for Numba functions (records_from_module looks for .py_func), so with the JIT off it has none")
def test_a_plugin_layer_gets_cuda_twins_from_the_generator(nk_register_plugin):
    # the plugin's CUDA twins, three lines as the generator's docstring shows
    forward = elementwise("leaky_relu_forward(x, negative_slope: scalar, out)",
                          "out = x if x > 0 else negative_slope * x")
    backward = elementwise("leaky_relu_backward(x, dy, negative_slope: scalar, dx)",
                           "dx = dy if x > 0 else negative_slope * dy")

    class Plugin:
        @nk.hookimpl
        def nkernels_register_layers(self):
            return {"test-leaky-relu": LeakyReLU}

        @nk.hookimpl
        def nkernels_register_kernels(self):
            return [KernelRecord("test_leaky_relu_forward", "cpu", leaky_relu_forward),
                    KernelRecord("test_leaky_relu_backward", "cpu", leaky_relu_backward),
                    KernelRecord("test_leaky_relu_forward", "cuda", forward),
                    KernelRecord("test_leaky_relu_backward", "cuda", backward)]

    nk_register_plugin(Plugin())
    assert inspect.signature(forward) == inspect.signature(leaky_relu_forward)
    for dtype in (np.float64, np.float32):
        errors = check_cpu_cuda_agreement(LeakyReLU(0.2), (3, 2, 5), dtype=dtype)
        assert set(errors) == {"forward", "dx"}
    model = nk.Sequential([nk.layers.Dense(4, 3), LeakyReLU(0.1)], seed=0)
    x = np.random.default_rng(2).standard_normal((5, 4)).astype(np.float32)
    expected = model.forward(x)
    np.testing.assert_allclose(model.to("cuda").forward(x), expected, rtol=1e-5, atol=1e-6)

