"""The dfa and fa schemes: one update against float64 references, figures, errors, discovery."""
import json

import numpy as np
import pytest

import nkernels as nk
from nkernels.cli import main as cli_main
from nkernels_feedback import DFA, FA

L = nk.layers


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# each activation: (f(a), f'(a) written through the output h = f(a)), and its layer
ACTIVATIONS = {"relu": (lambda a: np.maximum(a, 0.0), lambda h: (h > 0).astype(float), L.ReLU),
               "sigmoid": (sigmoid, lambda h: h * (1.0 - h), L.Sigmoid),
               "tanh": (np.tanh, lambda h: 1.0 - h ** 2, L.Tanh),
               None: (lambda a: a, lambda h: np.ones_like(h), None)}


def feedback_step(weights, activations, x, output_error, feedback, mode, lr):
    """One SGD step of (direct) feedback alignment through Dense layers [(W, b), ...], by hand.

    ``output_error(y)`` is the gradient of the loss w.r.t. the output layer's pre-activation;
    ``feedback[l]`` is the fixed matrix of layer l (dfa: outputs x width of layer l; fa: the
    stand-in for W_l).
    """
    outputs = [x]
    for (W, b), act in zip(weights, activations):
        outputs.append(ACTIVATIONS[act][0](outputs[-1] @ W.T + b))
    deltas = [None] * len(weights)
    deltas[-1] = e = output_error(outputs[-1])
    for l in reversed(range(len(weights) - 1)):
        if mode == "dfa":
            projected = e @ feedback[l]                  # the output error, straight down
        else:
            projected = deltas[l + 1] @ feedback[l + 1]  # random weights in place of W_{l+1}
        deltas[l] = projected * ACTIVATIONS[activations[l]][1](outputs[l + 1])
    return [(W - lr * d.T @ h, b - lr * d.sum(axis=0)) for (W, b), d, h in zip(weights, deltas, outputs)]


def cross_entropy_error(labels):
    def error(logits):
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return (p - np.eye(p.shape[1])[labels]) / len(labels)
    return error


def toy(seed, sizes, n=5):
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


def check_params(model, weights):
    expected = {}
    dense = [i for i, layer in enumerate(model.layers) if layer.params]
    for i, (W, b) in zip(dense, weights):
        expected[f"{i}.weight"], expected[f"{i}.bias"] = W, b
    for key, value in expected.items():
        np.testing.assert_allclose(model.params[key], value, rtol=1e-10, atol=1e-14, err_msg=key)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("scheme", [DFA, FA])
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", None])
def test_two_layer_update_matches_a_float64_reference(scheme, activation, compiled):
    X, y, weights = toy(0, (3, 4, 2))
    activations = [activation, None]
    model = build(weights, activations)
    trainer = scheme(optimizer="sgd", lr=0.5, compiled=compiled)
    nk.train(model, X, y, scheme=trainer, epochs=1, batch_size=len(X), seed=0)
    first, second = [i for i, layer in enumerate(model.layers) if layer.params]
    # dfa: B (outputs, hidden width) for the hidden layer; fa: B standing in for the second weight
    feedback = {0: trainer.feedback_[first]} if scheme is DFA else {1: trainer.feedback_[second]}
    assert sorted(trainer.feedback_) == [first if scheme is DFA else second]
    assert next(iter(feedback.values())).shape == (2, 4)
    expected = feedback_step(weights, activations, X, cross_entropy_error(y), feedback, scheme.name, lr=0.5)
    check_params(model, expected)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("scheme", [DFA, FA])
