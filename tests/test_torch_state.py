"""Weights and buffers to and from PyTorch state dicts (nk.interop.to_torch_state_dict / from_torch_state_dict),
checked through real torch models of the same architecture: their outputs match nkernels' predict."""
import re
from pathlib import Path

import numpy as np
import pytest

import nkernels as nk
from nkernels.plugins.builtins.layers import BUILTIN_LAYERS
from nkernels.runtime import torch_state

from layer_cases import torch_counterpart

torch = pytest.importorskip("torch")
nn = torch.nn
L = nk.layers
DOCS = Path(__file__).resolve().parent.parent / "docs" / "interop.md"


# -- torch models of the same architecture ---------------------------------------------------------------


class LastLSTM(nn.LSTM):
    """``nn.LSTM(batch_first=True)`` returning the sequence or its last step (its state_dict is nn.LSTM's)."""

    def __init__(self, layer):
        super().__init__(layer.input_size, layer.hidden_size, batch_first=True)
        self.sequences = layer.return_sequences

    def forward(self, x):
        out = super().forward(x)[0]
        return out if self.sequences else out[:, -1]


class SelfAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention(batch_first=True)`` on ``(x, x, x)``, causal by a boolean mask."""

    def __init__(self, layer):
        super().__init__(layer.embed_dim, layer.num_heads, dropout=layer.dropout, bias=layer.use_bias,
                         batch_first=True)
        self.causal = layer.causal

    def forward(self, x):
        size = x.shape[1]
        mask = torch.triu(torch.ones(size, size, dtype=torch.bool), 1) if self.causal else None
        return super().forward(x, x, x, need_weights=False, attn_mask=mask)[0]


class TorchResidual(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.body = torch_sequential(layer.body)
        self.shortcut = None if layer.shortcut is None else torch_sequential(layer.shortcut)

    def forward(self, x):
        return self.body(x) + (x if self.shortcut is None else self.shortcut(x))


def torch_module(layer):
    if isinstance(layer, L.LSTM):
        return LastLSTM(layer)
    if isinstance(layer, L.MultiHeadAttention):
        return SelfAttention(layer)
    if isinstance(layer, L.Residual):
        return TorchResidual(layer)
    if isinstance(layer, L.Dropout):
        return nn.Dropout(layer.p)
    module, _ = torch_counterpart(layer)
    return module


def torch_sequential(layers):
    """An nn.Sequential of the torch counterparts, in float64, its weights torch's own random draws
    (nothing copied from nkernels), running statistics and counters made non-trivial."""
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(*(torch_module(layer) for layer in layers)).double()
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                value.fill_(7)
            elif name.endswith("running_var"):
                value.uniform_(0.5, 2.0, generator=generator)
            else:
                value.normal_(0.0, 0.4, generator=generator)
    return model


def mlp():
    return [L.Dense(6, 8), L.ReLU(), L.Dropout(0.2), L.Dense(8, 3)], np.random.default_rng(0).standard_normal((5, 6))


def cnn():
    layers = [L.Conv2D(1, 4, 3, padding=1), L.BatchNorm2D(4), L.ReLU(),
              L.Residual([L.Conv2D(4, 4, 3, padding=1), L.BatchNorm2D(4), L.ReLU(), L.Conv2D(4, 4, 3, padding=1)]),
              L.Residual([L.Conv2D(4, 6, 3, stride=2, padding=1), L.BatchNorm2D(6)],
                         shortcut=[L.Conv2D(4, 6, 1, stride=2)]),
              L.GlobalAvgPool2D(), L.BatchNorm1D(6), L.Dense(6, 3)]
    return layers, np.random.default_rng(0).standard_normal((5, 1, 8, 8))


def lstm():
    layers = [L.LSTM(3, 5, return_sequences=True), L.LSTM(5, 4), L.Dense(4, 2)]
    return layers, np.random.default_rng(0).standard_normal((4, 6, 3))


def transformer():
    layers = [L.Embedding(10, 8, padding_idx=0), L.PositionalEmbedding(7, 8),
              L.Residual([L.LayerNorm(8), L.MultiHeadAttention(8, 2, dropout=0.1, causal=True)]),
              L.Residual([L.LayerNorm(8), L.Dense(8, 16), L.GELU(), L.Dense(16, 8)]),
              L.LayerNorm(8), L.GlobalAvgPool1D(), L.Dense(8, 3)]
    return layers, np.random.default_rng(0).integers(0, 10, (4, 6))


ARCHITECTURES = {"mlp": mlp, "cnn-batchnorm-residual": cnn, "lstm": lstm, "transformer": transformer}


def torch_output(module, x):
    module.eval()
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_a_torch_model_round_trips_through_nkernels(name):
    """torch -> nkernels: predict matches torch's evaluation output; nkernels (after training moved its
    weights and running statistics) -> a fresh torch model, loaded strictly: the outputs match again."""
    layers, x = ARCHITECTURES[name]()
    model = nk.Sequential(layers, seed=1, dtype=np.float64)
    source = torch_sequential(model.layers)
    assert nk.interop.from_torch_state_dict(model, source.state_dict()) is model
    np.testing.assert_allclose(model.predict(x), torch_output(source, x), rtol=1e-10, atol=1e-12)

    target_y = np.random.default_rng(2).integers(0, model.output_shape(x.shape)[-1], len(x))
    # layer by layer: moving the weights and running statistics is all this test needs (the compiled path
    # is the conformance tests' subject, and compiling its step for every architecture here took a minute)
    nk.train(model, np.concatenate([x, x]), np.concatenate([target_y, target_y]), epochs=2, batch_size=4, seed=0,
             compiled=False)
    state = nk.interop.to_torch_state_dict(model, convert=torch.from_numpy)
    target = torch_sequential(model.layers)
    assert list(state) == list(target.state_dict())  # torch's names, in torch's order
    target.load_state_dict(state, strict=True)  # also checks every shape (num_batches_tracked is 0-d)
    np.testing.assert_allclose(torch_output(target, x), model.predict(x), rtol=1e-10, atol=1e-12)
    for key, value in target.state_dict().items():  # every weight and buffer arrived, not only the used ones
        np.testing.assert_array_equal(value.numpy(), state[key].numpy(), err_msg=key)


def test_buffers_travel_both_ways():
    model = nk.Sequential([L.BatchNorm1D(3), L.Residual([L.BatchNorm1D(3)])], seed=0)
    model.forward(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32), training=True)
    state = nk.interop.to_torch_state_dict(model)
    assert state["0.num_batches_tracked"].shape == () and state["0.num_batches_tracked"] == 1
    np.testing.assert_array_equal(state["1.body.0.running_mean"], model[1].buffers["body.0.running_mean"])
    other = nk.Sequential([L.BatchNorm1D(3), L.Residual([L.BatchNorm1D(3)])], seed=5)
    nk.interop.from_torch_state_dict(other, state)  # NumPy arrays work as well as tensors
    for key, value in model.buffers.items():
        np.testing.assert_array_equal(other.buffers[key], value, err_msg=key)
    for key, value in model.params.items():
        np.testing.assert_array_equal(other.params[key], value, err_msg=key)


def test_the_names_of_the_special_cases():
    model = nk.Sequential([L.LSTM(2, 3), L.GRU(3, 2), L.MultiHeadAttention(4, 2, dropout=0.1), L.Dropout(0.5),
                           L.Frozen(nk.Sequential([L.Dense(2, 2)], seed=0))], seed=0)
    assert list(nk.interop.to_torch_state_dict(model)) == [
        "0.weight_ih_l0", "0.weight_hh_l0", "0.bias_ih_l0", "0.bias_hh_l0",
        "1.weight_ih_l0", "1.weight_hh_l0", "1.bias_ih_l0", "1.bias_hh_l0",
        "2.in_proj_weight", "2.in_proj_bias", "2.out_proj.weight", "2.out_proj.bias",
        "4.0.weight", "4.0.bias"]  # dropout seeds and counters have no torch counterpart


def test_the_returned_arrays_are_copies():
    model = nk.Sequential([L.Dense(2, 2)], seed=0)
    state = nk.interop.to_torch_state_dict(model)
    state["0.weight"][...] = 5.0
    assert not np.any(model[0].params["weight"] == 5.0)


def snapshot(model):
    return {key: np.array(value) for key, value in {**model.params, **model.buffers}.items()}


def assert_unchanged(model, before):
    for key, value in snapshot(model).items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def good_state():
    model = nk.Sequential([L.Dense(3, 4), L.BatchNorm1D(4), L.Dense(4, 2)], seed=3)
    state = nk.interop.to_torch_state_dict(nk.Sequential([L.Dense(3, 4), L.BatchNorm1D(4), L.Dense(4, 2)], seed=4))
    state["1.num_batches_tracked"] = np.array(3)
    return model, state


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("2.bias"), r"missing keys \['2.bias'\]"),
    (lambda s: s.update({"2.extra": np.zeros(2)}), r"unexpected keys \['2.extra'\]"),
    (lambda s: s.update({"0.weight": np.zeros((3, 4))}), r"state_dict\['0.weight'\] has shape \(3, 4\).*\(4, 3\)"),
    (lambda s: s.update({"1.num_batches_tracked": np.array([3])}),
     r"state_dict\['1.num_batches_tracked'\] has shape \(1,\).*needs \(\)"),
    (lambda s: s.update({"1.num_batches_tracked": np.array(2.5)}), r"'1.num_batches_tracked'.*fractional"),
], ids=["missing", "unexpected", "shape", "counter-shape", "fractional-counter"])
def test_a_mismatched_state_dict_is_refused_and_changes_nothing(change, message):
    model, state = good_state()
    before = snapshot(model)
    change(state)
    with pytest.raises(ValueError, match=message):
        nk.interop.from_torch_state_dict(model, state)
    assert_unchanged(model, before)


def test_an_error_after_good_keys_writes_none_of_them():
    """The last key is bad: the ones checked before it must not have been written."""
    model, state = good_state()
    before = snapshot(model)
    state["2.bias"] = np.zeros(5)
    with pytest.raises(ValueError, match="2.bias"):
        nk.interop.from_torch_state_dict(model, state)
    assert_unchanged(model, before)


def test_bad_arguments_are_refused():
    model = nk.Sequential([L.Dense(2, 2)], seed=0)
    with pytest.raises(TypeError, match="Sequential"):
        nk.interop.to_torch_state_dict(L.Dense(2, 2))
    with pytest.raises(TypeError, match="convert"):
        nk.interop.to_torch_state_dict(model, convert="torch")
    with pytest.raises(TypeError, match="mapping"):
        nk.interop.from_torch_state_dict(model, [np.zeros((2, 2))])
    with pytest.raises(TypeError, match=r"state_dict\['0.bias'\]"):
        nk.interop.from_torch_state_dict(model, {"0.weight": np.zeros((2, 2)), "0.bias": np.array(["a", "b"])})

    class Extractor:
        def transform(self, X):
            return X

    with pytest.raises(ValueError, match=r"layer 0: Frozen\(Extractor\) has no PyTorch counterpart"):
        nk.interop.to_torch_state_dict(nk.Sequential([L.Frozen(Extractor())]))


def test_float32_tensors_load_into_a_float64_model():
    model = nk.Sequential([L.Dense(3, 2)], seed=0, dtype=np.float64)
    torch_model = nn.Sequential(nn.Linear(3, 2))
    nk.interop.from_torch_state_dict(model, torch_model.state_dict())
    assert model[0].params["weight"].dtype == np.float64
    np.testing.assert_array_equal(model[0].params["weight"], torch_model[0].weight.detach().numpy())


def test_every_builtin_layer_is_in_the_documented_tables():
    """docs/interop.md and the module docstring name every built-in layer (a new one must be added)."""
    docs = DOCS.read_text()
    for row in BUILTIN_LAYERS:
        name = row.layer.__name__
        assert re.search(rf"\b{name}\b", docs), f"docs/interop.md does not name {name}"
        assert re.search(rf"\b{name}\b", torch_state.__doc__), f"torch_state's table does not name {name}"


def test_the_guide_runs():
    code = "\n".join(re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S))
    exec(compile(code, "docs/interop.md", "exec"), {})


@pytest.mark.cuda
def test_a_cuda_model_exchanges_its_weights():
    """Parameters on the GPU are copied back for torch and written in place from it (the simulator in CI)."""
    model = nk.Sequential([L.Dense(3, 2), L.BatchNorm1D(2)], seed=0).to("cuda")
    torch_model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    weight = model[0].params["weight"]
    nk.interop.from_torch_state_dict(model, torch_model.state_dict())
    assert model[0].params["weight"] is weight  # written in place
    state = nk.interop.to_torch_state_dict(model)
    assert isinstance(state["0.weight"], np.ndarray)
    for key, value in torch_model.state_dict().items():
        np.testing.assert_array_equal(state[key], value.numpy(), err_msg=key)
