"""Forward-forward: the kernels against a NumPy reference, prediction, the model it trains, and what it refuses."""
import numpy as np
import pytest

import nkernels as nk
from nkernels.optimizers import SGD
from nkernels_ff import ForwardForward, LabelInput, ff_model, goodness, predict, predict_proba, read_chain

L = nk.layers


# -- a NumPy reference of the objective -----------------------------------------------------------
def joined(X, labels, n_classes):
    return np.concatenate([X, np.eye(n_classes)[labels]], axis=1)


def layer_inputs_and_goodness(weights, biases, x):
    """Each layer's normalised input and its goodness, in float64."""
    inputs, goods = [], []
    h = x.astype(np.float64)
    for W, b in zip(weights, biases):
        xn = h / (np.sqrt((h * h).sum(axis=1, keepdims=True)) + 1e-4)
        h = np.maximum(xn @ W.T + b, 0)
        inputs.append(xn)
        goods.append((h * h).sum(axis=1))
    return inputs, goods


def local_loss(W, b, xn, n_positive, theta):
    """One layer's loss on its (fixed) normalised input: positive rows first."""
    g = (np.maximum(xn @ W.T + b, 0) ** 2).sum(axis=1)
    margin = g - theta
    return np.mean(np.concatenate([np.logaddexp(0, -margin[:n_positive]), np.logaddexp(0, margin[n_positive:])]))


class GradientsOnly(SGD):
    """An optimizer that leaves the weights alone (so the model's grads can be read after a run)."""

    def fused_form(self):
        return None

    def step(self, params, grads):
        self.steps += 1


def test_each_layer_gets_the_gradient_of_its_own_goodness_loss(digits):
    X, y = digits[0][:24].astype(np.float64), digits[1][:24]
    model = ff_model(64, 10, (7, 5), seed=3, dtype=np.float64)
    from nkernels_ff.runs import FFRun

    chain = read_chain(model)
    runner = FFRun(model, chain, GradientsOnly(lr=1.0), lambda: np.random.default_rng(0), hardest=False,
                   skip_first=False, theta=2.0)
    losses, _, done = runner.run(X, y, np.arange(24), 0, 1, 24)
    assert done == 1
    negatives = (y + np.random.default_rng(0).integers(1, 10, 24)) % 10
    weights = [d.params["weight"] for d in chain.denses]
    biases = [d.params["bias"] for d in chain.denses]
    x = np.concatenate([joined(X, y, 10), joined(X, negatives, 10)])
    inputs, _ = layer_inputs_and_goodness(weights, biases, x)
    expected_loss = sum(local_loss(W, b, xn, 24, 2.0) for W, b, xn in zip(weights, biases, inputs))
    np.testing.assert_allclose(losses[0], expected_loss, rtol=1e-10)
    for l, dense in enumerate(chain.denses):
        W, b, xn = weights[l].copy(), biases[l].copy(), inputs[l]
        numeric = np.zeros_like(W)
        for i in range(W.shape[0]):
            for j in range(W.shape[1]):
                step = np.zeros_like(W)
                step[i, j] = 1e-6
                numeric[i, j] = (local_loss(W + step, b, xn, 24, 2.0) - local_loss(W - step, b, xn, 24, 2.0)) / 2e-6
        np.testing.assert_allclose(dense.grads["weight"], numeric, atol=1e-7, err_msg=f"layer {l}")
        numeric_b = np.array([(local_loss(W, b + e, xn, 24, 2.0) - local_loss(W, b - e, xn, 24, 2.0)) / 2e-6
                              for e in np.eye(len(b)) * 1e-6])
        np.testing.assert_allclose(dense.grads["bias"], numeric_b, atol=1e-7, err_msg=f"layer {l} bias")


