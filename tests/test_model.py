"""Sequential: passes, slicing, configs, seeds, dtypes and saving."""
import json

import numpy as np
import pytest

import nkernels as nk
from nkernels.errors import CorruptFileError

L = nk.layers


def mlp(seed=0):
    return nk.Sequential([L.Dense(6, 5), L.ReLU(), L.Dense(5, 4), L.Tanh(), L.Dense(4, 3)], seed=seed)


def test_forward_backward_fill_every_layers_grads():
    model = mlp()
    x = np.random.default_rng(0).standard_normal((7, 6)).astype(np.float32)
    y = model.forward(x, training=True)
    assert y.shape == (7, 3)
    dx = model.backward(np.ones_like(y))
    assert dx.shape == x.shape
    assert set(model.grads) == set(model.params) == {"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"}
    assert all(np.any(g != 0) for g in model.grads.values())
    np.testing.assert_array_equal(model(x), model.forward(x))


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = mlp(0), mlp(0), mlp(1)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert not np.array_equal(a.params["0.weight"], c.params["0.weight"])


def test_slice_shares_layers_and_is_an_extractor():
    model = mlp()
    head = model[:2]
    assert isinstance(head, nk.Sequential) and len(head) == 2 and head[0] is model[0]
    x = np.random.default_rng(0).standard_normal((4, 6))
    features = head.fit(x).transform(x)
    assert features.shape == (4, 5) and np.all(features >= 0)
    np.testing.assert_allclose(model[2:](features), model(x), rtol=1e-6)


def test_config_round_trip_rebuilds_the_architecture():
    model = nk.Sequential([L.Dense(6, 5, bias=False), L.Sigmoid(), L.Flatten(), L.Dense(5, 2)], seed=0)
    config = json.loads(json.dumps(model.get_config()))
    assert [layer["type"] for layer in config["layers"]] == ["dense", "sigmoid", "flatten", "dense"]
    rebuilt = nk.Sequential.from_config(config)
    assert rebuilt.get_config() == config
    assert set(rebuilt.params) == set(model.params)


def test_from_config_rejects_unknown_layers():
    with pytest.raises(ValueError, match="unknown layer 'conv9d'"):
        nk.Sequential.from_config({"layers": [{"type": "conv9d", "config": {}}]})
    with pytest.raises(ValueError, match="'layers' list"):
        nk.Sequential.from_config({"layer": []})


def test_float64_end_to_end():
    model = mlp().astype(np.float64)
    assert model.dtype == np.float64
    x = np.random.default_rng(0).standard_normal((3, 6))
    assert model(x).dtype == np.float64
    X = np.random.default_rng(1).standard_normal((40, 6))
    y = np.arange(40) % 3
    history = nk.train(model, X, y, epochs=2, batch_size=8, seed=0)
    assert model.params["0.weight"].dtype == np.float64 and len(history["loss"]) == 2


def test_sequential_rejects_non_layers():
    with pytest.raises(TypeError, match="item 1"):
        nk.Sequential([L.ReLU(), "dense"])


def test_to_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    from nkernels.runtime import devices

    monkeypatch.setattr(devices, "cuda_status", lambda: (False, "numba.cuda cannot be imported"))
    with pytest.raises(ValueError, match="device 'cuda' is not usable: numba.cuda cannot be imported"):
        mlp().to("cuda")
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        mlp().to("tpu")


def test_save_and_load_round_trip(tmp_path):
    model = mlp()
    path = tmp_path / "model.safetensors"
    nk.save(model, path)
    loaded = nk.load(path)
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), model(x))
    assert loaded.get_config() == model.get_config()
    assert not list(tmp_path.glob("*.tmp"))


def test_optimizer_state_round_trips(tmp_path, digits):
    from nkernels.export.io import load_optimizer

    class KeepTheRunsOptimizer(nk.callbacks.Callback):
        def on_train_begin(self, model, params):
            self.optimizer = self.context.optimizer  # a fresh copy of the configured one, stepped by the run

    model, keep = nk.Sequential([L.Dense(64, 10)], seed=0), KeepTheRunsOptimizer()
    nk.train(model, digits[0][:64], digits[1][:64], epochs=1, batch_size=32, optimizer="adam", lr=0.01,
             callbacks=[keep])
    optimizer = keep.optimizer
    nk.save(model, tmp_path / "m.safetensors", optimizer=optimizer)
    restored = load_optimizer(tmp_path / "m.safetensors")
    assert isinstance(restored, nk.optimizers.Adam) and restored.steps == optimizer.steps == 2
    np.testing.assert_array_equal(restored.state["0.weight"]["v"], optimizer.state["0.weight"]["v"])
    assert load_optimizer(tmp_path / "m.safetensors").lr == 0.01


