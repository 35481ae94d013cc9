"""Layers, models and training on the CUDA device, against the CPU.

Under the CUDA simulator (CI) on tiny shapes; with ``NKERNELS_REAL_GPU=1`` (and
``NUMBA_ENABLE_CUDASIM=0``) the training test runs on the whole digits set.
"""
import os

import numpy as np
import pytest

import nkernels as nk
from nkernels.runtime import devices
from nkernels.errors import DeviceUnavailableError
from nkernels.testing import GradientMismatch, check_cpu_cuda_agreement
from layer_cases import CASES, kink_free_input

pytestmark = pytest.mark.cuda
L = nk.layers
REAL_GPU = os.environ.get("NKERNELS_REAL_GPU") == "1"


@pytest.mark.parametrize("make, shape", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_layer_agrees_with_its_cpu_twin_in_float64(make, shape):
    layer = make()
    inputs = kink_free_input(layer, shape, np.random.default_rng(0)) if layer.input_dtype is not None else None
    errors = check_cpu_cuda_agreement(layer, shape, dtype=np.float64, inputs=inputs)
    assert "forward" in errors and "dx" in errors


@pytest.mark.parametrize("make, shape", [(lambda: L.Conv2D(2, 3, 3, padding=1), (2, 2, 5, 4)),
                                         (lambda: L.GRU(3, 4), (2, 3, 3))], ids=["conv2d", "gru"])
def test_layers_agree_in_float32(make, shape):
    check_cpu_cuda_agreement(make(), shape, dtype=np.float32)


def test_the_agreement_check_can_fail():
    class Skewed(L.Dense):
        """A Dense whose CUDA forward is off by a little: the checker must notice."""

        def forward(self, x, training=False):
            out = super().forward(x, training)
            if self.device == "cuda":
                host = devices.to_host(out) * 1.001
                return devices.to_device(host)
            return out

    with pytest.raises(GradientMismatch, match="forward"):
        check_cpu_cuda_agreement(Skewed(3, 2), (2, 3))


@pytest.mark.parametrize("op, make_args", [
    ("softmax_cross_entropy_forward_into",
     lambda r: (r.standard_normal((5, 4)), r.integers(0, 4, 5), np.full((5, 4), np.nan), np.zeros(3), 1)),
    ("count_correct_into", lambda r: (r.standard_normal((6, 3)), r.integers(0, 3, 6), np.zeros(2, np.int64), 1)),
    ("mse_forward_into", lambda r: (r.standard_normal(7), r.standard_normal(7), np.zeros(2), 0)),
    ("relu_forward", lambda r: (r.standard_normal(9), np.full(9, np.nan))),
])
def test_kernels_agree_through_the_public_checker(op, make_args):
    check_cpu_cuda_agreement(op, *make_args(np.random.default_rng(0)))


def small_cnn(seed=0):
    return nk.Sequential([L.Conv2D(1, 2, 3), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(2 * 3 * 3, 10)],
                         seed=seed)


def test_model_to_cuda_and_back():
    x = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)
    model = small_cnn()
    expected = model.forward(x)
    model.to("cuda")
    assert model.device == "cuda" and devices.is_device_array(model.params["0.weight"])
    out = model.forward(x)  # NumPy in: NumPy out
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    on_device = model.forward(devices.to_device(x))  # a GPU array in: a device array out, no copy back
    assert devices.is_device_array(on_device)
    np.testing.assert_allclose(devices.to_host(on_device), expected, rtol=1e-5, atol=1e-6)
    model.to("cpu")
    assert isinstance(model.params["0.weight"], np.ndarray)
    np.testing.assert_allclose(model.forward(x), expected, rtol=1e-5, atol=1e-6)


def test_gpu_inputs_are_checked():
    model = small_cnn().to("cuda")
    with pytest.raises(TypeError, match="float64 GPU array but the layer is float32"):
        model.forward(devices.to_device(np.zeros((2, 1, 8, 8))))
    with pytest.raises(ValueError, match="expects input"):
        model.forward(devices.to_device(np.zeros((2, 8, 8), np.float32)))
    with pytest.raises(TypeError, match="GPU array but this layer is on the CPU"):
        small_cnn().forward(devices.to_device(np.zeros((2, 1, 8, 8), np.float32)))


def test_a_layer_without_cuda_kernels_is_named_and_nothing_moves():
    class HostOnly(L.Layer):
        """A plugin-style layer with CPU code only."""

        def forward(self, x, training=False):
            return self.prepare_input(x)

    model = nk.Sequential([L.Dense(4, 4), HostOnly()])
    with pytest.raises(ValueError, match=r"layer 1 \(HostOnly\) has no CUDA kernels"):
        model.to("cuda")
    assert model.device == "cpu" and isinstance(model.params["0.weight"], np.ndarray)


