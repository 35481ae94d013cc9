"""Every built-in layer: the conformance kit, agreement with PyTorch, and shape checks."""

import numpy as np
import pytest

import nkernels as nk
from nkernels.testing import GradientMismatch, LayerConformance, check_layer_gradients

from layer_cases import CASES, kink_free_input, torch_counterpart

IDS = [case[0] for case in CASES]
L = nk.layers


def _conformance(name, make, shape):
    """The public conformance kit over one built-in case: gradients, dtypes, astype, config,
    error before forward, and the compiled path against the layer-by-layer one."""
    frozen = isinstance(make(), L.Frozen)

    class Conformance(LayerConformance):
        make_layer = staticmethod(make)
        input_shapes = [shape]
        gradient_checks = 60
        compiled_path = not frozen  # a Frozen extractor runs its own transform, layer by layer

        def inputs(self, shape, rng):
            return kink_free_input(self.make_layer(), shape, rng)

        if frozen:
            def test_gradients_float64(self):
                """A stop-gradient: zeros for the input, whatever the extractor's slope."""
                layer = self.make_layer()
                x = self.inputs(shape, np.random.default_rng(0))
                dx = layer.backward(np.ones(layer.forward(x, training=True).shape))
                assert not layer.params and dx.shape == shape and not np.any(dx)
                with pytest.raises(GradientMismatch, match="the input"):  # finite differences see the slope
                    check_layer_gradients(layer, shape, inputs=x, max_checks=60)

    Conformance.__name__ = Conformance.__qualname__ = "TestConformance_" + name.replace("-", "_")
    return Conformance


for _case in CASES:
    _cls = _conformance(*_case)
    globals()[_cls.__name__] = _cls


def test_every_builtin_layer_has_cases():
    """The table drives the every-layer tests (here, CUDA, ONNX): no built-in layer may be missing from it."""
    builtin = {cls for name, cls in nk.registry.layers.items()
               if nk.registry.layers.provider(name).distribution == "nkernels"}
    assert builtin == {type(make()) for _, make, _ in CASES}


def relative_error(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-5), (np.float32, 1e-4)])
@pytest.mark.parametrize("name, make, shape", [c for c in CASES if "dropout" not in c[0]],
                         ids=[i for i in IDS if "dropout" not in i])
def test_forward_and_backward_match_torch(name, make, shape, dtype, tolerance):
    torch = pytest.importorskip("torch")
    layer = make().astype(dtype)
    module, pick = torch_counterpart(layer)
    rng = np.random.default_rng(1)
    indices = layer.input_dtype is not None  # an Embedding's: integers, without a gradient
    x = kink_free_input(layer, shape, rng)
    x = x if indices else x.astype(dtype)
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dy)
    tx = torch.from_numpy(x.copy())
    tx = tx if indices else tx.requires_grad_()
    ty = pick(module(tx))
    if ty.requires_grad:  # a frozen counterpart (Frozen's) passes no gradient at all
        ty.backward(torch.from_numpy(dy))
    assert relative_error(y, ty.detach().numpy()) <= tolerance
    if not indices:
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


