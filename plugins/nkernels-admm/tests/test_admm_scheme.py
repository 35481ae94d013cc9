"""The admm scheme: whole iterations against a float64 reference, errors, callbacks, and digits accuracy."""
import numpy as np
import pytest

import nkernels as nk
from nkernels.callbacks import Callback
from nkernels_admm import ADMM

L = nk.layers


def reference_admm(X, labels, weights, iterations, beta, gamma, warm_start, weight_decay, loss="hinge"):
    """Algorithm 1 of Taylor et al. (2016), written plainly: samples in rows, biases as an extra input of 1.

    ``weights`` is a list of (W, b); returns the list after ``iterations`` iterations.
    """
    n = len(X)
    T = np.eye(weights[-1][0].shape[0])[labels]
    W = [np.hstack([w, b[:, None]]) for w, b in weights]  # (out, in + 1)
    n_layers = len(W)

    def with_ones(A):
        return np.hstack([A, np.ones((len(A), 1))])

    def least_squares(A, Z):  # min ||Z - [A, 1] W.T||^2 + n tau ||W[:, :-1]||^2
        D = with_ones(A)
        P = n * weight_decay * np.diag([1.0] * A.shape[1] + [0.0])
        return np.linalg.solve(D.T @ D + P, D.T @ Z).T

    a, z = [X], []
    for l in range(n_layers):
        z.append(with_ones(a[l]) @ W[l].T)
        if l < n_layers - 1:
            a.append(np.maximum(z[l], 0))
    lam = np.zeros_like(z[-1])

    def update_outputs(m):
        if loss == "least_squares":
            return (2 * T - lam + 2 * beta * m) / (2 + 2 * beta)
        # each side of the hinge's kink is a quadratic: minimize it, clip to that side, keep the better
        # (y = 1: slope -1 below 1, 0 above; y = 0: slope 0 below 0, +1 above)
        below = np.where(T == 1, np.minimum(m + (1 - lam) / (2 * beta), 1), np.minimum(m - lam / (2 * beta), 0))
        above = np.where(T == 1, np.maximum(m - lam / (2 * beta), 1), np.maximum(m - (1 + lam) / (2 * beta), 0))

        def f(zz):
            hinge = np.where(T == 1, np.maximum(1 - zz, 0), np.maximum(zz, 0))
            return hinge + lam * zz + beta * (zz - m) ** 2

        return np.where(f(above) <= f(below), above, below)

    z[-1] = update_outputs(z[-1])  # the outputs start at the loss's minimizer near the forward pass
    for it in range(iterations):
        for l in range(n_layers - 1):
            W[l] = least_squares(a[l], z[l])
            Wn, bn = W[l + 1][:, :-1], W[l + 1][:, -1]
            k = Wn.shape[1]
            a[l + 1] = np.linalg.solve(beta * Wn.T @ Wn + gamma * np.eye(k),
                                       (beta * (z[l + 1] - bn) @ Wn + gamma * np.maximum(z[l], 0)).T).T
            m = with_ones(a[l]) @ W[l].T
            z_pos = np.maximum((gamma * a[l + 1] + beta * m) / (gamma + beta), 0)
            z_neg = np.minimum(m, 0)
            f_pos = gamma * (a[l + 1] - z_pos) ** 2 + beta * (z_pos - m) ** 2
            f_neg = gamma * a[l + 1] ** 2 + beta * (z_neg - m) ** 2
            z[l] = np.where(f_neg < f_pos, z_neg, z_pos)
        W[-1] = least_squares(a[-1], z[-1])
        m = with_ones(a[-1]) @ W[-1].T
        z[-1] = update_outputs(m)
        if it >= warm_start:
            lam = lam + beta * (z[-1] - m)
    return [(w[:, :-1], w[:, -1]) for w in W]


def small_problem(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 5))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)
    model = nk.Sequential([L.Dense(5, 7), L.ReLU(), L.Dense(7, 6), L.ReLU(), L.Dense(6, 3)], seed=seed,
                          dtype="float64")
    return X, y, model