def test_three_layer_update_matches_a_float64_reference(scheme, compiled):
    X, y, weights = toy(1, (3, 5, 4, 3))
    activations = ["tanh", "relu", None]
    model = build(weights, activations)
    trainer = scheme(optimizer="sgd", lr=0.5, compiled=compiled)
    nk.train(model, X, y, scheme=trainer, epochs=1, batch_size=len(X), seed=0)
    # keys: dfa, the hidden Dense layers (0, 2); fa, the Dense layers whose weight is replaced (2, 4)
    by_layer = {0: 0, 2: 1, 4: 2}
    feedback = {by_layer[i]: B for i, B in trainer.feedback_.items()}
    if scheme is DFA:
        assert sorted(trainer.feedback_) == [0, 2] and feedback[0].shape == (3, 5) and feedback[1].shape == (3, 4)
    else:
        assert sorted(trainer.feedback_) == [2, 4] and feedback[1].shape == (4, 5) and feedback[2].shape == (3, 4)
    expected = feedback_step(weights, activations, X, cross_entropy_error(y), feedback, scheme.name, lr=0.5)
    check_params(model, expected)


@pytest.mark.parametrize("compiled", [True, False])
def test_mse_through_an_output_activation(compiled):
    X, _, weights = toy(2, (3, 4, 2))
    targets = np.random.default_rng(3).uniform(0, 1, (len(X), 2))
    model = build(weights, ["tanh", "sigmoid"])
    trainer = DFA(optimizer="sgd", lr=0.5, compiled=compiled)
    nk.train(model, X, targets, scheme=trainer, epochs=1, batch_size=len(X), seed=0)

    def mse_error(out):  # through the output sigmoid
        return 2.0 * (out - targets) / targets.size * out * (1.0 - out)

    expected = feedback_step(weights, ["tanh", "sigmoid"], X, mse_error, {0: trainer.feedback_[0]}, "dfa", lr=0.5)
    check_params(model, expected)


@pytest.mark.parametrize("scheme", ["dfa", "fa"])
@pytest.mark.parametrize("options", [{"optimizer": "adam"}, {"optimizer": "adamw", "weight_decay": 0.1},
                                     {"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}])
def test_compiled_runs_give_the_same_numbers_as_kernel_by_kernel(scheme, options):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((50, 6)).astype(np.float32)
    y = rng.integers(0, 3, 50)

    def model():
        return nk.Sequential([L.Dense(6, 8), L.Sigmoid(), L.Dense(8, 5, bias=False), L.Dense(5, 3)], seed=1)

    runs = []
    for compiled in (True, False):
        m = model()
        history = nk.train(m, X, y, scheme=scheme, epochs=2, batch_size=16, seed=0, lr=0.01, compiled=compiled,
                           **options)
        runs.append((m, history))
    (m1, h1), (m2, h2) = runs
    assert h1["loss"] == h2["loss"] and h1["accuracy"] == h2["accuracy"]
    for key in m1.params:
        np.testing.assert_array_equal(m1.params[key], m2.params[key], err_msg=key)


def test_clipping_falls_back_to_kernel_by_kernel_runs():
    class Compiled(nk.callbacks.Callback):
        def on_train_begin(self, model, params):
            self.compiled = params["compiled"]

    seen = Compiled()
    nk.train(mlp(), np.zeros((8, 64)), np.zeros(8, np.int64), scheme="dfa", clip_norm=1.0, epochs=1, callbacks=[seen])
    assert seen.compiled is False


def mlp(seed=0):
    return nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64), L.ReLU(), L.Dense(64, 10)], seed=seed)


def test_same_seed_same_run_and_fixed_feedback(digits):
    X, y = digits[0][:256], digits[1][:256]
    runs = []
    for _ in range(2):
        model, trainer = mlp(), DFA(lr=1e-3)
        seen = []

        class Batches(nk.callbacks.Callback):
            wants_batches = True

            def on_batch_end(self, batch, logs):
                seen.append(logs["size"])

        history = nk.train(model, X, y, scheme=trainer, epochs=2, batch_size=100, seed=7, callbacks=[Batches()])
        runs.append((model, {k: v.copy() for k, v in trainer.feedback_.items()}, history))
        assert seen == [100, 100, 56] * 2
    (m1, f1, h1), (m2, f2, h2) = runs
    assert h1["loss"] == h2["loss"] and h1["loss"][1] < h1["loss"][0]
    for key in m1.params:
        np.testing.assert_array_equal(m1.params[key], m2.params[key])
    for key in f1:
        np.testing.assert_array_equal(f1[key], f2[key])