def test_goodness_sums_every_layer_for_every_label(digits):
    X = digits[2][:30]
    model = ff_model(64, 10, (20, 15, 10), seed=1, dtype=np.float64)
    chain = read_chain(model)
    weights = [d.params["weight"] for d in chain.denses]
    biases = [d.params["bias"] for d in chain.denses]
    for skip_first, first in ((False, 0), (True, 1)):
        expected = np.stack([sum(layer_inputs_and_goodness(weights, biases, joined(X, np.full(30, c), 10))[1][first:])
                             for c in range(10)], axis=1)
        np.testing.assert_allclose(goodness(model, X, skip_first, batch_size=7), expected, rtol=1e-10)


def test_predict_and_predict_proba_follow_the_goodness(digits):
    X = digits[2][:50]
    model = ff_model(64, 10, (16,), seed=0)
    scores = goodness(model, X)
    proba = predict_proba(model, X)
    np.testing.assert_array_equal(predict(model, X), scores.argmax(axis=1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(proba.argmax(axis=1), scores.argmax(axis=1))


def test_hardest_negatives_are_the_best_scored_wrong_labels():
    from nkernels_ff.kernels import pick_negatives

    scores = np.array([[0.1, 0.9, 0.5], [0.8, 0.1, 0.7], [0.2, 0.3, 0.1]])
    negatives = np.empty(3, np.int64)
    correct = pick_negatives(scores, np.array([1, 0, 0]), negatives)
    np.testing.assert_array_equal(negatives, [2, 2, 1])
    assert correct == 2


# -- training ---------------------------------------------------------------------------------------
def test_val_accuracy_is_the_goodness_classifier_accuracy(digits):
    X, y, X_test, y_test = digits
    model = ff_model(64, 10, (32, 32), seed=0)
    history = nk.train(model, X[:300], y[:300], scheme="ff", epochs=3, seed=0,
                       validation_data=(X_test[:100], y_test[:100]))
    assert history["val_accuracy"][-1] == np.mean(predict(model, X_test[:100]) == y_test[:100])
    assert 0 <= history["accuracy"][-1] <= 1 and history["val_loss"][-1] > 0


def test_the_fused_and_the_stepwise_updates_give_the_same_weights(digits):
    """SGD runs inside the compiled epoch; the same SGD without a fused form steps from Python after each batch."""
    X, y = digits[0][:200], digits[1][:200]

    class Stepwise(SGD):
        def fused_form(self):
            return None

    models = []
    for optimizer in (SGD(lr=0.05, momentum=0.9), Stepwise(lr=0.05, momentum=0.9)):
        model = ff_model(64, 10, (16, 16), seed=0, dtype=np.float64)
        nk.train(model, X, y, scheme=ForwardForward(optimizer=optimizer, lr=None), epochs=2, seed=0, batch_size=32)
        models.append(model)
    for key, value in models[0].params.items():
        np.testing.assert_allclose(models[1].params[key], value, rtol=1e-12, err_msg=key)


def test_a_trained_model_saves_and_loads(digits, tmp_path):
    X, y, X_test, _ = digits
    model = ff_model(64, 10, (16,), seed=0)
    nk.train(model, X[:100], y[:100], scheme="ff", epochs=1, seed=0)
    nk.save(model, tmp_path / "ff")
    loaded = nk.load(tmp_path / "ff")
    np.testing.assert_array_equal(goodness(loaded, X_test[:20]), goodness(model, X_test[:20]))


def test_label_input_joins_the_neutral_label():
    layer = LabelInput(4)
    out = layer.forward(np.ones((2, 3), np.float32), training=True)
    np.testing.assert_array_equal(out, [[1, 1, 1, 0.25, 0.25, 0.25, 0.25]] * 2)
    np.testing.assert_array_equal(layer.backward(np.arange(14, dtype=np.float32).reshape(2, 7)),
                                  [[0, 1, 2], [7, 8, 9]])


# -- the model ---------------------------------------------------------------------------------------
def test_adapt_model_keeps_the_hidden_widths():
    classifier = nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64), L.ReLU(), L.Dense(64, 10)], seed=0)
    scheme = ForwardForward()
    model = scheme.adapt_model(classifier, 64, 10)
    assert [type(layer).__name__ for layer in model.layers] == ["LabelInput", "Dense", "ReLU", "Dense", "ReLU"]
    chain = read_chain(model)
    assert (chain.n_features, chain.n_classes, chain.widths) == (64, 10, (128, 64))
    assert chain.denses[0].in_features == 74
    again = scheme.adapt_model(classifier, 64, 10)
    for key, value in model.params.items():
        np.testing.assert_array_equal(again.params[key], value)