@pytest.mark.parametrize("content", [b"", b"garbage" * 10, b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":1}"])
def test_corrupt_files_raise_clear_errors(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CorruptFileError):
        nk.load(path)


def test_foreign_safetensors_file_is_rejected(tmp_path):
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(3, np.float32)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CorruptFileError, match="not an nkernels model"):
        nk.load(tmp_path / "foreign.safetensors")


def test_truncated_file_is_rejected(tmp_path):
    path = tmp_path / "m.safetensors"
    nk.save(mlp(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 16])
    with pytest.raises(CorruptFileError):
        nk.load(path)


def _without_distribution(monkeypatch, plugins, dist):
    """Plugin discovery as if ``dist`` were not installed."""
    everything = plugins.metadata.entry_points
    monkeypatch.setattr(plugins.metadata, "entry_points",
                        lambda **kw: [ep for ep in everything(**kw) if ep.dist is None or ep.dist.name != dist])
    plugins.reset()


def test_a_layer_whose_plugin_is_not_installed_names_the_plugin(tmp_path, monkeypatch, fresh_plugins):
    activations = pytest.importorskip("nkernels_activations")
    path = tmp_path / "m.safetensors"
    nk.save(nk.Sequential([L.Dense(6, 5), activations.LeakyReLU()], seed=0), path)
    _without_distribution(monkeypatch, fresh_plugins, "nkernels-activations")
    message = (r"layer 1 of the model config has the type 'leaky_relu', which no plugin installed here registers: "
               r"unknown layer 'leaky_relu'; the layer 'leaky_relu' is provided by the "
               r"plugin distribution nkernels-activations, which is not installed: install it \(pip install "
               r"nkernels-activations\) and try again. Available: .*dense")
    with pytest.raises(nk.registry.UnknownNameError, match=message):
        nk.load(path)
    with pytest.raises(nk.registry.UnknownNameError, match=message):
        nk.Sequential.from_config({"layers": [{"type": "dense", "config": {"in_features": 2, "out_features": 2}},
                                              {"type": "leaky_relu", "config": {}}]})


def test_an_extractor_whose_plugin_is_disabled_says_so(tmp_path, monkeypatch, fresh_plugins):
    kmeans = pytest.importorskip("nkernels_kmeans")
    X = np.random.default_rng(0).standard_normal((40, 4)).astype(np.float32)
    path = tmp_path / "m.safetensors"
    nk.save(nk.Sequential([L.Frozen(kmeans.KMeans(3, seed=0).fit(X)), L.Dense(3, 2)], seed=0), path)
    monkeypatch.setenv("NKERNELS_DISABLE_PLUGINS", "kmeans")
    fresh_plugins.reset()
    with pytest.raises(nk.registry.UnknownNameError, match="unknown extractor 'kmeans'; the extractor 'kmeans' is "
                                                           "provided by the plugin distribution nkernels-kmeans, "
                                                           "which NKERNELS_DISABLE_PLUGINS skips"):
        nk.load(path)


def test_the_first_party_names_table_matches_the_plugins(fresh_plugins):
    for kind, names in fresh_plugins.FIRST_PARTY_NAMES.items():
        for name, dist in names.items():
            try:
                provider = getattr(nk.registry, kind).provider(name)
            except KeyError:
                continue  # that plugin is not installed here
            assert provider.distribution == dist, (kind, name)
    registered = {(kind, name) for info in fresh_plugins.plugin_infos() if info.distribution.startswith("nkernels-")
                  for kind in ("layers", "schemes", "extractors") for name in info.registered.get(kind, [])}
    listed = {(kind, name) for kind, names in fresh_plugins.FIRST_PARTY_NAMES.items() for name in names}
    assert registered <= listed, registered - listed
