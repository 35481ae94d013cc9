"""Every built-in layer: float64 gradient checks, agreement with PyTorch, configs, and shape checks."""
import json

import numpy as np
import pytest

import nkernels as nk
from nkernels.testing import GradientMismatch, check_layer_gradients

from layer_cases import CASES, kink_free_input, torch_counterpart

IDS = [case[0] for case in CASES]
L = nk.layers


@pytest.mark.parametrize("name, make, shape", CASES, ids=IDS)
def test_gradients_float64(name, make, shape):
    layer = make()
    x = kink_free_input(layer, shape, np.random.default_rng(0))
    if isinstance(layer, L.Frozen):  # a stop-gradient: zeros for the input, whatever the extractor's slope
        dx = layer.backward(np.ones(layer.forward(x, training=True).shape))
        assert not layer.params and dx.shape == shape and not np.any(dx)
        with pytest.raises(GradientMismatch, match="the input"):  # finite differences see the slope it drops
            check_layer_gradients(layer, shape, inputs=x, max_checks=60)
        return
    report = check_layer_gradients(layer, shape, inputs=x, max_checks=60)
    assert set(report) == {"input", *layer.params}


def test_every_builtin_layer_has_cases():
    """The table drives the every-layer tests (here, CUDA, ONNX): no built-in layer may be missing from it."""
    builtin = {cls for name, cls in nk.registry.layers.items()
               if nk.registry.layers.provider(name).distribution == "nkernels"}
    assert builtin == {type(make()) for _, make, _ in CASES}


def relative_error(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-5), (np.float32, 1e-4)])
@pytest.mark.parametrize("name, make, shape", [c for c in CASES if c[0] != "dropout"],
                         ids=[i for i in IDS if i != "dropout"])
def test_forward_and_backward_match_torch(name, make, shape, dtype, tolerance):
    torch = pytest.importorskip("torch")
    layer = make().astype(dtype)
    module, pick = torch_counterpart(layer)
    rng = np.random.default_rng(1)
    x = kink_free_input(layer, shape, rng).astype(dtype)
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dy)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = pick(module(tx))
    if ty.requires_grad:  # a frozen counterpart (Frozen's) passes no gradient at all
        ty.backward(torch.from_numpy(dy))
    assert relative_error(y, ty.detach().numpy()) <= tolerance
    assert relative_error(dx, (torch.zeros_like(tx) if tx.grad is None else tx.grad).numpy()) <= tolerance
    trainable = {(name[:-3] if name.endswith("_l0") else name): value
                 for name, value in module.named_parameters() if value.requires_grad}
    assert set(trainable) == set(layer.grads)
    for key, value in trainable.items():
        assert relative_error(layer.grads[key], value.grad.numpy()) <= tolerance, key


def test_dropout_training_and_evaluation():
    layer = L.Dropout(0.4, seed=3)
    x = np.random.default_rng(0).standard_normal((50, 40)).astype(np.float32)
    np.testing.assert_array_equal(layer(x), x)  # evaluation mode is the identity
    y1 = layer.forward(x, training=True)
    kept = y1 != 0
    np.testing.assert_allclose(y1[kept], x[kept] / 0.6, rtol=1e-6)
    assert 0.5 < kept.mean() < 0.7
    dx = layer.backward(np.ones_like(x))
    np.testing.assert_allclose(dx, kept / 0.6, rtol=1e-6)
    y2 = layer.forward(x, training=True)
    assert not np.array_equal(y1 != 0, y2 != 0)  # a new mask each call
    a = nk.Sequential([L.Dropout(0.5)], seed=4)
    b = nk.Sequential([L.Dropout(0.5)], seed=4)
    np.testing.assert_array_equal(a.forward(x, training=True), b.forward(x, training=True))


@pytest.mark.parametrize("name, make, shape", CASES, ids=IDS)
def test_config_round_trip(name, make, shape):
    model = nk.Sequential([make()], seed=0)
    config = json.loads(json.dumps(model.get_config()))
    rebuilt = nk.Sequential.from_config(config)
    assert rebuilt.get_config() == config
    assert {k: v.shape for k, v in rebuilt.params.items()} == {k: v.shape for k, v in model.params.items()}
    assert rebuilt.output_shape(shape) == model.output_shape(shape) == model(np.zeros(shape)).shape


def test_float32_float64_dtypes_are_kept():
    for name, make, shape in CASES:
        for dtype in (np.float32, np.float64):
            layer = make().astype(dtype)
            assert layer.forward(np.ones(shape, dtype), training=True).dtype == dtype, name
