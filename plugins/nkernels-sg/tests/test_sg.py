"""The sg scheme: its updates against a float64 reference, its runs, its checkpoints and its errors."""
import json

import numpy as np
import pytest

import nkernels as nk
from nkernels.cli import main as cli_main
from nkernels_sg import SyntheticGradients

L = nk.layers

# each activation: f(a), and f'(a) written through the output h = f(a)
ACTIVATIONS = {"relu": (lambda a: np.maximum(a, 0.0), lambda h: (h > 0).astype(float), L.ReLU),
               "sigmoid": (lambda a: 1.0 / (1.0 + np.exp(-a)), lambda h: h * (1.0 - h), L.Sigmoid),
               "tanh": (np.tanh, lambda h: 1.0 - h ** 2, L.Tanh),
               None: (lambda a: a, lambda h: np.ones_like(h), None)}


def sg_reference_step(weights, predictors, activations, X, y, conditioned, lr, predictor_lr):
    """One SGD step of synthetic-gradient training by hand, in float64: the new (weights, predictors).

    ``weights`` [(W, b)] per block; ``predictors`` per hidden block a list of layers [(P, c)], ReLU
    between them. The output block has no activation. Every gradient uses the weights of before the step.
    """
    n, classes = len(X), weights[-1][0].shape[0]
    onehot = np.eye(classes)[y]
    outputs = [X]
    for (W, b), act in zip(weights, activations):
        outputs.append(ACTIVATIONS[act][0](outputs[-1] @ W.T + b))
    logits = outputs[-1]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    top = len(weights) - 1
    deltas, new_predictors = [None] * len(weights), [None] * top
    deltas[top] = (p - onehot) / n                         # the loss's true gradient, for the output block
    arrived = deltas[top] @ weights[top][0]                 # ... sent down: the true gradient of h_top
    for l in reversed(range(top)):
        h = outputs[l + 1]
        layer_inputs = [np.hstack([h, onehot]) if conditioned else h]
        for P, c in predictors[l][:-1]:
            layer_inputs.append(np.maximum(layer_inputs[-1] @ P.T + c, 0.0))
        P, c = predictors[l][-1]
        synthetic = layer_inputs[-1] @ P.T + c              # one sample's gradient, predicted
        deltas[l] = synthetic / n * ACTIVATIONS[activations[l]][1](h)
        error = synthetic - n * arrived                     # regression onto what arrived from above
        d = 2 * error / error.size
        updated = []
        for k in reversed(range(len(predictors[l]))):
            P, c = predictors[l][k]
            updated.insert(0, (P - predictor_lr * d.T @ layer_inputs[k], c - predictor_lr * d.sum(axis=0)))
            d = (d @ P) * (layer_inputs[k] > 0)             # through the ReLU below (unused after the first layer)
        new_predictors[l] = updated
        arrived = deltas[l] @ weights[l][0]                 # the synthetic gradient, backpropagated one block
    new_weights = [(W - lr * d.T @ h, b - lr * d.sum(axis=0)) for (W, b), d, h in zip(weights, deltas, outputs)]
    return new_weights, new_predictors


def toy(seed, sizes, n=6):
    rng = np.random.default_rng(seed)
    weights = [(rng.normal(0, 0.7, (o, i)), rng.normal(0, 0.1, o)) for i, o in zip(sizes, sizes[1:])]
    return rng.uniform(-1, 1, (n, sizes[0])), rng.integers(0, sizes[-1], n), weights


def build(weights, activations):
    layers = []
    for (W, b), act in zip(weights, activations):
        dense = L.Dense(W.shape[1], W.shape[0]).astype("float64")
        dense.params["weight"][...], dense.params["bias"][...] = W, b
        layers.append(dense)
        if act is not None:
            layers.append(ACTIVATIONS[act][2]())
    return nk.Sequential(layers)


class KeepInitialPredictors(nk.callbacks.Callback):
    """Copies the scheme's predictors as the run starts (after its setup drew them)."""

    def __init__(self, scheme):
        self.scheme, self.initial = scheme, {}

    def on_train_begin(self, model, params):
        self.initial = {key: np.array(value) for key, value in self.scheme.predictors_.items()}


