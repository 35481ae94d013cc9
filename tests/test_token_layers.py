"""Token models: Embedding's integer inputs on every path, PositionalEmbedding, GlobalAvgPool1D, Dense
on sequences, and SoftmaxCrossEntropy on (N, T, V) logits with (N, T) labels.

(tests/test_layers.py runs the conformance kit, torch agreement and CPU/CUDA agreement over the
cases of tests/layer_cases.py; this file covers what is particular to tokens.)
"""
import numpy as np
import pytest

import nkernels as nk
from nkernels.testing import check_loss_gradients
from nkernels.trainers import CompiledTrainer, make_trainer

L = nk.layers


def token_data(n=40, t=5, vocab=6, seed=0):
    """Random tokens, and as labels each token's successor in the vocabulary (a per-token task)."""
    X = np.random.default_rng(seed).integers(0, vocab, (n, t))
    return X, (X + 1) % vocab


def sequence_model(vocab=6, t=5, d=4, seed=0):
    """(N, T) tokens -> (N, T, vocab) logits: embedding, positions, a per-token Dense."""
    return nk.Sequential([L.Embedding(vocab, d), L.PositionalEmbedding(t, d), L.Tanh(), L.Dense(d, vocab)],
                         seed=seed)


# -- Embedding: inputs ---------------------------------------------------------------------------
def test_float_indices_are_refused_on_every_path():
    model = sequence_model()
    X, y = token_data()
    with pytest.raises(TypeError, match="must hold integer indices, got dtype float64"):
        model.forward(X.astype(float))
    with pytest.raises(TypeError, match="X must hold integer indices"):
        nk.train(model, X.astype(float), y, epochs=1)
    with pytest.raises(TypeError, match="X_val must hold integer indices"):
        nk.train(model, X, y, epochs=1, validation_data=(X.astype(np.float32), y))
    with pytest.raises(TypeError, match="integer indices"):
        nk.evaluate(model, X.astype(float), y)


@pytest.mark.parametrize("bad", [-1, 6, 2**40])
def test_indices_out_of_range_are_refused_before_any_kernel(bad):
    model = sequence_model()
    before = {k: v.copy() for k, v in model.params.items()}
    X, y = token_data()
    X[7, 2] = bad
    message = rf"holds indices from {min(bad, 0)} to {max(bad, 5)}.*indices must lie in \[0, 5\]"
    with pytest.raises(ValueError, match="Embedding input " + message):
        model.forward(X)
    with pytest.raises(ValueError, match="X " + message):
        nk.train(model, X, y, epochs=1, compiled=True)
    with pytest.raises(ValueError, match="X_val " + message):
        nk.train(model, X.clip(0, 5), y, epochs=1, validation_data=(X, y))
    with pytest.raises(ValueError, match=message):
        model.predict(X)
    for key, value in model.params.items():
        np.testing.assert_array_equal(value, before[key])  # nothing trained


@pytest.mark.parametrize("make, error, message", [
    (lambda: L.Embedding(0, 3), ValueError, "num_embeddings must be at least 1"),
    (lambda: L.Embedding(4, 2.0), TypeError, "embedding_dim must be an integer"),
    (lambda: L.Embedding(4, 2, padding_idx=4), ValueError, r"padding_idx must lie in \[-4, 3\]"),
    (lambda: L.Embedding(4, 2, padding_idx=-5), ValueError, "padding_idx must be at least -4"),
    (lambda: L.PositionalEmbedding(0, 2), ValueError, "max_len must be at least 1"),
])
def test_bad_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_padding_row_starts_at_zero_and_gets_no_gradient_as_in_torch():
    torch = pytest.importorskip("torch")
    layer = L.Embedding(5, 3, padding_idx=-2).astype(np.float64)  # row 3, counted from the end as torch does
    assert layer.padding == 3 and not layer.params["weight"][3].any() and layer.params["weight"][2].all()
    layer.params["weight"][3] = 0.5  # a padding row set by hand is looked up as it is
    x = np.array([[3, 1, 3], [0, 3, 4]])
    module = torch.nn.Embedding(5, 3, padding_idx=-2).double()
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(layer.params["weight"]))
    dy = np.random.default_rng(0).standard_normal((2, 3, 3))
    y = layer.forward(x, training=True)
    layer.backward(dy)
    ty = module(torch.from_numpy(x))
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.grads["weight"], module.weight.grad.numpy(), rtol=1e-12)
    assert not layer.grads["weight"][3].any()


def test_weights_are_standard_normal():
    for layer in (L.Embedding(400, 50), L.PositionalEmbedding(400, 50)):
        weight = nk.Sequential([layer], seed=0).params["0.weight"]
        assert abs(weight.mean()) < 0.02 and abs(weight.std() - 1.0) < 0.02


