"""BatchNorm1D, BatchNorm2D and LayerNorm: PyTorch's numbers in training and evaluation, the running
statistics on every path, the split mode kept off, saving, ONNX and bad input.

(tests/test_layers.py runs the conformance kit, the gradient checks and the training-mode torch
agreement of the cases in tests/layer_cases.py; tests/cuda the CPU/CUDA agreement.)
"""
import numpy as np
import pytest

import nkernels as nk
from nkernels.losses import SoftmaxCrossEntropy
from nkernels.optimizers import Adam
from nkernels.testing import check_cpu_cuda_agreement, check_onnx_export
from nkernels.trainers.compiled import CompiledTrainer

from layer_cases import CASES, torch_counterpart

L = nk.layers
NORM_CASES = [case for case in CASES if "norm" in case[0]]
TOLERANCE = {np.float32: 1e-4, np.float64: 1e-6}


def relative_error(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


def randomize(layer, rng):
    """Weights away from PyTorch's start (ones and zeros), so that they matter in the comparison."""
    for value in layer.params.values():
        value[...] = rng.uniform(0.5, 1.5, value.shape)
    return layer


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("make, shape, momentum", [
    (lambda m: L.BatchNorm1D(3, momentum=m), (6, 3), 0.1),
    (lambda m: L.BatchNorm1D(2, eps=1e-3, momentum=m), (3, 2, 5), None),
    (lambda m: L.BatchNorm2D(4, momentum=m), (2, 4, 3, 3), 0.3),
], ids=["1d-nc", "1d-ncl-cumulative", "2d"])
def test_batchnorm_matches_torch_over_training_steps_and_in_evaluation(make, shape, momentum, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    layer = randomize(make(momentum).astype(dtype), rng)
    module, _ = torch_counterpart(layer)
    assert module.momentum == momentum
    tol = TOLERANCE[dtype]
    for step in range(4):  # batches of another mean and scale each step, so the running statistics move
        x = (rng.standard_normal(shape) * (1 + step) + step).astype(dtype)
        y = layer.forward(x, training=True)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = layer.backward(dy)
        tx = torch.from_numpy(x.copy()).requires_grad_()
        ty = module(tx)
        ty.backward(torch.from_numpy(dy))
        assert relative_error(y, ty.detach().numpy()) <= tol
        assert relative_error(dx, tx.grad.numpy()) <= tol
        for name, value in module.named_parameters():
            assert relative_error(layer.grads[name], value.grad.numpy()) <= tol, name
            value.grad = None
        assert relative_error(layer.buffers["running_mean"], module.running_mean.numpy()) <= tol
        assert relative_error(layer.buffers["running_var"], module.running_var.numpy()) <= tol
        assert layer.buffers["num_batches_tracked"][0] == int(module.num_batches_tracked) == step + 1
    module.eval()
    x = rng.standard_normal(shape).astype(dtype)
    assert relative_error(layer.forward(x), module(torch.from_numpy(x)).detach().numpy()) <= tol
    assert layer.buffers["num_batches_tracked"][0] == 4  # evaluation changes nothing


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, make, shape", NORM_CASES, ids=[case[0] for case in NORM_CASES])
def test_every_case_matches_torch_in_evaluation_mode(name, make, shape, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    layer = randomize(make().astype(dtype), rng)
    for _ in range(2):  # running statistics away from their start
        layer.forward((rng.standard_normal((3,) + shape[1:]) * 2 + 1).astype(dtype), training=True)
    module, _ = torch_counterpart(layer)
    module.eval()
    x = rng.standard_normal(shape).astype(dtype)
    expected = module(torch.from_numpy(x)).detach().numpy()
    assert relative_error(layer.forward(x), expected) <= TOLERANCE[dtype]


def test_one_value_per_channel_in_training_is_a_clear_error_before_any_kernel():
    bn = L.BatchNorm1D(3)
    for shape in [(1, 3), (1, 3, 1)]:
        with pytest.raises(ValueError, match="more than one value per channel"):
            bn.forward(np.ones(shape), training=True)
        assert bn.forward(np.ones(shape)).shape == shape  # evaluation reads the running statistics
    bn.forward(np.ones((1, 3, 2)), training=True)  # two positions of one sample: two values per channel
    assert bn.buffers["num_batches_tracked"][0] == 1  # the refused calls ran no kernel
    with pytest.raises(ValueError, match="more than one value per channel"):
        L.BatchNorm2D(2).forward(np.ones((1, 2, 1, 1)), training=True)
    block = L.Residual([L.Dense(3, 3), L.BatchNorm1D(3)])
    with pytest.raises(ValueError, match="more than one value per channel"):
        block.forward(np.ones((1, 3)), training=True)


def bn_model(seed=0, momentum=0.1):
    return nk.Sequential([L.Dense(6, 8), L.BatchNorm1D(8, momentum=momentum), L.ReLU(), L.Dense(8, 3)], seed=seed)


@pytest.mark.parametrize("compiled", [True, False])
def test_a_last_batch_of_one_sample_is_refused_naming_the_way_out(compiled):
    X = np.random.default_rng(0).standard_normal((9, 6)).astype(np.float32)
    with pytest.raises(ValueError, match="batch_size"):
        nk.train(bn_model(), X, np.arange(9) % 3, epochs=1, batch_size=4, compiled=compiled)


def test_a_forced_split_is_refused_naming_batchnorm_and_auto_mode_does_not_split():
    # wide enough that the same chain without BatchNorm runs split in auto mode
    plain = nk.Sequential([L.LSTM(16, 128), L.Dense(128, 10)], seed=0)
    assert CompiledTrainer.build(plain, SoftmaxCrossEntropy(), Adam(), (40, 16), 64).split
    with_bn = nk.Sequential([L.LSTM(16, 128), L.BatchNorm1D(128), L.Dense(128, 10)], seed=0)
    assert not CompiledTrainer.build(with_bn, SoftmaxCrossEntropy(), Adam(), (40, 16), 64).split
    with pytest.raises(ValueError, match=r"split_batches=True.*layer 1, BatchNorm1D\(num_features=128\)"):
        CompiledTrainer.build(with_bn, SoftmaxCrossEntropy(), Adam(), (40, 16), 64, split_batches=True)
    nested = nk.Sequential([L.Residual([L.Conv2D(1, 1, 3, padding=1), L.BatchNorm2D(1)]), L.Flatten(),
                            L.Dense(16, 2)], seed=0)
    with pytest.raises(ValueError, match="BatchNorm2D"):
        CompiledTrainer.build(nested, SoftmaxCrossEntropy(), Adam(), (1, 4, 4), 8, split_batches=True)
    X = np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)
    with pytest.raises(ValueError, match="BatchNorm1D"):
        nk.train(bn_model(), X, np.arange(8) % 3, epochs=1, batch_size=4, split_batches=True)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_compiled_and_layerwise_training_give_the_same_running_statistics(momentum):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((45, 6)).astype(np.float32) * 3 + 1
    y = rng.integers(0, 3, 45)
    models = {}
    for compiled in (True, False):
        model = bn_model(momentum=momentum)
        nk.train(model, X, y, epochs=3, batch_size=8, seed=1, compiled=compiled)  # 5 full batches and one of 5
        models[compiled] = model
    trained, reference = models[True], models[False]
    assert trained.buffers["1.num_batches_tracked"][0] == reference.buffers["1.num_batches_tracked"][0] == 18
    assert not np.allclose(reference.buffers["1.running_mean"], 0)  # the statistics moved
    for key, value in reference.buffers.items():
        np.testing.assert_allclose(trained.buffers[key], value, rtol=1e-6, atol=1e-7, err_msg=key)
    for key, value in reference.params.items():
        np.testing.assert_allclose(trained.params[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(trained.predict(X), reference.predict(X), rtol=1e-5, atol=1e-5)


def test_the_running_statistics_are_saved_loaded_and_copied(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 6)).astype(np.float32) * 2 - 1
    model = bn_model()
    nk.train(model, X, rng.integers(0, 3, 32), epochs=2, batch_size=8, seed=0)
    nk.save(model, tmp_path / "bn.safetensors")
    loaded = nk.load(tmp_path / "bn.safetensors")
    for twin in (loaded, model.copy()):
        for key, value in model.buffers.items():
            np.testing.assert_array_equal(twin.buffers[key], value, err_msg=key)
        np.testing.assert_array_equal(twin.predict(X), model.predict(X))
    assert loaded.buffers["1.num_batches_tracked"][0] == 8


def test_layer_norm_parameters_follow_its_options():
    assert set(L.LayerNorm(4).params) == {"weight", "bias"}
    assert set(L.LayerNorm((2, 3), bias=False).params) == {"weight"}
    assert L.LayerNorm((2, 3), bias=False).params["weight"].shape == (2, 3)
    bare = L.LayerNorm(4, elementwise_affine=False)
    assert bare.params == {} and bare.grads == {}
    with pytest.raises(ValueError, match="bias=True has no effect"):
        L.LayerNorm(4, elementwise_affine=False, bias=True)
    rebuilt = L.LayerNorm.from_config(bare.get_config())
    assert rebuilt.params == {}


@pytest.mark.parametrize("make, error, match", [
    (lambda: L.BatchNorm1D(0), ValueError, "num_features"),
    (lambda: L.BatchNorm2D(3, eps=0), ValueError, "eps"),
    (lambda: L.BatchNorm1D(3, momentum=1.5), ValueError, "momentum"),
    (lambda: L.BatchNorm1D(3, momentum="0.1"), TypeError, "momentum"),
    (lambda: L.LayerNorm(()), ValueError, "normalized_shape"),
    (lambda: L.LayerNorm((4, 0)), ValueError, r"normalized_shape\[1\]"),
    (lambda: L.LayerNorm(2.5), TypeError, "normalized_shape"),
    (lambda: L.LayerNorm(4, elementwise_affine=1), TypeError, "elementwise_affine"),
], ids=["bn-features", "bn-eps", "bn-momentum", "bn-momentum-type", "ln-empty", "ln-zero", "ln-float", "ln-affine"])
def test_bad_arguments_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("layer, shape, match", [
    (L.BatchNorm1D(3), (4, 2), r"\(N, C\) or \(N, C, L\) with C = 3"),
    (L.BatchNorm1D(3), (4, 3, 2, 2), "C = 3"),
    (L.BatchNorm2D(3), (4, 3, 5), r"\(N, C, H, W\)"),
    (L.LayerNorm(5), (4, 4), r"\(N, \.\.\., 5\)"),
    (L.LayerNorm((2, 5)), (3, 5, 2), "last 2 dimensions"),
    (L.LayerNorm((2, 5)), (2, 5), "last 2 dimensions"),  # no batch dimension
])
def test_bad_shapes_are_refused_before_any_kernel(layer, shape, match):
    for training in (True, False):
        with pytest.raises(ValueError, match=match):
            layer.forward(np.ones(shape), training=training)


def test_onnx_exports_the_running_statistics_and_both_layer_norm_forms():
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from nkernels.export.onnx_export import build_onnx

    rng = np.random.default_rng(0)
    model = nk.Sequential([L.Conv2D(2, 3, 3, padding=1), L.BatchNorm2D(3), L.ReLU(), L.Flatten(), L.Dense(48, 5),
                           L.BatchNorm1D(5, momentum=None)], seed=0)
    for _ in range(3):  # training batches move the running statistics
        model.forward(rng.standard_normal((8, 2, 4, 4)) + 2, training=True)
    assert not np.allclose(model.buffers["1.running_mean"], 0)
    check_onnx_export(model, (None, 2, 4, 4), [rng.standard_normal((3, 2, 4, 4)), rng.standard_normal((1, 2, 4, 4))])
    norm = nk.Sequential([L.LayerNorm((2, 3), bias=False), L.Flatten(), L.Dense(6, 4),
                          L.LayerNorm(4, elementwise_affine=False)], seed=1)
    randomize(norm[0], rng)
    for opset, op in [(13, "ReduceMean"), (17, "LayerNormalization")]:
        ops = {node.op_type for node in build_onnx(norm, (None, 2, 3), opset=opset).graph.node}
        assert op in ops
        check_onnx_export(norm, (None, 2, 3), rng.standard_normal((4, 2, 3)) * 3, opset=opset)
    ops = [node.op_type for node in build_onnx(model, (None, 2, 4, 4)).graph.node]
    assert ops.count("BatchNormalization") == 2
    assert onnx  # imported for the checks build_onnx runs


@pytest.mark.cuda
def test_the_gpu_keeps_the_same_running_statistics_and_evaluates_with_them():
    rng = np.random.default_rng(0)
    for make, shape in [(lambda: L.BatchNorm1D(3, momentum=None), (4, 3, 2)), (lambda: L.BatchNorm2D(2), (2, 2, 3, 2))]:
        layer = randomize(make(), rng)
        for _ in range(2):
            layer.forward(rng.standard_normal(shape) + 1, training=True)
        errors = check_cpu_cuda_agreement(layer, shape, dtype=np.float64)  # a training step: buffers compared
        assert "buffer.running_var" in errors and "buffer.num_batches_tracked" in errors
        check_cpu_cuda_agreement(layer, shape, dtype=np.float64, training=False)
        check_cpu_cuda_agreement(layer, shape, dtype=np.float32, training=True)


@pytest.mark.parametrize("compiled", [True, False])
def test_a_resumed_run_ends_with_the_straight_runs_running_statistics(tmp_path, compiled):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 6)).astype(np.float32) + 1, rng.integers(0, 3, 40)
    options = dict(batch_size=16, seed=2, compiled=compiled, validation_data=(X[:10], y[:10]))
    straight = bn_model()
    nk.train(straight, X, y, epochs=4, **options)
    nk.train(bn_model(), X, y, epochs=2, checkpoint_dir=tmp_path, **options)
    resumed = bn_model()  # a fresh process would build the model again
    nk.train(resumed, X, y, epochs=4, checkpoint_dir=tmp_path, resume=True, **options)
    assert resumed.buffers["1.num_batches_tracked"][0] == 12  # 3 batches (16, 16, 8) per epoch; validation adds none
    for key, value in straight.buffers.items():
        np.testing.assert_array_equal(resumed.buffers[key], value, err_msg=key)


@pytest.mark.cuda
def test_training_on_the_gpu_keeps_the_cpus_running_statistics():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((10, 4)) + 1, rng.integers(0, 2, 10)
    models = {}
    for device in ("cpu", "cuda"):
        model = nk.Sequential([L.Dense(4, 3), L.BatchNorm1D(3, momentum=None), L.Dense(3, 2)], seed=0,
                              dtype="float64")
        nk.train(model, X, y, epochs=1, batch_size=4, seed=0, device=device)  # batches of 4, 4 and 2
        models[device] = model.to("cpu")
    assert models["cuda"].buffers["1.num_batches_tracked"][0] == 3
    for key, value in models["cpu"].buffers.items():
        np.testing.assert_allclose(models["cuda"].buffers[key], value, rtol=1e-10, err_msg=key)
    for key, value in models["cpu"].params.items():
        np.testing.assert_allclose(models["cuda"].params[key], value, rtol=1e-9, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("scheme, options, refusal", [
    ("backprop", {}, None),
    ("greedy", {"mode": "supervised"}, None),
    ("greedy", {}, r"cannot train layer 1 \(BatchNorm1D\)"),
    ("dfa", {}, r"cannot train layer 1 \(BatchNorm1D\)"),
    ("fa", {}, r"cannot train layer 1 \(BatchNorm1D\)"),
    ("admm", {}, r"cannot train layer 1 \(BatchNorm1D\)"),
    ("es", {}, r"cannot train layer 1 \(BatchNorm1D\)"),
])
def test_every_scheme_trains_batchnorm_in_training_mode_or_refuses_it_by_name(scheme, options, refusal):
    """A scheme either trains a BatchNorm on batch statistics (its running statistics move, one count per
    training batch) or refuses the model before training, naming the layer: never a silent fixed affine map."""
    if scheme not in nk.registry.schemes:
        pytest.skip(f"the {scheme} scheme's plugin is not installed")
    L = nk.layers
    X, y, _, _ = nk.datasets.load("digits")
    model = nk.Sequential([L.Dense(64, 8), L.BatchNorm1D(8), L.ReLU(), L.Dense(8, 10)], seed=0)
    if refusal is not None:
        with pytest.raises(ValueError, match=refusal):
            nk.train(model, X[:64], y[:64], scheme=scheme, epochs=1, seed=0, **options)
        assert model.layers[1].buffers["num_batches_tracked"][0] == 0
        return
    nk.train(model, X[:64], y[:64], scheme=scheme, epochs=1, batch_size=16, seed=0, **options)
    assert model.layers[1].buffers["num_batches_tracked"][0] >= 4
    assert np.abs(model.layers[1].buffers["running_mean"]).max() > 0
