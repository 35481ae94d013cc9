"""The vendor GEMM plugin: registered only with CuPy and a GPU, above the built-in GEMM, used by the layers'
GEMM, and the tiled GEMM otherwise. Under the CUDA simulator (CI), a fake CuPy (NumPy on the simulator's
arrays) and a fake GPU stand in, so what is tested is the registration, the priority, the fallback and the
views; on a real GPU with CuPy or a CUDA build of PyTorch, the real cuBLAS runs the same cases."""
import math
import sys
import types

import numpy as np
import pytest
from numba import cuda

import nkernels as nk
import nkernels_vendor_gemm as vendor
from nkernels.kernels.cuda import gemm as G
from nkernels.plugins import manager as plugins
from nkernels.runtime.devices import simulator

pytestmark = pytest.mark.cuda

#: the fake CuPy hands the simulator's host arrays to NumPy: meaningless on a real GPU's memory
simulated = pytest.mark.skipif(not simulator(), reason="a fake CuPy on the simulator's arrays; "
                               "test_a_real_vendor_gemm_gives_the_layers_gemm_the_same_numbers runs the real one")


def _host_view(x):
    """The simulator's device array as the NumPy array it wraps (writes go to the device array)."""
    return x._ary if hasattr(x, "_ary") else np.asarray(x)


@pytest.fixture
def fake_cupy(monkeypatch):
    """A CuPy stand-in whose matmul is NumPy's, counting its calls; and a GPU that is 'present'."""
    calls = []

    def matmul(a, b, out=None):
        calls.append((a.shape, b.shape))
        return np.matmul(a, b, out=out)

    module = types.ModuleType("cupy")
    module.__version__ = "fake"
    module.asarray = _host_view
    module.matmul = matmul
    module.lib = types.SimpleNamespace(stride_tricks=np.lib.stride_tricks)
    monkeypatch.setitem(sys.modules, "cupy", module)
    monkeypatch.setattr(vendor, "_gpu_present", lambda: (True, "a fake GPU"))
    return calls


class _CpuTorchArrays(vendor.TorchArrays):
    """The PyTorch route on the CPU build installed here: the simulator's arrays as CPU tensors (shared)."""

    def asarray(self, x):
        return self.torch.from_numpy(_host_view(x))


@pytest.fixture(params=["cupy", "torch"])
def vendor_arrays(request, fake_cupy, monkeypatch):
    """The GEMM's array library: the fake CuPy, or PyTorch's own matmul on CPU tensors."""
    if request.param == "torch":
        torch = pytest.importorskip("torch")
        arrays = _CpuTorchArrays(torch, device="cpu")
        matmul = arrays.matmul
        monkeypatch.setattr(arrays, "matmul", lambda a, b, out=None: (fake_cupy.append((tuple(a.shape), tuple(
            b.shape))), matmul(a, b, out=out))[1])
        monkeypatch.setattr(vendor, "backend", lambda: (arrays, "PyTorch on the CPU"))
    yield request.param
    vendor.use(None)


@pytest.fixture
def registered(monkeypatch):
    """The plugin registered at run time (its entry point, if installed, disabled), everything reset after."""
    for var in ("NKERNELS_STRICT_PLUGINS", "NKERNELS_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NKERNELS_DISABLE_PLUGINS", "vendor-gemm")
    plugins.reset()

    class Plugin:  # a wrapper, so that an installed entry point's module object is never registered twice
        nkernels_register_kernels = staticmethod(vendor.nkernels_register_kernels)

    plugins.register_plugin(Plugin(), "vendor-gemm-test")
    yield
    plugins.reset()


def test_without_cupy_or_a_gpu_it_registers_nothing_and_says_why(monkeypatch):
    monkeypatch.delenv("NKERNELS_VENDOR_GEMM", raising=False)
    monkeypatch.setitem(sys.modules, "cupy", types.ModuleType("cupy"))  # CuPy "installed", no GPU
    if not simulator():
        monkeypatch.setattr(vendor, "_gpu_present", lambda: (False, "the CUDA simulator is on (a stand-in)"))
    assert vendor.nkernels_register_kernels() == []
    assert "simulator" in vendor.status() and "tiled GEMM stays" in vendor.status()
    monkeypatch.setattr(vendor, "_gpu_present", lambda: (True, "a fake GPU"))
    monkeypatch.setitem(sys.modules, "cupy", None)  # not installed
    assert vendor.nkernels_register_kernels() == []
    assert "pip install cupy-cuda12x" in vendor.status()
    monkeypatch.setenv("NKERNELS_VENDOR_GEMM", "torch")
    cpu_torch = types.ModuleType("torch")  # a CPU build of PyTorch
    cpu_torch.__version__ = "2.13.0+cpu"
    cpu_torch.cuda = types.SimpleNamespace(is_available=lambda: False)
    monkeypatch.setitem(sys.modules, "torch", cpu_torch)
    assert vendor.nkernels_register_kernels() == []
    assert "sees no CUDA GPU" in vendor.status()
    monkeypatch.setenv("NKERNELS_VENDOR_GEMM", "off")
    assert vendor.nkernels_register_kernels() == [] and "NKERNELS_VENDOR_GEMM=off" in vendor.status()
    monkeypatch.setenv("NKERNELS_VENDOR_GEMM", "cublas")
    with pytest.raises(ValueError, match="one of cupy, torch, off"):
        vendor.status()


