"""Dense, the activations, Flatten and the losses: float64 gradient checks and agreement with PyTorch."""
import numpy as np
import pytest

import nkernels as nk
from nkernels.testing import GradientMismatch, check_layer_gradients, check_loss_gradients

L = nk.layers
torch = pytest.importorskip("torch")


@pytest.mark.parametrize("layer, shape", [
    (L.Dense(5, 3), (4, 5)),
    (L.Dense(7, 1, bias=False), (1, 7)),
    (L.Dense(1, 9), (3, 1)),
    (L.ReLU(), (4, 6)),
    (L.Sigmoid(), (3, 2, 5)),
    (L.Tanh(), (1, 7)),
    (L.Flatten(), (2, 3, 4, 5)),
])
def test_layer_gradients_float64(layer, shape):
    x = None
    if isinstance(layer, L.ReLU):  # keep away from the kink at 0, where finite differences are wrong
        x = np.random.default_rng(0).choice([-1, 1], shape) * np.random.default_rng(1).uniform(0.1, 1, shape)
    report = check_layer_gradients(layer, shape, inputs=x)
    assert set(report) == {"input", *layer.params}


def test_gradient_check_catches_a_wrong_gradient():
    class WrongDense(L.Dense):
        def backward(self, dy):
            dx = super().backward(dy)
            self.grads["weight"] *= 1.01
            return dx

    with pytest.raises(GradientMismatch, match="parameter 'weight'"):
        check_layer_gradients(WrongDense(3, 2), (2, 3))


def test_gradient_check_leaves_the_layer_untouched():
    layer = L.Dense(3, 2)
    before = layer.params["weight"].copy()
    check_layer_gradients(layer, (2, 3))
    assert layer.dtype == np.float32
    np.testing.assert_array_equal(layer.params["weight"], before)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-5), (np.float32, 1e-4)])
def test_dense_matches_torch(dtype, rtol):
    rng = np.random.default_rng(0)
    layer = L.Dense(6, 4).astype(dtype)
    ref = torch.nn.Linear(6, 4).to(getattr(torch, np.dtype(dtype).name))
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(layer.params["weight"]))
        ref.bias.copy_(torch.from_numpy(layer.params["bias"]))
    x = rng.standard_normal((5, 6)).astype(dtype)
    dy = rng.standard_normal((5, 4)).astype(dtype)
    tx = torch.from_numpy(x).requires_grad_()
    ty = ref(tx)
    ty.backward(torch.from_numpy(dy))
    y = layer.forward(x, training=True)
    dx = layer.backward(dy)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(layer.grads["weight"], ref.weight.grad.numpy(), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(layer.grads["bias"], ref.bias.grad.numpy(), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("layer_cls, fn", [(L.ReLU, torch.relu), (L.Sigmoid, torch.sigmoid), (L.Tanh, torch.tanh)])
def test_activations_match_torch(layer_cls, fn):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 8)) * 5
    x[0, :3] = [40.0, -40.0, 0.5]  # large magnitudes must not overflow
    dy = rng.standard_normal((3, 8))
    tx = torch.from_numpy(x).requires_grad_()
    ty = fn(tx)
    ty.backward(torch.from_numpy(dy))
    layer = layer_cls()
    np.testing.assert_allclose(layer.forward(x, training=True), ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.backward(dy), tx.grad.numpy(), rtol=1e-9, atol=1e-15)


def test_softmax_cross_entropy_matches_torch_and_gradcheck():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((6, 4)) * 3
    labels = np.array([0, 3, 2, 1, 3, 0])
    loss = nk.losses.SoftmaxCrossEntropy()
    tl = torch.from_numpy(logits).requires_grad_()
    ref = torch.nn.functional.cross_entropy(tl, torch.from_numpy(labels))
    ref.backward()
    assert loss.forward(logits, labels) == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(loss.backward(), tl.grad.numpy(), rtol=1e-12, atol=1e-15)
    check_loss_gradients(loss, logits, labels)
    # large logits stay finite
    assert np.isfinite(loss.forward(np.array([[1000.0, -1000.0]]), np.array([1])))


def test_mse_matches_torch_and_gradcheck():
    rng = np.random.default_rng(3)
    pred, target = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    loss = nk.losses.MSE()
    tp = torch.from_numpy(pred).requires_grad_()
    ref = torch.nn.functional.mse_loss(tp, torch.from_numpy(target))
    ref.backward()
    assert loss.forward(pred, target) == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(loss.backward(), tp.grad.numpy(), rtol=1e-12)
    check_loss_gradients(loss, pred, target)