@pytest.mark.parametrize("loss", ["hinge", "least_squares"])
def test_iterations_match_the_reference_algorithm(loss):
    X, y, model = small_problem()
    start = [(d.params["weight"].copy(), d.params["bias"].copy()) for d in model.layers[::2]]
    options = dict(beta=1.5, gamma=4.0, warm_start=1, weight_decay=1e-3)
    # 1 warm-start iteration, then 3 with the multiplier: the weights of the 4th see the multiplier of the 2nd
    nk.train(model, X, y, scheme="admm", epochs=4, loss=loss, **options)
    expected = reference_admm(X, y, start, 4, loss=loss, **options)
    for layer, (w, b) in zip(model.layers[::2], expected):
        np.testing.assert_allclose(layer.params["weight"], w, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(layer.params["bias"], b, rtol=1e-8, atol=1e-10)


def test_the_multiplier_changes_the_result_after_the_warm_start():
    X, y, model = small_problem()
    other = nk.Sequential([L.Dense(5, 7), L.ReLU(), L.Dense(7, 6), L.ReLU(), L.Dense(6, 3)], seed=0, dtype="float64")
    # the multiplier of iteration 3 moves the outputs of iteration 4, which the weights of iteration 5 fit
    nk.train(model, X, y, scheme="admm", epochs=5, warm_start=5)
    nk.train(other, X, y, scheme="admm", epochs=5, warm_start=2)
    assert not np.allclose(model.params["4.weight"], other.params["4.weight"])


def test_a_model_without_biases_and_with_flatten_trains():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2, 3))
    y = (X[:, 0, 0] > 0).astype(np.int64)
    model = nk.Sequential([L.Flatten(), L.Dense(6, 8, bias=False), L.ReLU(), L.Dense(8, 2)], seed=0)
    history = nk.train(model, X, y, scheme="admm", epochs=3, validation_data=(X[:10], y[:10]))
    assert model.dtype == np.float32 and np.isfinite(model.params["1.weight"]).all()
    assert history.epochs == 3 and set(history) >= {"loss", "accuracy", "residual", "val_loss", "val_accuracy"}


def test_real_targets_with_least_squares():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    Y = np.stack([np.abs(X[:, 0]), X[:, 1] - X[:, 2]], axis=1)
    model = nk.Sequential([L.Dense(3, 16), L.ReLU(), L.Dense(16, 2)], seed=0)
    history = nk.train(model, X, Y, scheme="admm", loss="least_squares", epochs=8, warm_start=2)
    assert "accuracy" not in history
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    with pytest.raises(ValueError, match="hinge loss needs integer class labels"):
        nk.train(model, X, Y, scheme="admm", epochs=1)


def test_registered_through_the_entry_point():
    assert nk.registry.schemes["admm"] is ADMM
    entry = nk.registry.schemes.provider("admm")
    assert (entry.plugin, entry.distribution) == ("admm", "nkernels-admm")


@pytest.mark.parametrize("layers, position, name", [
    ([L.Dense(4, 8), L.Sigmoid(), L.Dense(8, 2)], 1, "Sigmoid"),
    ([L.Dense(4, 8), L.ReLU(), L.Dropout(0.5), L.Dense(8, 2)], 2, "Dropout"),
    ([L.Dense(4, 8), L.Dense(8, 2)], 1, "Dense"),
    ([L.ReLU(), L.Dense(4, 2)], 0, "ReLU"),
    ([L.Dense(4, 8), L.ReLU(), L.ReLU(), L.Dense(8, 2)], 2, "ReLU"),
    ([L.Dense(4, 2), L.ReLU()], 1, "ReLU"),
])
def test_layers_admm_cannot_train_are_named_with_their_position(layers, position, name):
    X, y = np.random.default_rng(0).normal(size=(10, 4)), np.arange(10) % 2
    with pytest.raises(ValueError, match=rf"layer {position} \({name}\)"):
        nk.train(nk.Sequential(layers), X, y, scheme="admm", epochs=1)


def test_the_cnn_preset_is_refused_with_the_convolution_named():
    from nkernels.cli import presets

    model = presets.build("cnn", (1, 8, 8), 10)
    X, y = np.zeros((4, 1, 8, 8), np.float32), np.arange(4)
    with pytest.raises(ValueError, match=r"ADMM cannot train layer 0 \(Conv2D\)"):
        nk.train(model, X, y, scheme="admm", epochs=1)


@pytest.mark.parametrize("options, message", [
    ({"beta": 0}, "beta must be a finite number above 0, got 0.0"),
    ({"gamma": float("nan")}, "gamma must be"),
    ({"loss": "softmax"}, "loss must be one of"),
    ({"warm_start": -1}, "warm_start must be at least 0, got -1"),
    ({"weight_decay": -1e-3}, "weight_decay must be a finite number at least 0, got -0.001"),
    ({"shards": 0}, "shards must be at least 1, got 0"),
    ({"workers": 0}, "workers must be at least 1, got 0"),
    ({"workers": 2, "scheduler": "tcp://127.0.0.1:1"}, "not both"),
])
def test_invalid_options(options, message):
    with pytest.raises(ValueError, match=message):
        ADMM(**options)