@simulated
def test_with_cupy_and_a_gpu_it_outranks_the_tiled_gemm(fake_cupy, registered):
    record = nk.registry.kernels.record(("gemm", "cuda"))
    assert record.function is vendor.vendor_gemm and record.priority == vendor.PRIORITY > 0
    assert G.gemm_in_force() is vendor.vendor_gemm
    assert "registers the CUDA gemm" in vendor.status()


def test_without_the_plugin_the_tiled_gemm_is_in_force(monkeypatch):
    plugins.reset()
    monkeypatch.setenv("NKERNELS_DISABLE_PLUGINS", "vendor-gemm")
    try:
        assert getattr(G.gemm_in_force(), "function", None) is G.tiled_gemm
    finally:
        plugins.reset()


#: (a_kcontig, b_kcontig, bias_mode, grp, beta, activation): the layers' products
LAYER_CASES = [
    (True, True, 1, 0, False, None),    # Dense forward: x @ W.T + b
    (False, False, 0, 0, True, None),   # a weight gradient accumulated: dy.T @ x
    (True, False, 0, 0, False, None),   # dy @ W, straight into C
    (True, True, 2, 4, False, None),    # a convolution's product written as NCHW, bias along M
    (True, True, 1, 0, False, "relu"),  # Dense -> ReLU fused by the step plan: the product, then the activation
    (True, True, 2, 4, False, "tanh"),  # Conv -> Tanh fused: the same over the grouped output
]


def _layers_gemm(rng, a_kc, b_kc, bias_mode, grp, beta, activation):
    """Run the layers' GEMM on one case; return the output buffer (3 elements before the product, 2 after)
    as it started and as it ended, and the float64 reference of the product."""
    m, n, k = (5, 8, 7) if simulator() else (300, 256, 129)
    A, B = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    a = A if a_kc else np.ascontiguousarray(A.T)
    b = np.ascontiguousarray(B.T) if b_kc else B
    bias = rng.standard_normal(n if bias_mode == 1 else m)
    c0 = rng.standard_normal(m * n + 5)  # the output starts 3 elements into its buffer
    ref = A @ B + (bias if bias_mode == 1 else bias[:, None] if bias_mode == 2 else 0)
    if grp:
        ref = ref.reshape(m, n // grp, grp).transpose(1, 0, 2)
    ref = ref.reshape(-1) + (c0[3:-2] if beta else 0)
    ref = {None: ref, "relu": np.maximum(ref, 0.0), "tanh": np.tanh(ref)}[activation]
    d_c = cuda.to_device(c0)
    G.gemm(cuda.to_device(a.reshape(-1)), cuda.to_device(b.reshape(-1)), d_c, m, n, k, a_kcontig=a_kc,
           b_kcontig=b_kc, lda=k if a_kc else m, ldb=k if b_kc else n, ldc=n, c_off=3, bias=cuda.to_device(bias),
           bias_mode=bias_mode, grp=grp, beta=beta, activation=activation)
    return c0, d_c.copy_to_host(), ref, (m, n, k)


def _check_layers_gemm(c0, got, ref):
    np.testing.assert_allclose(got[3:-2], ref, rtol=1e-12, atol=1e-12 * math.sqrt(len(ref)))
    np.testing.assert_array_equal(got[:3], c0[:3])  # nothing written before the offset
    np.testing.assert_array_equal(got[-2:], c0[-2:])  # nor after the product


@simulated
@pytest.mark.parametrize("a_kc, b_kc, bias_mode, grp, beta, activation", LAYER_CASES)
def test_the_layers_gemm_goes_through_the_vendor_with_the_same_numbers(a_kc, b_kc, bias_mode, grp, beta,
                                                                       activation, fake_cupy, vendor_arrays,
                                                                       registered):
    c0, got, ref, (m, n, k) = _layers_gemm(np.random.default_rng(0), a_kc, b_kc, bias_mode, grp, beta, activation)
    assert fake_cupy == [((m, k), (k, n))]  # one vendor matmul, none of the tiled kernel's launches
    _check_layers_gemm(c0, got, ref)


@pytest.mark.skipif(simulator(), reason="cuBLAS needs a real GPU (the simulated cases above run a fake CuPy)")
@pytest.mark.parametrize("a_kc, b_kc, bias_mode, grp, beta, activation", LAYER_CASES)
def test_a_real_vendor_gemm_gives_the_layers_gemm_the_same_numbers(a_kc, b_kc, bias_mode, grp, beta, activation,
                                                                   registered):
    if vendor.backend()[0] is None:
        pytest.skip(vendor.status())
    assert G.gemm_in_force() is vendor.vendor_gemm
    c0, got, ref, _ = _layers_gemm(np.random.default_rng(0), a_kc, b_kc, bias_mode, grp, beta, activation)
    _check_layers_gemm(c0, got, ref)


@simulated
def test_asking_for_tiles_or_splits_runs_the_tiled_gemm(fake_cupy, registered):
    x = cuda.to_device(np.ones(4))
    c = cuda.to_device(np.zeros(4))
    G.gemm(x, x, c, 2, 2, 2, a_kcontig=True, b_kcontig=False, lda=2, ldb=2, ldc=2, config=G.SIMULATOR)
    assert fake_cupy == [] and np.all(c.copy_to_host() == 2.0)
