"""Sequential.copy (and copy.deepcopy): the same numbers as the original, and no array shared with it."""
import copy

import numpy as np
import pytest

import nkernels as nk
from layer_cases import CASES, kink_free_input

L = nk.layers


def arrays_of(model):
    """Every array the model's numbers depend on, by a name: parameters, gradients, buffers, and the
    fitted arrays of Frozen extractors (also those outside the state protocol)."""
    arrays = {**{f"param {k}": v for k, v in model.params.items()},
              **{f"grad {k}": v for k, v in model.grads.items()},
              **{f"buffer {k}": v for k, v in model.buffers.items()}}
    for i, layer in enumerate(model.layers):
        if isinstance(layer, L.Frozen):
            extractor = layer.extractor
            inner = arrays_of(extractor) if isinstance(extractor, nk.Sequential) else \
                {k: v for k, v in vars(extractor).items() if isinstance(v, np.ndarray)}
            arrays.update({f"{i}.extractor {k}": v for k, v in inner.items()})
    return arrays


def assert_same_numbers_and_nothing_shared(original, twin):
    mine, theirs = arrays_of(original), arrays_of(twin)
    assert set(mine) == set(theirs)
    for key, value in mine.items():
        np.testing.assert_array_equal(theirs[key], value, err_msg=key)
        assert not np.shares_memory(theirs[key], value), key


def copies(model):
    """The two ways to copy a model, which must agree."""
    return {"copy": model.copy(), "deepcopy": copy.deepcopy(model)}


@pytest.mark.parametrize("make, shape", [c[1:] for c in CASES] + [(lambda: L.Dropout(0.5), (3, 8))],
                         ids=[c[0] for c in CASES] + ["dropout-unseeded"])
def test_a_copy_of_every_layer_computes_the_same_numbers_and_shares_no_array(make, shape):
    rng = np.random.default_rng(0)
    model = nk.Sequential([make()])
    model.reset_parameters(1)
    x = kink_free_input(model[0], shape, rng) if model.input_dtype.kind == "i" else \
        rng.standard_normal(shape).astype(np.float32)  # an Embedding's: indices
    model.backward(np.ones_like(model.forward(x, training=True)))  # gradients and buffers away from their start
    twins = copies(model)
    for twin in twins.values():
        assert_same_numbers_and_nothing_shared(model, twin)
        assert [type(layer) for layer in twin] == [type(layer) for layer in model]
        assert twin.get_config() == model.get_config()
    models = {"original": model, **twins}
    outputs = {name: m.forward(x, training=True) for name, m in models.items()}  # dropout: the same masks
    dy = rng.standard_normal(outputs["original"].shape).astype(np.float32)
    dxs = {name: m.backward(dy) for name, m in models.items()}
    for name, twin in twins.items():
        np.testing.assert_array_equal(outputs[name], outputs["original"], err_msg=name)
        np.testing.assert_array_equal(dxs[name], dxs["original"], err_msg=name)
        np.testing.assert_array_equal(twin.forward(x), model.forward(x), err_msg=name)
    before = {k: v.copy() for k, v in arrays_of(model).items()}
    for twin in twins.values():  # changing a copy leaves the original alone
        for value in arrays_of(twin).values():
            value[...] = 7
    for key, value in arrays_of(model).items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_a_copy_holds_no_training_pass_and_keeps_layers_used_twice_as_one():
    dense = L.Dense(4, 4)
    model = nk.Sequential([dense, L.ReLU(), dense], seed=0)
    x = np.ones((2, 4), np.float32)
    model.forward(x, training=True)
    twin = model.copy()
    assert twin[0] is twin[2] and twin[0] is not dense
    with pytest.raises(nk.errors.NotFittedError, match="before forward"):
        twin.backward(np.ones((2, 4), np.float32))
    np.testing.assert_array_equal(twin.forward(x), model.forward(x))


def fitted_extractor(kind, X):
    if kind == "kmeans":
        return nk.registry.extractors["kmeans"](n_clusters=8, seed=0).fit(X)
    if kind == "autoencoder":
        return nk.registry.extractors["autoencoder"](8, epochs=1, seed=0).fit(X)
    inner = nk.presets.mlp((X.shape[1],), 10, hidden=(8,), seed=0)
    nk.train(inner, X, np.arange(len(X)) % 10, epochs=1, batch_size=32, seed=0)
    return inner[:2]  # a trained slice (64 -> 8 -> ReLU), sharing its layers with the model it came from


@pytest.mark.parametrize("kind", ["kmeans", "autoencoder", "sequential"])
def test_a_copy_carries_the_state_of_frozen_extractors(digits, kind):
    X = digits[0][:200]
    extractor = fitted_extractor(kind, X)
    model = nk.Sequential([L.Frozen(extractor), L.Dense(8, 10)], seed=0)
    expected = model.predict(X)
    twins = copies(model)
    for name, twin in twins.items():
        assert_same_numbers_and_nothing_shared(model, twin)
        np.testing.assert_array_equal(twin.predict(X), expected, err_msg=name)
        assert twin[0].extractor is not extractor
        if kind == "kmeans":  # the layer's buffers are its own extractor's state arrays, as after nk.load
            state = twin[0].extractor.state_arrays()
            assert all(twin[0].buffers[f"state.{k}"] is v for k, v in state.items())
    for value in arrays_of(model).values():  # the copies stay as they were when the original changes
        value[...] = 0
    assert not np.array_equal(model.predict(X), expected)
    for name, twin in twins.items():
        np.testing.assert_array_equal(twin.predict(X), expected, err_msg=name)
