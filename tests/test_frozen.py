"""nk.layers.Frozen: a fitted extractor inside a Sequential, trained under a head, saved and loaded."""
import json

import numpy as np
import pytest

import nkernels as nk
from nkernels.errors import NotFittedError

L = nk.layers


class RandomFeatures:
    """A small extractor with the state protocol: ``relu(X @ W + b)`` with W, b drawn at fit."""

    def __init__(self, n_features=16, seed=0):
        self.n_features, self.seed = n_features, seed
        self.state = None

    def fit(self, X, y=None):
        rng = np.random.default_rng(self.seed)
        self.state = {"weight": rng.standard_normal((X.shape[1], self.n_features)).astype(np.float32),
                      "bias": rng.standard_normal(self.n_features).astype(np.float32)}
        return self

    def transform(self, X):
        if self.state is None:
            raise NotFittedError("fit first")
        return np.maximum(np.asarray(X, np.float64) @ self.state["weight"] + self.state["bias"], 0.0)

    def get_config(self):
        return {"n_features": self.n_features, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def state_arrays(self):
        if self.state is None:
            raise NotFittedError("fit first")
        return dict(self.state)

    def load_state_arrays(self, arrays):
        self.state = dict(arrays)
        return self


class NoProtocol:
    """An extractor with transform only: usable in a model, not savable."""

    def transform(self, X):
        return np.asarray(X) * 2.0


@pytest.fixture
def random_features(nk_register_plugin):
    class Plugin:
        @nk.hookimpl
        def nkernels_register_extractors(self):
            return {"test-random-features": RandomFeatures}

    nk_register_plugin(Plugin())
    return RandomFeatures


def blobs(n=240, d=6, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = (rng.standard_normal((n, d)) + 2.5 * np.eye(3, d)[y]).astype(np.float32)
    return X, y


def test_forward_is_the_extractor_then_the_head(random_features):
    X, _ = blobs()
    ext = random_features(16).fit(X)
    model = nk.Sequential([L.Frozen(ext), L.Dense(16, 3)], seed=0)
    features = np.maximum(X.astype(np.float64) @ ext.state["weight"] + ext.state["bias"], 0.0)
    expected = features @ model[1].params["weight"].T.astype(np.float64) + model[1].params["bias"]
    np.testing.assert_allclose(model(X), expected, rtol=1e-5, atol=1e-5)
    assert model[0].params == {} and model.output_shape((5, 6)) == (5, 3)


def test_backward_passes_no_gradient_and_checks_its_input(random_features):
    X, _ = blobs(8)
    layer = L.Frozen(random_features(4).fit(X))
    out = layer.forward(X, training=True)
    dx = layer.backward(np.ones_like(out))
    assert dx.shape == X.shape and not np.any(dx)
    with pytest.raises(ValueError, match="backward expects a gradient of shape"):
        layer.backward(np.ones((8, 5)))


def test_training_moves_only_the_head(random_features):
    X, y = blobs()
    ext = random_features(16).fit(X)
    before = {k: v.copy() for k, v in ext.state.items()}
    model = nk.Sequential([L.Frozen(ext), L.Dense(16, 3)], seed=0)
    head_before = model[1].params["weight"].copy()
    history = nk.train(model, X, y, epochs=30, batch_size=32, optimizer="adam", lr=1e-2, seed=0)
    assert history["loss"][-1] < history["loss"][0]
    assert not np.array_equal(model[1].params["weight"], head_before)
    for k, v in before.items():
        np.testing.assert_array_equal(ext.state[k], v)
    assert nk.evaluate(model, X, y)["accuracy"] > 0.9


def test_save_and_load_round_trip_the_extractor_state(random_features, tmp_path):
    X, y = blobs()
    model = nk.Sequential([L.Frozen(random_features(16, seed=3).fit(X)), L.Dense(16, 3)], seed=0)
    nk.train(model, X, y, epochs=3, batch_size=32, seed=0)
    path = tmp_path / "frozen.safetensors"
    nk.save(model, path)
    loaded = nk.load(path)
    assert isinstance(loaded[0], L.Frozen) and isinstance(loaded[0].extractor, RandomFeatures)
    assert loaded[0].extractor is not model[0].extractor
    np.testing.assert_array_equal(loaded[0].extractor.state["weight"], model[0].extractor.state["weight"])
    np.testing.assert_array_equal(loaded(X), model(X))
    assert loaded.get_config() == json.loads(json.dumps(model.get_config()))


def test_a_trained_model_slice_can_be_frozen_and_saved(tmp_path):
    X, y = blobs()
    base = nk.Sequential([L.Dense(6, 12), L.ReLU(), L.Dense(12, 3)], seed=0)
    nk.train(base, X, y, epochs=5, batch_size=32, seed=0)
    trunk = base[:2]
    model = nk.Sequential([L.Frozen(trunk), L.Dense(12, 3)], seed=1)
    weight_before = base[0].params["weight"].copy()
    nk.train(model, X, y, epochs=5, batch_size=32, seed=0)
    np.testing.assert_array_equal(base[0].params["weight"], weight_before)  # the trunk stays frozen
    np.testing.assert_allclose(model[0](X), trunk.transform(X), rtol=1e-6)
    nk.save(model, tmp_path / "m.safetensors")
    loaded = nk.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(loaded(X), model(X))


def test_clear_errors():
    with pytest.raises(TypeError, match="transform"):
        L.Frozen(object())
    with pytest.raises(NotFittedError):
        L.Frozen(RandomFeatures())
    layer = L.Frozen(NoProtocol())
    np.testing.assert_array_equal(layer(np.ones((2, 3), np.float32)), np.full((2, 3), 2.0))
    with pytest.raises(TypeError, match="cannot be saved.*get_config, state_arrays, load_state_arrays"):
        layer.get_config()

    class OneRow:
        def transform(self, X):
            return np.zeros((1, 2))

    with pytest.raises(ValueError, match="one row per sample"):
        L.Frozen(OneRow())(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="a Frozen config must be a dict"):
        L.Frozen.from_config({"config": {}})


def test_registered_as_a_builtin_layer():
    assert nk.registry.layers["frozen"] is L.Frozen


@pytest.mark.parametrize("spec, message", [
    ({"shape": [2.5, 3], "dtype": "<f4"}, r"shape \[2.5, 3\]; a shape is a list of at most 32 ints >= 0"),
    ({"shape": [-1], "dtype": "<f4"}, "a shape is a list"),
    ({"shape": [True, 2], "dtype": "<f4"}, "a shape is a list"),
    ({"shape": "3", "dtype": "<f4"}, "must be {'shape': \\[ints\\], 'dtype': str}"),
    ({"shape": [1] * 33, "dtype": "<f4"}, "at most 32 ints"),
    ({"shape": [3], "dtype": "|O"}, "dtype '|O'; extractor state must be numeric"),
    ({"shape": [3], "dtype": "object"}, "must be numeric"),
    ({"shape": [3], "dtype": "<U5"}, "must be numeric"),
    ({"shape": [3], "dtype": "<M8[s]"}, "must be numeric"),
    ({"shape": [3], "dtype": "f4,i4"}, "must be numeric"),
    ({"shape": [3], "dtype": "(2,)f4"}, "must be numeric"),
    ({"shape": [3], "dtype": "no such dtype"}, "not a NumPy dtype"),
    ({"shape": [3], "dtype": 4}, "must be {'shape'"),
    ({"shape": [1 << 20, 1 << 20], "dtype": "<f8"}, r"asks for 8,796,093,022,208 bytes of extractor state"),
])
def test_frozen_config_checks_the_state_header_before_allocating(spec, message):
    config = {"extractor": "test-random-features", "config": {}, "state": {"weight": spec}}
    with pytest.raises(ValueError, match=message) as info:
        L.Frozen.from_config(config)
    assert "'weight'" in str(info.value) or "bytes" in str(info.value)


def test_a_frozen_sequential_checks_its_recorded_shapes(tmp_path):
    trunk = nk.Sequential([L.Dense(4, 3)], seed=0)
    config = nk.Sequential([L.Frozen(trunk)]).get_config()
    config["layers"][0]["config"]["state"]["params.0.weight"]["shape"] = [1]
    with pytest.raises(ValueError, match=r"'params.0.weight' records float32 of shape \(1,\), but the frozen "
                                         r"Sequential's array is float32 of shape \(3, 4\)"):
        nk.Sequential.from_config(config)


def test_a_corrupt_frozen_header_in_a_file_is_a_corrupt_file_error(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from nkernels.errors import CorruptFileError

    path = tmp_path / "m.safetensors"
    nk.save(nk.Sequential([L.Frozen(nk.Sequential([L.Dense(4, 3)], seed=0))]), path)
    with safe_open(str(path), "np") as f:
        metadata = f.metadata()
    metadata["model"] = metadata["model"].replace('"dtype": "<f4"', '"dtype": "|O"', 1)
    save_file(load_file(str(path)), str(path), metadata=metadata)
    with pytest.raises(CorruptFileError, match="model config it holds cannot be built.*must be numeric"):
        nk.load(path)