@pytest.mark.parametrize("scheme", [DFA, FA])
@pytest.mark.parametrize("options", [{}, {"compiled": False}, {"optimizer": "sgd", "momentum": 0.9}])
def test_a_reused_scheme_trains_a_fresh_model_as_a_new_scheme_does(digits, scheme, options):
    X, y = digits[0][:160], digits[1][:160]
    trainer = scheme(lr=0.01, **options)
    trainer.fit(mlp(), X, y, epochs=2, batch_size=32, seed=0)
    reused, new = mlp(), mlp()
    trainer.fit(reused, X, y, epochs=2, batch_size=32, seed=0)
    scheme(lr=0.01, **options).fit(new, X, y, epochs=2, batch_size=32, seed=0)
    for key, value in new.params.items():
        np.testing.assert_array_equal(reused.params[key], value)


def test_divergence_restores_the_epoch_start():
    X, y, weights = toy(4, (3, 4, 2), n=20)
    model = build(weights, ["relu", None])
    with pytest.raises(nk.TrainingDivergedError, match="dfa diverged in epoch 1"):
        nk.train(model, X * 1e200, y, scheme="dfa", optimizer="sgd", lr=1e200, epochs=1, batch_size=4, seed=0)
    check_params(model, weights)


@pytest.mark.parametrize("layers, message", [
    ([L.Conv2D(1, 2, 3), L.ReLU(), L.Flatten(), L.Dense(72, 10)], r"cannot train layer 0 \(Conv2D\)"),
    ([L.Dense(8, 4), L.ReLU(), L.Dropout(0.5), L.Dense(4, 2)], r"cannot train layer 2 \(Dropout\)"),
    ([L.ReLU(), L.Dense(8, 2)], r"cannot train layer 0 \(ReLU\): it comes before the first Dense"),
    ([L.Dense(8, 4), L.ReLU(), L.Tanh(), L.Dense(4, 2)], r"cannot train layer 2 \(Tanh\): it follows another"),
])
@pytest.mark.parametrize("scheme", ["dfa", "fa"])
def test_unsupported_layers_are_named_with_their_position(layers, message, scheme):
    model = nk.Sequential(layers)
    X = np.zeros((4, 1, 8, 8) if isinstance(layers[0], L.Conv2D) else (4, 8), np.float32)
    with pytest.raises(ValueError, match=f"{scheme} {message}"):
        nk.train(model, X, np.zeros(4, np.int64), scheme=scheme)