def test_shape_errors_name_the_layer_and_the_fix():
    with pytest.raises(ValueError, match=r"sequences of 7 tokens are longer than max_len 6; build it with "
                                         r"max_len >= 7"):
        L.PositionalEmbedding(6, 2).forward(np.zeros((1, 7, 2)))
    with pytest.raises(ValueError, match=r"expects input of shape \(N, T, 2\), got \(1, 3, 3\)"):
        L.PositionalEmbedding(6, 2).forward(np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match=r"GlobalAvgPool1D\(\) expects input of shape \(N, T, D\), got \(2, 3\)"):
        L.GlobalAvgPool1D().forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"any \(N, \.\.\., 4\) fits too"):
        L.Dense(4, 2).forward(np.zeros((2, 3, 5)))
    assert nk.Sequential([L.Embedding(9, 4), L.Dense(4, 2), L.GlobalAvgPool1D()]).output_shape((3, 7)) == (3, 2)


def test_a_token_model_saves_and_loads_with_its_padding_row(tmp_path):
    model = nk.Sequential([L.Embedding(6, 4, padding_idx=-1), L.PositionalEmbedding(5, 4), L.GlobalAvgPool1D()],
                          seed=3)
    nk.save(model, tmp_path / "tokens.safetensors")
    loaded = nk.load(tmp_path / "tokens.safetensors")
    assert loaded[0].padding == 5 and loaded.get_config() == model.get_config()
    X, _ = token_data()
    np.testing.assert_array_equal(loaded.forward(X), model.forward(X))