@pytest.mark.parametrize("conditioned", [True, False])
@pytest.mark.parametrize("stepped", [False, True])
@pytest.mark.parametrize("activations, hidden", [(("tanh", "relu", None), 0), (("sigmoid", None, None), 0),
                                                 (("relu", "tanh", None), 6)])
def test_three_steps_match_a_float64_reference(conditioned, stepped, activations, hidden):
    """Full-batch steps from predictors whose output layers start at zero: the first moves only the
    output block and the predictors, the next ones the hidden blocks too (through predictions
    bootstrapped from above)."""
    X, y, weights = toy(0, (3, 5, 4, 3))
    model = build(weights, activations)
    options = {"clip_norm": 1e12} if stepped else {}  # a clip that never clips: no fused form, same numbers
    scheme = SyntheticGradients(conditioned=conditioned, optimizer="sgd", lr=0.5, predictor_lr=0.2,
                                predictor_hidden=hidden, **options)
    keep = KeepInitialPredictors(scheme)
    nk.train(model, X, y, scheme=scheme, epochs=3, batch_size=len(X), seed=0, callbacks=[keep])
    dense = [i for i, layer in enumerate(model.layers) if layer.params]
    layers = (".hidden.", ".") if hidden else (".",)
    predictors = [[(keep.initial[f"{i}{k}weight"], keep.initial[f"{i}{k}bias"]) for k in layers] for i in dense[:-1]]
    inputs = hidden or None
    for i, width in zip(dense, (5, 4)):
        assert keep.initial[f"{i}.weight"].shape == (width, inputs or width + (3 if conditioned else 0))
        assert not keep.initial[f"{i}.weight"].any() and not keep.initial[f"{i}.bias"].any()
    for _ in range(3):
        weights, predictors = sg_reference_step(weights, predictors, activations, X, y, conditioned, 0.5, 0.2)
    for i, (W, b) in zip(dense, weights):
        np.testing.assert_allclose(model.params[f"{i}.weight"], W, rtol=1e-10, atol=1e-13, err_msg=f"block {i}")
        np.testing.assert_allclose(model.params[f"{i}.bias"], b, rtol=1e-10, atol=1e-13, err_msg=f"block {i}")
    assert sorted(scheme.predictors_) == sorted(f"{i}{k}{p}" for i in dense[:-1] for k in layers
                                                for p in ("weight", "bias"))
    for i, layer_list in zip(dense, predictors):
        for k, (P, c) in zip(layers, layer_list):
            np.testing.assert_allclose(scheme.predictors_[f"{i}{k}weight"], P, rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(scheme.predictors_[f"{i}{k}bias"], c, rtol=1e-10, atol=1e-13)
    assert np.abs(predictors[0][-1][0]).max() > 1e-3  # the reference did move the first predictor


def small_model():
    return nk.Sequential([L.Dense(64, 16), L.ReLU(), L.Dense(16, 12), L.ReLU(), L.Dense(12, 10)], seed=0)


@pytest.mark.parametrize("conditioned", [True, False])
def test_fused_runs_give_the_numbers_of_stepped_runs(digits, conditioned):
    X, y, _, _ = digits
    models = []
    for options in ({}, {"clip_norm": 1e12}):
        model = small_model()
        nk.train(model, X[:200], y[:200], scheme=SyntheticGradients(conditioned=conditioned, lr=3e-3, **options),
                 epochs=2, batch_size=48, seed=1)
        models.append(model)
    for key, value in models[0].params.items():
        np.testing.assert_array_equal(value, models[1].params[key], err_msg=key)


def test_the_predictors_learn_the_gradient_and_the_blocks_follow_them(digits):
    """After 3 epochs the last hidden block's synthetic gradient points along its true gradient on
    held-out digits, the predictors' loss has fallen and the first block has moved."""
    X, y, X_test, y_test = digits
    model, scheme = small_model(), SyntheticGradients(lr=3e-3)
    first = model.params["0.weight"].copy()
    history = nk.train(model, X[:400], y[:400], scheme=scheme, epochs=3, seed=0)
    assert history["predictor_loss"][-1] < 0.7 * history["predictor_loss"][0]
    assert np.abs(model.params["0.weight"] - first).max() > 0.01
    x, onehot = X_test[:200].astype(np.float64), np.eye(10)[y_test[:200]]
    (W0, b0), (W1, b1), (W2, b2) = [(model.params[f"{i}.weight"].astype(np.float64), model.params[f"{i}.bias"])
                                    for i in (0, 2, 4)]
    h = np.maximum(np.maximum(x @ W0.T + b0, 0) @ W1.T + b1, 0)
    logits = h @ W2.T + b2
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    true = (p / p.sum(axis=1, keepdims=True) - onehot) @ W2  # one sample's gradient for h
    synthetic = np.hstack([h, onehot]) @ scheme.predictors_["2.weight"].T + scheme.predictors_["2.bias"]
    assert scheme.predictors_["0.weight"].shape == (16, 16 + 10) and scheme.predictors_["2.weight"].shape == (12, 22)
    cosine = (synthetic * true).sum() / np.linalg.norm(synthetic) / np.linalg.norm(true)
    assert cosine > 0.8
    unconditioned = SyntheticGradients(conditioned=False)
    nk.train(small_model(), X[:64], y[:64], scheme=unconditioned, epochs=1, seed=0)
    assert unconditioned.predictors_["0.weight"].shape == (16, 16)


def test_the_predictors_are_in_the_checkpoint(digits, tmp_path):
    X, y, _, _ = digits
    scheme = SyntheticGradients(checkpoint_dir=tmp_path / "run")
    nk.train(small_model(), X[:128], y[:128], scheme=scheme, epochs=2, seed=0)
    state, arrays = scheme.checkpoint_state(None)  # the scheme keeps its run's predictors after fit
    assert state == {"predictor_steps": 8}
    assert sorted(arrays) == sorted([f"predictor.{i}.{k}" for i in (0, 2) for k in ("weight", "bias")] +
                                    [f"predictor_state.{i}.{k}.{m}" for i in (0, 2) for k in ("weight", "bias")
                                     for m in ("m", "v")])
    for key, value in scheme.predictors_.items():
        np.testing.assert_array_equal(arrays["predictor." + key], value)


def predictor_state(scheme):
    """The scheme's predictors and their optimizer's steps and moments, as plain arrays."""
    optimizer = scheme.predictor_optimizer_
    arrays = {key: np.array(value) for key, value in scheme.predictors_.items()}
    arrays.update({f"{key}.{name}": np.array(a) for key, named in optimizer.state.items() for name, a in named.items()})
    return optimizer.steps, arrays


@pytest.mark.parametrize("conditioned", [True, False])
def test_a_resumed_run_ends_with_the_predictors_of_an_uninterrupted_one(digits, tmp_path, conditioned):
    X, y, _, _ = digits
    whole = SyntheticGradients(conditioned=conditioned, checkpoint_dir=tmp_path / "whole")
    nk.train(small_model(), X[:96], y[:96], scheme=whole, epochs=3, seed=0)
    first = SyntheticGradients(conditioned=conditioned, checkpoint_dir=tmp_path / "parts")
    nk.train(small_model(), X[:96], y[:96], scheme=first, epochs=2, seed=0)
    resumed = SyntheticGradients(conditioned=conditioned, checkpoint_dir=tmp_path / "parts", resume=True)
    nk.train(small_model(), X[:96], y[:96], scheme=resumed, epochs=3, seed=0)
    (steps, expected), (resumed_steps, got) = predictor_state(whole), predictor_state(resumed)
    assert steps == resumed_steps == 9 and expected.keys() == got.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_divergence_restores_the_predictors_of_the_epoch_start(digits):
    X, y, _, _ = digits
    kept = {}

    class Poison(nk.callbacks.Callback):
        def on_epoch_begin(self, epoch):
            if epoch == 1:
                kept.update(predictor_state(scheme)[1])
                self.context.model.params["0.weight"][0, 0] = np.nan

    scheme = SyntheticGradients()
    with pytest.raises(nk.TrainingDivergedError, match="epoch 2"):
        nk.train(small_model(), X[:96], y[:96], scheme=scheme, epochs=3, seed=0, callbacks=[Poison()])
    steps, after = predictor_state(scheme)
    assert steps == 3 and np.abs(kept["2.weight"]).max() > 0
    for key, value in kept.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


def test_a_schedule_moves_the_blocks_learning_rate_only(digits):
    X, y, _, _ = digits
    scheme = SyntheticGradients(lr=2e-3, predictor_lr=5e-3, schedule="cosine")
    history = nk.train(small_model(), X[:64], y[:64], scheme=scheme, epochs=3, seed=0)
    assert history["lr"][0] > history["lr"][-1] and scheme.predictor_optimizer_.lr == 5e-3


def test_a_checkpoint_of_the_other_variant_is_refused(digits, tmp_path):
    X, y, _, _ = digits
    run = tmp_path / "run"
    nk.train(small_model(), X[:64], y[:64], scheme=SyntheticGradients(checkpoint_dir=run), epochs=1, seed=0)
    with pytest.raises(ValueError, match=r"predictor.0.weight: \(16, 26\) there, \(16, 16\) here.*conditioned"):
        nk.train(small_model(), X[:64], y[:64], epochs=2, seed=0,
                 scheme=SyntheticGradients(conditioned=False, checkpoint_dir=run, resume=True))


@pytest.mark.parametrize("layers, message", [
    ([L.Dense(64, 10)], "at least two Dense layers"),
    ([L.Dense(64, 8), L.ReLU(), L.Dropout(0.1), L.Dense(8, 10)], r"layer 2 \(Dropout\)"),
    ([L.Dense(64, 8), L.BatchNorm1D(8), L.ReLU(), L.Dense(8, 10)], r"layer 1 \(BatchNorm1D\)"),
    ([L.ReLU(), L.Dense(64, 10), L.Dense(10, 10)], "comes before the first Dense"),
    ([L.Dense(64, 8), L.ReLU(), L.Tanh(), L.Dense(8, 10)], "follows another activation"),
])
def test_unsupported_models_are_named(digits, layers, message):
    X, y, _, _ = digits
    with pytest.raises(ValueError, match=message):
        nk.train(nk.Sequential(layers, seed=0), X[:8], y[:8], scheme="sg", epochs=1)


def test_bad_options_and_data(digits):
    X, y, _, _ = digits
    with pytest.raises(TypeError, match="conditioned"):
        SyntheticGradients(conditioned="yes")
    with pytest.raises(ValueError, match="predictor_lr"):
        SyntheticGradients(predictor_lr=-1.0)
    with pytest.raises(ValueError, match="unknown optimizer"):
        SyntheticGradients(predictor_optimizer="rmsprop")
    with pytest.raises(ValueError, match="predictor_hidden"):
        SyntheticGradients(predictor_hidden=-1)
    with pytest.raises(TypeError, match="predictor_hidden"):
        SyntheticGradients(predictor_hidden=2.5)
    with pytest.raises(ValueError, match="sg does not apply random translations"):
        SyntheticGradients(augment_shift=1)
    with pytest.raises(ValueError, match="softmax cross-entropy on integer labels"):
        nk.train(small_model(), X[:8], np.eye(10)[y[:8]], scheme="sg", epochs=1)
    with pytest.raises(ValueError, match="pass y"):
        nk.train(small_model(), X[:8], scheme="sg", epochs=1)


def test_registered_through_the_entry_point(capsys):
    assert nk.registry.schemes["sg"] is SyntheticGradients
    entry = nk.registry.schemes.provider("sg")
    assert (entry.plugin, entry.distribution) == ("sg", "nkernels-sg")
    assert cli_main(["plugins", "--json"]) == 0
    listed = {info["name"]: info for info in json.loads(capsys.readouterr().out)}
    assert listed["sg"]["registered"]["schemes"] == ["sg"]


def test_command_line(capsys):
    assert cli_main(["train", "--scheme", "sg", "--epochs", "1", "--quiet"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert cli_main(["train", "--scheme", "sg", "--model", "cnn", "--epochs", "1", "--quiet"]) == 2
    assert "sg cannot train layer 0 (Conv2D)" in capsys.readouterr().err