def test_bad_data_is_refused_before_training():
    X, y, model = small_problem()
    before = model.params["0.weight"].copy()
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        nk.train(model, X, y + 5, scheme="admm", epochs=1)
    with pytest.raises(ValueError, match="NaN"):
        nk.train(model, np.full_like(X, np.nan), y, scheme="admm", epochs=1)
    with pytest.raises(ValueError, match="y_val"):
        nk.train(model, X, y, scheme="admm", epochs=1, validation_data=(X, y[:5]))
    with pytest.raises(ValueError, match="cannot split 60 samples into 61 shards"):
        nk.train(model, X, y, scheme="admm", epochs=1, shards=61)
    np.testing.assert_array_equal(model.params["0.weight"], before)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:invalid value encountered:RuntimeWarning")
def test_overflowing_data_stops_with_the_weights_kept():
    X, y, model = small_problem()
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(nk.TrainingDivergedError, match="rescale X"):
        nk.train(model, X * 1e160, y, scheme="admm", epochs=2)
    for key, value in before.items():
        np.testing.assert_array_equal(model.params[key], value)


def test_missing_dask_names_the_install_command(monkeypatch):
    import sys

    from nkernels.errors import DistributedUnavailableError

    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # makes the import fail
    with pytest.raises(DistributedUnavailableError, match=r'pip install "nkernels\[distributed\]"'):
        nk.train(small_problem()[2], *small_problem()[:2], scheme="admm", epochs=1, workers=2)


def test_callbacks_see_every_iteration_and_can_stop():
    class Stop(Callback):
        def __init__(self):
            self.seen = []

        def on_epoch_end(self, epoch, logs):
            self.seen.append(logs["stage"])
            if epoch == 2:
                self.context.stop_training = True

    X, y, model = small_problem()
    stop = Stop()
    history = nk.train(model, X, y, scheme="admm", epochs=10, warm_start=2, callbacks=[stop])
    assert history.epochs == 3
    assert stop.seen == ["warm start", "warm start", "multiplier"]


def test_sharding_in_process_changes_only_the_summation_order():
    X, y, model = small_problem()
    other = nk.Sequential([L.Dense(5, 7), L.ReLU(), L.Dense(7, 6), L.ReLU(), L.Dense(6, 3)], seed=0, dtype="float64")
    h1 = nk.train(model, X, y, scheme="admm", epochs=4, warm_start=1)
    h3 = nk.train(other, X, y, scheme="admm", epochs=4, warm_start=1, shards=3)
    for key in model.params:
        np.testing.assert_allclose(model.params[key], other.params[key], rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(h1["loss"], h3["loss"], rtol=1e-9)


def test_the_defaults_reach_93_percent_held_out_on_digits():
    X, y, X_test, y_test = nk.datasets.load("digits")  # the 30% held-out split, seed 0
    model = nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64), L.ReLU(), L.Dense(64, 10)], seed=0)
    history = nk.train(model, X, y, scheme="admm", seed=0, validation_data=(X_test, y_test))
    assert history.epochs == ADMM.default_epochs and history["val_accuracy"][-1] >= 0.93
    assert nk.evaluate(model, X_test, y_test)["accuracy"] >= 0.93


def test_the_command_line_defaults_reach_93_percent_held_out(tmp_path):
    from nkernels.cli import main

    path = tmp_path / "admm.safetensors"
    assert main(["train", "--scheme", "admm", "--quiet", "--save", str(path)]) == 0  # the mlp preset
    _, _, X_test, y_test = nk.datasets.load("digits")
    assert nk.evaluate(nk.load(path), X_test, y_test)["accuracy"] >= 0.93


def test_a_run_stepped_by_hand_matches_fit():
    X, y, model = small_problem()
    other = nk.Sequential([L.Dense(5, 7), L.ReLU(), L.Dense(7, 6), L.ReLU(), L.Dense(6, 3)], seed=0, dtype="float64")
    history = nk.train(model, X, y, scheme="admm", epochs=3, warm_start=1)
    with ADMM(warm_start=1).start(other, X, y) as run:
        steps = [run.step() for _ in range(3)]
    assert [s["stage"] for s in steps] == ["warm start", "multiplier", "multiplier"]
    assert [s["loss"] for s in steps] == history["loss"]
    for key in model.params:
        np.testing.assert_array_equal(model.params[key], other.params[key])