def test_no_usable_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(devices, "cuda_status", lambda: (False, "no CUDA driver or GPU found"))
    with pytest.raises(DeviceUnavailableError, match="no CUDA driver or GPU found"):
        small_cnn().to("cuda")
    with pytest.raises(DeviceUnavailableError, match="not usable"):
        nk.train(small_cnn(), np.zeros((4, 1, 8, 8), np.float32), np.zeros(4, np.int64), device="cuda")


def test_save_and_load_a_gpu_model(tmp_path):
    model = small_cnn().to("cuda")
    nk.save(model, tmp_path / "m.safetensors")
    loaded = nk.load(tmp_path / "m.safetensors")
    for key, value in model.params.items():
        np.testing.assert_array_equal(loaded.params[key], devices.to_host(value))


def test_a_gpu_model_copies_on_the_gpu_and_shares_no_array():
    import copy

    x = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)
    model = nk.Sequential([L.Conv2D(1, 2, 3), L.ReLU(), L.Dropout(0.5), L.MaxPool2D(2), L.Flatten(),
                           L.Dense(2 * 3 * 3, 10)]).to("cuda")
    model.backward(np.ones((3, 10), np.float32) * model.forward(x, training=True))  # a pass in flight
    expected = model.forward(x)
    for twin in (model.copy(), copy.deepcopy(model)):
        assert twin.device == "cuda"
        for name in ("params", "grads"):
            mine, theirs = getattr(model, name), getattr(twin, name)
            for key, value in mine.items():
                assert devices.is_device_array(theirs[key])
                np.testing.assert_array_equal(devices.to_host(theirs[key]), devices.to_host(value))
        assert twin[2].seed == model[2].seed
        np.testing.assert_array_equal(twin.forward(x), expected)
        for value in twin.params.values():  # changing the copy leaves the original alone
            devices.assign(value, np.zeros(value.shape, value.dtype))
        np.testing.assert_array_equal(model.forward(x), expected)


@pytest.mark.parametrize("optimizer, options", [("sgd", {"momentum": 0.9}), ("adam", {"clip_norm": 0.5})])
def test_training_on_the_gpu_matches_the_cpu(digits, optimizer, options):
    """The GPU computes the CPU's training run: two steps on a slice of digits, compared number for number.

    On a real GPU (NKERNELS_REAL_GPU=1) also the whole training set for 3 epochs, compared by accuracy:
    over hundreds of steps two float32 runs drift apart (the GPU fuses multiply-adds and sums in
    another order), so their parameters are not compared there.
    """
    X, y, X_test, y_test = nk.datasets.load("digits", flat=False)
    kwargs = dict(batch_size=16, optimizer=optimizer, lr=0.05, seed=0, **options)
    cpu, gpu = small_cnn(), small_cnn()
    h_cpu = nk.train(cpu, X[:32], y[:32], epochs=1, compiled=False, **kwargs)
    h_gpu = nk.train(gpu, X[:32], y[:32], epochs=1, device="cuda", **kwargs)
    assert gpu.device == "cuda" and devices.is_device_array(gpu.params["4.weight"])
    np.testing.assert_allclose(h_gpu["loss"], h_cpu["loss"], rtol=1e-4)
    assert h_gpu["accuracy"] == pytest.approx(h_cpu["accuracy"], abs=1.5 / 32)
    for key, value in cpu.params.items():
        np.testing.assert_allclose(devices.to_host(gpu.params[key]), value, rtol=1e-3, atol=1e-5)
    if REAL_GPU:
        cpu, gpu = small_cnn(), small_cnn()
        nk.train(cpu, X, y, epochs=3, compiled=False, **kwargs)
        nk.train(gpu, X, y, epochs=3, device="cuda", **kwargs)
        acc_cpu = nk.evaluate(cpu, X_test, y_test)["accuracy"]
        acc_gpu = nk.evaluate(gpu, X_test, y_test)["accuracy"]
        # this small CNN reaches 0.83 (sgd) and 0.86 (adam) on the CPU after 3 epochs (chance: 0.1)
        assert acc_gpu == pytest.approx(acc_cpu, abs=0.02) and acc_gpu > 0.75


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")  # the simulator runs the GEMM in NumPy
def test_divergence_on_the_gpu_restores_the_weights():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 4)).astype(np.float32)
    y = (X.sum(1, keepdims=True) * 1e3).astype(np.float32)
    model = nk.Sequential([L.Dense(4, 1)], seed=0).to("cuda")
    before = devices.to_host(model.params["0.weight"])
    with pytest.raises(nk.TrainingDivergedError):
        nk.train(model, X, y, epochs=2, batch_size=8, optimizer="sgd", lr=1e6, seed=0)
    np.testing.assert_array_equal(devices.to_host(model.params["0.weight"]), before)
    assert model.device == "cuda"