# -- integer inputs through training -------------------------------------------------------------
def test_integer_inputs_train_on_the_compiled_path_as_on_the_layer_path():
    """Per-sample labels: tokens -> embedding -> positions -> mean over tokens -> classes."""
    X, _ = token_data(n=37)
    y = X[:, 0] % 3

    def make():
        return nk.Sequential([L.Embedding(6, 4), L.PositionalEmbedding(5, 4), L.Dense(4, 8), L.ReLU(),
                              L.GlobalAvgPool1D(), L.Dense(8, 3)], seed=1)

    trainer = make_trainer(make(), nk.losses.SoftmaxCrossEntropy(), nk.optimizers.Adam(), X.shape[1:], 8)
    assert isinstance(trainer, CompiledTrainer)
    assert "inputs int64" in trainer.step.source
    assert trainer.output(8).dtype == np.float32 and trainer._activations[8, 0][0][0].dtype == np.int64
    models = [make(), make()]
    logs = [nk.train(m, X, y, epochs=2, batch_size=8, seed=0, compiled=compiled, validation_data=(X[:9], y[:9]))
            for m, compiled in zip(models, (True, False))]
    for key in models[0].params:
        np.testing.assert_allclose(models[0].params[key], models[1].params[key], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(logs[0]["val_loss"], logs[1]["val_loss"], rtol=1e-5)


@pytest.mark.parametrize("compiled", [True, False])
def test_token_labels_train_with_the_mean_over_tokens_and_count_tokens(compiled):
    X, y = token_data()
    model = sequence_model()
    assert model.output_shape(X.shape) == (40, 5, 6)
    # the default loss for (N, T) integer labels of (N, T, V) outputs is cross-entropy; an SGD step
    # too small to change any prediction makes the epoch's accuracy the model's
    history = nk.train(model, X, y, epochs=1, batch_size=8, seed=0, compiled=compiled, optimizer="sgd", lr=1e-12,
                       validation_data=(X[:10], y[:10]))
    predicted = model.predict(X).argmax(axis=-1)
    assert history["accuracy"][-1] == pytest.approx((predicted == y).mean())
    scores = nk.evaluate(model, X, y)
    assert scores["accuracy"] == pytest.approx((predicted == y).mean())
    assert history["val_accuracy"][-1] == pytest.approx((predicted[:10] == y[:10]).mean())
    logits = model.predict(X).reshape(-1, 6)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    mean_nll = -np.log(probs[np.arange(200), y.ravel()]).mean()
    assert scores["loss"] == pytest.approx(mean_nll, rel=1e-5)
    trained = nk.train(sequence_model(), X, y, epochs=30, batch_size=8, seed=0, lr=0.05, compiled=compiled)
    assert trained["accuracy"][-1] > 0.95  # the successor task is learnt token by token


def test_token_labels_train_split_as_whole():
    """The split mode's halves (4 and 3 rows of 7) gather their own (N, T) labels."""
    X, y = token_data()
    models = [sequence_model().astype(np.float64) for _ in range(2)]
    logs = [nk.train(m, X, y, epochs=2, batch_size=7, seed=0, split_batches=split)
            for m, split in zip(models, (True, False))]
    np.testing.assert_allclose(logs[0]["loss"], logs[1]["loss"], rtol=1e-12)
    assert logs[0]["accuracy"] == logs[1]["accuracy"]
    for key in models[0].params:
        np.testing.assert_allclose(models[0].params[key], models[1].params[key], rtol=1e-10, atol=1e-14)


def test_token_labels_must_match_the_outputs_tokens():
    loss = nk.losses.SoftmaxCrossEntropy()
    with pytest.raises(ValueError, match=r"labels must have shape \(N, 5\), one class index per token of the "
                                         r"outputs \(N, 5, 6\), got \(4,\)"):
        loss.forward(np.zeros((4, 5, 6)), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\]"):
        loss.forward(np.zeros((4, 5, 6)), np.full((4, 5), 6))
    with pytest.raises(ValueError, match="labels must be a 1-D array of class indices"):
        loss.forward(np.zeros((4, 6)), np.zeros((4, 5), np.int64))
    with pytest.raises(ValueError, match=r"2 dimensions \(N, C\), or 3 \(N, T, C\)"):
        loss.forward(np.zeros(4), np.zeros(4, np.int64))
    X, y = token_data()
    with pytest.raises(ValueError, match=r"y_val: labels must have shape \(N, 5\)"):
        nk.train(sequence_model(), X, y, epochs=1, loss="cross_entropy", validation_data=(X, y[:, 0]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_token_cross_entropy_matches_torch_on_the_flattened_rows(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    logits = (3 * rng.standard_normal((3, 4, 5))).astype(dtype)
    labels = rng.integers(0, 5, (3, 4))
    loss = nk.losses.SoftmaxCrossEntropy()
    value = loss.forward(logits, labels)
    grad = loss.backward()
    t_logits = torch.from_numpy(logits.reshape(12, 5).copy()).requires_grad_()
    t_value = torch.nn.CrossEntropyLoss()(t_logits, torch.from_numpy(labels.reshape(12)))
    t_value.backward()
    tolerance = 1e-6 if dtype == np.float64 else 1e-4
    assert value == pytest.approx(t_value.item(), rel=tolerance)
    np.testing.assert_allclose(grad.reshape(12, 5), t_logits.grad.numpy(), rtol=tolerance, atol=tolerance * 1e-2)
    if dtype == np.float64:
        check_loss_gradients(loss, logits, labels)


# -- CUDA (the simulator without a GPU) ------------------------------------------------------------
@pytest.mark.cuda
def test_a_token_model_trains_on_the_gpu_as_on_the_cpu():
    """The device trainer: int64 tokens and (N, T) labels kept on the device, gathered there."""
    X, y = token_data(n=6, t=3, vocab=4)
    models = [sequence_model(vocab=4, t=3, d=2).astype(np.float64) for _ in range(2)]
    cpu = nk.train(models[0], X, y, epochs=1, batch_size=3, seed=0, compiled=False)
    gpu = nk.train(models[1], X, y, epochs=1, batch_size=3, seed=0, device="cuda")
    models[1].to("cpu")
    assert gpu["accuracy"] == cpu["accuracy"]
    np.testing.assert_allclose(gpu["loss"], cpu["loss"], rtol=1e-10)
    for key in models[0].params:
        np.testing.assert_allclose(models[1].params[key], models[0].params[key], rtol=1e-9, atol=1e-12)


@pytest.mark.cuda
def test_indices_on_the_gpu_are_used_as_they_are_and_guarded_by_the_kernels():
    from nkernels.runtime import devices

    layer = L.Embedding(4, 2).astype(np.float64).to("cuda")
    with pytest.raises(TypeError, match="int32 GPU array; this layer takes int64 indices"):
        layer.forward(devices.to_device(np.zeros((1, 2), np.int32)))
    out = devices.to_host(layer.forward(devices.to_device(np.array([[1, 9]]))))  # not copied back to check it
    np.testing.assert_array_equal(out[0, 0], devices.to_host(layer.params["weight"])[1])
    assert np.isnan(out[0, 1]).all()  # the out-of-range index reads nothing


# -- the digits as tokens --------------------------------------------------------------------------
@pytest.mark.slow
def test_digits_pixels_as_tokens_reach_90_percent(digits):
    """The digits' raw pixel values are the integers 0-16: 64 tokens of a 17-word vocabulary, each
    embedded with its position, a per-token Dense and ReLU, the mean over tokens, a Dense to the
    classes (no attention). Measured: 95.4% (seed 0) and 93.7% (seed 1) on the test split."""
    X, y, X_test, y_test = digits
    tokens, tokens_test = (np.rint(a * 16).astype(np.int64) for a in (X, X_test))
    assert tokens.min() == 0 and tokens.max() == 16 and np.array_equal(tokens / 16, X)
    for seed in (0, 1):
        model = nk.Sequential([L.Embedding(17, 32), L.PositionalEmbedding(64, 32), L.Dense(32, 128), L.ReLU(),
                               L.GlobalAvgPool1D(), L.Dense(128, 10)], seed=seed)
        nk.train(model, tokens, y, epochs=30, batch_size=32, seed=seed, lr=1e-2, schedule="cosine")
        assert nk.evaluate(model, tokens_test, y_test)["accuracy"] >= 0.90
