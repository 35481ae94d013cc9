"""MAC on the scheme toolkit: conformance, bit-identical resumes with the coordinates and mu, refused input."""
import functools

import numpy as np
import pytest

import nkernels as nk
from nkernels.export.io import read_checkpoint
from nkernels.testing import SchemeConformance
from nkernels_mac import MAC

L = nk.layers


def two_hidden_layers(dtype="float32"):
    return nk.Sequential([L.Dense(64, 16), L.ReLU(), L.Dense(16, 12), L.Tanh(), L.Dense(12, 10)], seed=0,
                         dtype=dtype)


class TestMACConformance(SchemeConformance):
    """One shard in this process."""

    make_scheme = staticmethod(MAC)
    fit_options = {"batch_size": 64}

    def make_model(self):
        return two_hidden_layers()


class TestShardedMACConformance(TestMACConformance):
    """Three shards in this process: the layers travel round them, the checkpoint's coordinates are split back."""

    make_scheme = staticmethod(functools.partial(MAC, shards=3))


def digits_slice(n=300):
    X, y, _, _ = nk.datasets.load("digits")
    return X[:n], y[:n]


@pytest.mark.parametrize("shards", [1, 2])
def test_a_resumed_run_continues_the_coordinates_mu_and_moments(tmp_path, shards):
    X, y = digits_slice()
    straight = two_hidden_layers()
    h_straight = nk.train(straight, X, y, scheme="mac", epochs=5, shards=shards, seed=1)
    nk.train(two_hidden_layers(), X, y, scheme="mac", epochs=2, shards=shards, seed=1, checkpoint_dir=tmp_path)
    resumed = two_hidden_layers()
    h_resumed = nk.train(resumed, X, y, scheme="mac", epochs=5, shards=shards, seed=1, checkpoint_dir=tmp_path,
                         resume=True)
    for key in straight.params:
        np.testing.assert_array_equal(resumed.params[key], straight.params[key])
    for metric in ("loss", "violation", "mu", "w_loss"):
        assert h_resumed[metric] == h_straight[metric], metric


def test_the_checkpoint_holds_the_coordinates_and_mu(tmp_path):
    X, y = digits_slice()
    nk.train(two_hidden_layers(), X, y, scheme="mac", epochs=3, mu=0.5, mu_growth=2.0, checkpoint_dir=tmp_path)
    saved = read_checkpoint(tmp_path / "checkpoint.safetensors")
    state = saved.extra["scheme_state"]
    assert state["iterations"] == 3 and state["mu"] == 0.5 * 2.0 ** 3 and state["steps"] == [30, 30, 30]  # 10 batches of 32 a pass
    coordinates = saved.arrays["scheme.coordinates"]
    assert coordinates.shape == (300, 16 + 12) and coordinates.dtype == np.float64
    assert np.abs(saved.arrays["scheme.moment_b.2.weight"]).sum() > 0


def test_a_checkpoint_for_other_data_is_refused(tmp_path):
    X, y = digits_slice()
    nk.train(two_hidden_layers(), X, y, scheme="mac", epochs=1, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="same training data"):
        nk.train(two_hidden_layers(), X[:200], y[:200], scheme="mac", epochs=2, checkpoint_dir=tmp_path, resume=True)


def test_mu_grows_and_the_coordinates_come_to_agree_with_the_forward_pass():
    X, y = digits_slice()
    history = nk.train(two_hidden_layers("float64"), X, y, scheme="mac", epochs=8, mu=1.0, mu_growth=2.0)
    assert history["mu"] == [2.0 ** i for i in range(8)]
    assert history["violation"][-1] < history["violation"][0] / 3


def test_the_model_trains_and_val_accuracy_is_reported():
    X, y, X_test, y_test = nk.datasets.load("digits")
    history = nk.train(two_hidden_layers(), X[:600], y[:600], scheme="mac", epochs=6,
                       validation_data=(X_test, y_test))
    assert len(history["val_accuracy"]) == 6 and history["val_accuracy"][-1] > 0.6 and history["accuracy"][-1] > history["accuracy"][0]


def test_a_regression_target_trains_with_the_squared_error():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    Y = np.stack([np.sin(X[:, 0]), X[:, 1] * X[:, 2]], axis=1)
    model = nk.Sequential([L.Dense(4, 16), L.Tanh(), L.Dense(16, 2)], seed=0, dtype="float64")
    history = nk.train(model, X, Y, scheme="mac", epochs=10, lr=0.01, mu=1.0)
    assert "accuracy" not in history and history["loss"][-1] < 0.75 * history["loss"][0]


@pytest.mark.parametrize("layers, message", [
    ([L.Dense(64, 16), L.ReLU(), L.Dropout(0.5), L.Dense(16, 10)], r"layer 2 \(Dropout\).*Dense layers, each"),
    ([L.Dense(64, 8), L.BatchNorm1D(8), L.ReLU(), L.Dense(8, 10)], r"cannot train layer 1 \(BatchNorm1D\)"),
    ([L.Dense(64, 16), L.ReLU(), L.Tanh(), L.Dense(16, 10)], r"layer 2 \(Tanh\): an activation must follow a Dense"),
    ([L.ReLU(), L.Dense(64, 10)], r"layer 0 \(ReLU\)"),
    ([L.Dense(64, 10)], "at least two Dense layers"),
    ([L.Dense(64, 16), L.ReLU(), L.Dense(16, 10), L.Sigmoid()], "after the last Dense layer"),
])
def test_unsupported_layers_are_refused_by_name(layers, message):
    X, y = digits_slice(50)
    with pytest.raises(ValueError, match=message):
        nk.train(nk.Sequential(layers, seed=0), X, y, scheme="mac", epochs=1)


@pytest.mark.parametrize("options, error, message", [
    ({"augment_shift": 1}, ValueError, "augment_shift"),
    ({"mu": 0}, ValueError, "mu"),
    ({"mu_growth": 0.5}, ValueError, "mu_growth"),
    ({"z_steps": 0}, ValueError, "z_steps"),
    ({"optimizer": "adam", "lr": -1}, ValueError, "lr"),
    ({"workers": 2, "scheduler": "tcp://127.0.0.1:1"}, ValueError, "not both"),
])
def test_bad_options_are_refused(options, error, message):
    with pytest.raises(error, match=message):
        MAC(**options)


def test_an_optimizer_outside_the_fused_update_is_refused():
    with pytest.raises(ValueError, match="fused update"):
        MAC(optimizer=nk.optimizers.Adam(lr=0.01, clip_norm=1.0))


def test_an_optimizer_instance_brings_its_own_rate():
    assert MAC(optimizer=nk.optimizers.SGD(lr=0.1)).optimizer.lr == 0.1 and MAC().optimizer.lr == 0.003


def test_a_loss_other_than_cross_entropy_or_squared_error_is_refused():
    X, y = digits_slice(50)
    scheme = MAC()
    scheme.loss = "bce_with_logits"  # the toolkit reads a scheme's loss attribute
    with pytest.raises(ValueError, match="not BCEWithLogits"):
        scheme.fit(two_hidden_layers(), X, np.eye(10)[y], epochs=1)


def test_too_many_shards_are_refused():
    X, y = digits_slice(20)
    with pytest.raises(ValueError, match="into 30 shards"):
        nk.train(two_hidden_layers(), X, y, scheme="mac", epochs=1, shards=30)