@pytest.mark.parametrize("model, message", [
    (nk.Sequential([L.Conv2D(1, 4, 3), L.ReLU(), L.Flatten(), L.Dense(144, 10)]), "layer 0 is Conv2D"),
    (nk.Sequential([L.Dense(64, 10)]), "at least one hidden Dense layer"),
])
def test_adapt_model_refuses_what_is_not_a_dense_chain(model, message):
    with pytest.raises(ValueError, match=message):
        ForwardForward().adapt_model(model, 64, 10)


@pytest.mark.parametrize("layers, message", [
    ([L.Dense(74, 16), L.ReLU()], "starts with Dense, not LabelInput"),
    ([LabelInput(10), L.Dense(74, 16), L.Tanh()], "layer 2 is Tanh where the ReLU"),
    ([LabelInput(10), L.Dense(74, 16), L.ReLU(), L.Dense(16, 10)], "layer 4 is the end of the model"),
    ([LabelInput(10)], "no Dense layer"),
])
def test_models_of_another_shape_are_refused_saying_what_fits(layers, message, digits):
    X, y = digits[0][:40], digits[1][:40]
    X = X if isinstance(layers[0], LabelInput) else np.concatenate([X, np.zeros((40, 10), np.float32)], axis=1)
    with pytest.raises(ValueError, match=message) as info:
        nk.train(nk.Sequential(layers, seed=0), X, y, scheme="ff", epochs=1)
    assert "LabelInput(n_classes) followed by Dense + ReLU pairs" in str(info.value)


# -- what it refuses ----------------------------------------------------------------------------------
@pytest.mark.parametrize("options, error, message", [
    ({"loss": "mse"}, ValueError, "loss has no effect"),
    ({"augment_shift": 1}, ValueError, "augment_shift"),
    ({"negatives": "easiest"}, ValueError, "negatives must be one of 'hardest', 'random'"),
    ({"threshold": 0}, ValueError, "threshold"),
    ({"skip_first": "yes"}, TypeError, "skip_first"),
])
def test_options_are_checked(options, error, message):
    with pytest.raises(error, match=message):
        ForwardForward(**options)


@pytest.mark.parametrize("labels, validation_labels, message", [
    (np.full(40, 12), None, "y holds label 12 but the model's LabelInput has 10 classes"),
    (None, np.full(20, 10), "y_val holds label 10"),
    (np.full(40, 1.5), None, "whole numbers"),
    (np.zeros((40, 10)), None, "1-D array of class indices"),
])
def test_labels_that_do_not_fit_the_model_are_refused_before_training(labels, validation_labels, message, digits):
    X, y, X_test, y_test = digits
    model = ff_model(64, 10, (8,), seed=0)
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match=message):
        nk.train(model, X[:40], y[:40] if labels is None else labels, scheme="ff", epochs=1,
                 validation_data=(X_test[:20], y_test[:20] if validation_labels is None else validation_labels))
    for key, value in before.items():
        np.testing.assert_array_equal(model.params[key], value)


def test_prediction_checks_the_features(digits):
    model = ff_model(64, 10, (8,), seed=0)
    with pytest.raises(ValueError, match="does not fit the model|shape"):
        goodness(model, digits[2][:, :60])