def test_bad_options_and_data():
    model = nk.Sequential([L.Dense(4, 2)])
    with pytest.raises(ValueError, match="unknown optimizer"):
        DFA(optimizer="rmsprop")
    with pytest.raises(TypeError, match="does not accept the option"):
        nk.train(model, np.zeros((3, 4)), np.zeros(3, np.int64), scheme="fa", sigma=1.0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        nk.train(model, np.zeros((3, 4)), np.array([0, 1, 5]), scheme="dfa")
    with pytest.raises(ValueError, match="dfa learns from labels: pass y"):
        nk.train(model, np.zeros((3, 4)), scheme="dfa")


def test_registered_through_the_entry_point_and_listed_by_nkernels_plugins(capsys):
    assert nk.registry.schemes["dfa"] is DFA and nk.registry.schemes["fa"] is FA
    entry = nk.registry.schemes.provider("dfa")
    assert (entry.plugin, entry.distribution) == ("feedback", "nkernels-feedback")
    assert cli_main(["plugins", "--json"]) == 0
    listed = {info["name"]: info for info in json.loads(capsys.readouterr().out)}
    info = listed["feedback"]
    assert (info["distribution"], info["status"]) == ("nkernels-feedback", "active")
    assert sorted(info["registered"]["schemes"]) == ["dfa", "fa"]


def test_command_line(capsys):
    assert cli_main(["train", "--scheme", "dfa", "--epochs", "1", "--quiet"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert cli_main(["train", "--scheme", "fa", "--model", "cnn", "--epochs", "1", "--quiet"]) == 2
    assert "fa cannot train layer 0 (Conv2D)" in capsys.readouterr().err


# -- the toolkit's options: schedules, augmentation, checkpoints, early stopping -------------------

def images(digits, n=96):
    """The first ``n`` training digits as images (N, 1, 8, 8), and their labels."""
    return digits[0][:n].reshape(n, 1, 8, 8), digits[1][:n]


def test_a_schedule_changes_the_learning_rate_on_both_runs(digits):
    X, y = digits[0][:160], digits[1][:160]
    runs = []
    for compiled in (True, False):
        model = mlp()
        history = nk.train(model, X, y, scheme="dfa", epochs=3, batch_size=32, seed=0, lr=1e-2, schedule="cosine",
                           compiled=compiled)
        runs.append((model, history))
    (m1, h1), (m2, h2) = runs
    assert h1["lr"][0] == 1e-2 and h1["lr"][0] > h1["lr"][1] > h1["lr"][2] and h1["lr"] == h2["lr"]
    assert h1["loss"] == h2["loss"]
    for key in m1.params:
        np.testing.assert_array_equal(m1.params[key], m2.params[key], err_msg=key)
    # and the schedule took effect: a run at the constant rate ends elsewhere
    constant = mlp()
    nk.train(constant, X, y, scheme="dfa", epochs=3, batch_size=32, seed=0, lr=1e-2)
    assert not np.array_equal(constant.params["0.weight"], m1.params["0.weight"])


def second_child(seed):
    """The generator of dfa's and fa's shuffles: the second child of the seed (the first draws the matrices)."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])


class BackpropShuffledAsDFA(nk.schemes.Backprop):
    """Backprop with the mini-batch order of dfa and fa for the same seed."""

    def setup(self, run):
        super().setup(run)
        run.rng = second_child(run.seed)


def test_the_matrices_and_the_shuffles_come_from_two_children_of_the_seed(digits):
    """The stream of the schemes before the toolkit, so that a seed gives the weights it gave then."""
    X, y = digits[0][:96], digits[1][:96]
    trainer = DFA(lr=1e-2)
    trainer.fit(mlp(), X, y, epochs=1, batch_size=32, seed=5)
    first = np.random.default_rng(np.random.SeedSequence(5).spawn(2)[0])
    for index, width in ((0, 128), (2, 64)):
        bound = 1.0 / np.sqrt(width)
        np.testing.assert_array_equal(trainer.feedback_[index],
                                      first.uniform(-bound, bound, (10, width)).astype(np.float32))
    # a single Dense layer has no hidden layer to send feedback to: dfa is backprop in the same order
    dfa, backprop = (nk.Sequential([L.Dense(64, 10)], seed=0) for _ in range(2))
    DFA(lr=1e-2, compiled=False).fit(dfa, X, y, epochs=2, batch_size=32, seed=5)
    BackpropShuffledAsDFA(lr=1e-2, compiled=False).fit(backprop, X, y, epochs=2, batch_size=32, seed=5)
    for key in dfa.params:
        np.testing.assert_array_equal(dfa.params[key], backprop.params[key], err_msg=key)


@pytest.mark.parametrize("compiled", [True, False])
def test_augmented_runs_shift_images_as_backprop_does(digits, compiled):
    """With a single Dense layer there is no hidden layer to send feedback to: dfa is backprop (in
    the order of dfa's shuffles), and an augmented run goes layer by layer with the same random
    translations as backprop's trainers."""
    X, y = images(digits)

    def model():
        return nk.Sequential([L.Flatten(), L.Dense(64, 10)], seed=0)

    class Compiled(nk.callbacks.Callback):
        def on_train_begin(self, model, params):
            self.compiled = params["compiled"]

    seen = Compiled()
    dfa, backprop, plain = model(), model(), model()
    options = {"epochs": 2, "batch_size": 32, "seed": 3}
    nk.train(dfa, X, y, scheme="dfa", lr=1e-2, augment_shift=2, compiled=compiled, callbacks=[seen], **options)
    nk.train(backprop, X, y, scheme=BackpropShuffledAsDFA(lr=1e-2, augment_shift=2, compiled=False), **options)
    nk.train(plain, X, y, scheme="dfa", lr=1e-2, compiled=compiled, **options)
    assert seen.compiled is False
    for key in dfa.params:
        np.testing.assert_array_equal(dfa.params[key], backprop.params[key], err_msg=key)
    assert not np.array_equal(dfa.params["1.weight"], plain.params["1.weight"])


def test_augmentation_needs_images():
    with pytest.raises(ValueError, match=r"random translations need image inputs \(N, C, H, W\)"):
        nk.train(mlp(), np.zeros((8, 64)), np.zeros(8, np.int64), scheme="fa", augment_shift=1, epochs=1)


@pytest.mark.parametrize("scheme", [DFA, FA])
def test_the_feedback_matrices_are_in_the_checkpoint(digits, scheme, tmp_path):
    """A resumed run uses the matrices it started with, not ones drawn again at its setup."""
    X, y = digits[0][:128], digits[1][:128]
    first = scheme(lr=1e-2, checkpoint_dir=tmp_path)
    first.fit(mlp(), X, y, epochs=1, batch_size=32, seed=None)
    resumed = scheme(lr=1e-2, checkpoint_dir=tmp_path, resume=True)
    resumed.fit(mlp(), X, y, epochs=2, batch_size=32, seed=None)
    assert first.feedback_.keys() == resumed.feedback_.keys()
    for key in first.feedback_:
        np.testing.assert_array_equal(first.feedback_[key], resumed.feedback_[key])


def test_a_checkpoint_with_other_matrices_is_refused():
    trainer = DFA()
    trainer.feedback_ = {0: np.zeros((10, 128), np.float32), 2: np.zeros((10, 64), np.float32)}
    with pytest.raises(ValueError, match=r"feedback matrices .* do not fit this model"):
        trainer.restore_state(None, {}, {"0": np.zeros((10, 128), np.float32)})


def test_early_stopping_ends_the_run_and_restores_the_best_weights(digits):
    X, y, X_test, y_test = digits
    stop = nk.schedules.EarlyStopping(patience=1)
    history = nk.train(mlp(), X[:64], y[:64], scheme="fa", epochs=30, lr=0.1, seed=0, callbacks=[stop],
                       validation_data=(X_test[:64], y_test[:64]))
    assert len(history["loss"]) < 30 and stop.stopped_epoch is not None


def test_the_command_line_reaches_the_shared_options(capsys, tmp_path):
    run = str(tmp_path / "run")
    common = ["train", "--scheme", "dfa", "--quiet", "--checkpoint-dir", run, "--schedule", "cosine"]
    assert cli_main(common + ["--epochs", "1"]) == 0
    capsys.readouterr()
    assert cli_main(common + ["--epochs", "2", "--resume"]) == 0
    out = capsys.readouterr().out
    assert f"resuming the run in {run} after epoch 1" in out and "test accuracy" in out
    # the mlp preset trains on flat vectors: the option reaches the run, which names what it needs
    assert cli_main(["train", "--scheme", "fa", "--epochs", "1", "--quiet", "--augment-shift", "1"]) == 2
    assert "random translations need image inputs" in capsys.readouterr().err