def test_bce_with_logits_matches_torch_and_gradcheck():
    rng = np.random.default_rng(4)
    logits, target = rng.standard_normal((6, 2)) * 3, rng.random((6, 2))
    loss = nk.losses.get_loss("bce_with_logits")
    tl = torch.from_numpy(logits).requires_grad_()
    ref = torch.nn.BCEWithLogitsLoss()(tl, torch.from_numpy(target))
    ref.backward()
    assert loss.forward(logits, target) == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(loss.backward(), tl.grad.numpy(), rtol=1e-12, atol=1e-16)
    check_loss_gradients(loss, logits, target)


def test_bce_with_logits_refuses_targets_outside_0_1():
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\].*from -1.0 to 2.0"):
        nk.losses.BCEWithLogits().forward(np.zeros((3, 1)), np.array([0.0, -1.0, 2.0]))


@pytest.mark.parametrize("compiled", [True, False])
def test_a_binary_classifier_trains_with_bce_with_logits(compiled):
    """A (N, 1) classifier with 0/1 labels: nk.train reports an accuracy, both paths agree, and it learns."""
    X, y, X_test, y_test = nk.datasets.load("digits")
    binary, binary_test = (y >= 5).astype(np.float32), (y_test >= 5).astype(np.float32)

    def fit(compiled):
        model = nk.Sequential([L.Dense(64, 32), L.ReLU(), L.Dense(32, 1)], seed=0)
        history = nk.train(model, X, binary, loss="bce_with_logits", epochs=8, seed=0, compiled=compiled,
                           validation_data=(X_test, binary_test))
        return model, history

    model, history = fit(compiled)
    assert history["val_accuracy"][-1] > 0.85
    other, other_history = fit(not compiled)
    np.testing.assert_allclose(history["loss"], other_history["loss"], rtol=1e-4)
    scores = nk.evaluate(model, X_test, binary_test, loss="bce_with_logits")
    expected = np.mean((model.predict(X_test)[:, 0] > 0) == (binary_test >= 0.5))
    assert scores["accuracy"] == pytest.approx(expected)


def test_dense_parameter_layout_and_init_follow_pytorch():
    layer = L.Dense(16, 3)
    assert layer.params["weight"].shape == (3, 16) and layer.params["bias"].shape == (3,)
    assert layer.params["weight"].dtype == np.float32
    assert np.abs(layer.params["weight"]).max() <= 1 / 4
    assert set(L.Dense(2, 2, bias=False).params) == {"weight"}


@pytest.mark.parametrize("make, message", [
    (lambda: L.Dense(0, 3), "in_features must be at least 1"),
    (lambda: L.Dense(2.5, 3), "in_features must be an integer"),
    (lambda: L.Dense(2, 3, bias="yes"), "bias must be True or False"),
])
def test_bad_layer_arguments(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_dense_rejects_bad_inputs_before_the_kernel_runs():
    layer = L.Dense(4, 2)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 4\), got \(3, 5\)"):
        layer.forward(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="expects input of shape"):
        layer.forward(np.zeros(4))
    with pytest.raises(TypeError, match="must hold numbers"):
        layer.forward(np.array([["a", "b", "c", "d"]]))
    with pytest.raises(ValueError, match="empty batch"):
        layer.forward(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="backward.*before forward"):
        L.Dense(4, 2).backward(np.zeros((1, 2)))
    layer.forward(np.zeros((3, 4)), training=True)
    with pytest.raises(ValueError, match=r"gradient of shape \(3, 2\)"):
        layer.backward(np.zeros((2, 2)))


def test_labels_out_of_range_are_rejected():
    loss = nk.losses.SoftmaxCrossEntropy()
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        loss.forward(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        loss.forward(np.zeros((2, 3)), np.array([-1, 0]))
    with pytest.raises(ValueError, match="2 outputs but 1 labels"):
        loss.forward(np.zeros((2, 3)), np.array([0]))


def test_noncontiguous_and_float64_inputs_simply_work():
    layer = L.Dense(4, 2)
    x = np.asfortranarray(np.random.default_rng(0).standard_normal((3, 8)))[:, ::2]
    np.testing.assert_allclose(layer(x), layer(np.ascontiguousarray(x, dtype=np.float32)), rtol=1e-6)
    assert layer(x).dtype == np.float32
