"""MultiHeadAttention and GELU: PyTorch agreement in training and evaluation, the attention's dropout
(its statistics, its seed and counter), causality, a stable softmax, and the errors before any kernel."""
import numpy as np
import pytest
from numba import njit

import nkernels as nk
from nkernels.kernels.cpu import attention as kernels
from nkernels.kernels.cpu.random import uniform_fill

from layer_cases import torch_counterpart

torch = pytest.importorskip("torch")
L = nk.layers
TOLERANCES = [(np.float64, 1e-6), (np.float32, 1e-4)]


def relative_error(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


def with_random_biases(layer, seed=0):
    """PyTorch starts both biases at 0; random ones make the comparison see them."""
    rng = np.random.default_rng(seed)
    for name in ("in_proj_bias", "out_proj_bias"):
        if name in layer.params:
            layer.params[name][...] = rng.standard_normal(layer.params[name].shape)
    return layer


MODELS = {
    "attention": lambda: with_random_biases(L.MultiHeadAttention(8, 2)),
    "attention-causal-4-heads": lambda: with_random_biases(L.MultiHeadAttention(8, 4, causal=True)),
    "attention-no-bias": lambda: L.MultiHeadAttention(6, 3, bias=False),
    "gelu": lambda: L.GELU(),
    "gelu-tanh": lambda: L.GELU("tanh"),
}


def input_for(layer, rng, dtype):
    shape = (3, 5, layer.embed_dim) if isinstance(layer, L.MultiHeadAttention) else (4, 6)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype, tolerance", TOLERANCES, ids=["float64", "float32"])
@pytest.mark.parametrize("name", MODELS)
def test_training_matches_torch(name, dtype, tolerance):
    """Output, input gradient and every parameter gradient, in training mode (dropout 0)."""
    layer = MODELS[name]().astype(dtype)
    module, pick = torch_counterpart(layer)
    module.train()
    rng = np.random.default_rng(1)
    x = input_for(layer, rng, dtype)
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(dy)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = pick(module(tx))
    ty.backward(torch.from_numpy(dy))
    assert relative_error(y, ty.detach().numpy()) <= tolerance
    assert relative_error(dx, tx.grad.numpy()) <= tolerance
    torch_grads = dict(module.named_parameters())
    assert set(torch_grads) == set(layer.grads)
    for key, value in torch_grads.items():
        assert relative_error(layer.grads[key], value.grad.numpy()) <= tolerance, key


@pytest.mark.parametrize("dtype, tolerance", TOLERANCES, ids=["float64", "float32"])
@pytest.mark.parametrize("make", [MODELS["attention-causal-4-heads"],
                                  lambda: with_random_biases(L.MultiHeadAttention(8, 2, dropout=0.4, seed=3))],
                         ids=["causal", "dropout"])
def test_evaluation_matches_torch(make, dtype, tolerance):
    """Evaluation mode drops nothing, as torch's ``eval()``, whatever the dropout rate."""
    layer = make().astype(dtype)
    module, pick = torch_counterpart(layer)
    module.eval()
    x = input_for(layer, np.random.default_rng(2), dtype)
    counter = layer.buffers["counter"].copy()
    with torch.no_grad():
        expected = pick(module(torch.from_numpy(x))).numpy()
    assert relative_error(layer.forward(x), expected) <= tolerance
    np.testing.assert_array_equal(layer.buffers["counter"], counter)  # no random numbers drawn


def test_the_softmax_is_stable_for_large_scores():
    """Scores in the thousands: exp would overflow (even in float64) without the maximum subtracted first."""
    layer = L.MultiHeadAttention(4, 1).astype(np.float64)
    layer.params["in_proj_weight"][...] *= 300.0
    x = np.random.default_rng(0).standard_normal((2, 6, 4))
    module, pick = torch_counterpart(layer)
    y = layer.forward(x, training=True)
    dx = layer.backward(np.ones_like(y))
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = pick(module(tx))
    ty.backward(torch.ones_like(ty))
    w = layer.params["in_proj_weight"]
    scores = (x @ w[:4].T) @ (x @ w[4:8].T).transpose(0, 2, 1) / 2.0
    assert scores.max() > 1000  # exp(1000) overflows
    assert relative_error(y, ty.detach().numpy()) <= 1e-6
    assert relative_error(dx, tx.grad.numpy()) <= 1e-6


def test_causal_attention_ignores_later_tokens():
    layer = L.MultiHeadAttention(6, 2, causal=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 6))
    changed = x.copy()
    changed[:, 3:] = rng.standard_normal((2, 2, 6))
    y, y_changed = layer.forward(x), layer.forward(changed)
    np.testing.assert_array_equal(y[:, :3], y_changed[:, :3])
    assert not np.allclose(y[:, 3:], y_changed[:, 3:])
    full = L.MultiHeadAttention(6, 2)
    full.params.update({k: v.copy() for k, v in layer.params.items()})
    assert not np.allclose(full.forward(x)[:, :3], full.forward(changed)[:, :3])  # without the mask they see it


# -- dropout of the attention weights -----------------------------------------------------------------


def run_forward(n=40, heads=2, t=6, e=4, p=0.3, seed=11, counter=0, causal=False, dtype=np.float64):
    """The CPU forward kernel on random data: (mask, attn, out, counter after)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, t, e)).astype(dtype)
    w_in = rng.standard_normal((3 * e, e)).astype(dtype) / np.sqrt(e)
    w_out = rng.standard_normal((e, e)).astype(dtype) / np.sqrt(e)
    no_bias = np.zeros(0, dtype)
    qkv, ctx, out = (np.empty((n, t, w), dtype) for w in (3 * e, e, e))
    attn, mask = np.empty((n, heads, t, t), dtype), np.full((n, heads, t, t), np.nan, dtype)
    counters = np.array([counter], np.int64)
    kernels.attention_forward(x, w_in, no_bias, w_out, no_bias, heads, causal, p, np.array([seed], np.int64),
                              counters, qkv, attn, mask, ctx, out)
    return mask, attn, out, int(counters[0])


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_drops_the_expected_fraction_of_weights(p):
    n, heads, t = 50, 2, 6
    mask, attn, _, counter = run_forward(n=n, heads=heads, t=t, p=p)
    assert counter == n * heads * t * t  # one counter per weight, masked ones included
    assert set(np.unique(mask)) == {0.0, 1.0 / (1.0 - p)}
    dropped = (mask == 0).mean()
    sd = np.sqrt(p * (1 - p) / mask.size)
    assert abs(dropped - p) <= 4 * sd, f"dropped {dropped:.4f} of the weights, expected {p} +- {sd:.4f}"
    np.testing.assert_allclose(attn.sum(-1), 1.0, rtol=1e-12)  # the saved weights are before the dropout


def test_dropout_preserves_the_expectation():
    """The mean output over many training calls (each with new masks) tends to the evaluation output:
    each element within 4 standard errors of it."""
    layer = with_random_biases(L.MultiHeadAttention(4, 2, dropout=0.3, seed=1)).astype(np.float64)
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    expected = layer.forward(x)
    draws = np.stack([layer.forward(x, training=True) for _ in range(1000)])
    assert layer.buffers["counter"][0] == 1000 * 2 * 2 * 3 * 3
    standard_error = draws.std(0) / np.sqrt(len(draws))
    z = np.abs(draws.mean(0) - expected) / standard_error
    assert z.max() <= 4.0, f"the mean output is {z.max():.1f} standard errors from the evaluation output"


def test_the_masks_come_from_the_seed_and_the_counter():
    x = np.random.default_rng(0).standard_normal((3, 4, 6))
    make = lambda seed: L.MultiHeadAttention(6, 3, dropout=0.5, seed=seed)  # noqa: E731
    a, b, other = make(4), make(4), make(5)
    b.params.update({k: v.copy() for k, v in a.params.items()})
    other.params.update({k: v.copy() for k, v in a.params.items()})
    first = a.forward(x, training=True)
    np.testing.assert_array_equal(first, b.forward(x, training=True))
    assert not np.array_equal(first, other.forward(x, training=True))
    assert not np.array_equal(first, a.forward(x, training=True))  # the counter moved on: new masks
    # the same masks from the same (seed, counter): a copy carries both buffers
    copy = nk.Sequential([a]).copy()[0]
    np.testing.assert_array_equal(copy.forward(x, training=True), a.forward(x, training=True))
    # the kernel's mask of weight (n, h, i, j) is the counter-based draw of its flat index
    mask, *_ = run_forward(n=2, heads=2, t=3, p=0.5, seed=9, counter=100)
    draws = np.empty(mask.size)
    uniform_fill(9, 100, draws)
    np.testing.assert_array_equal(mask.ravel() != 0, draws >= 0.5)


@njit
def _core_by_rows(qkv, dctx, heads, causal, p, key, base, attn, mask, ctx, dattn, dqkv):
    """The forward and backward cores, a row function call per row (the CUDA twins' threads)."""
    for n in range(qkv.shape[0]):
        for h in range(heads):
            for i in range(qkv.shape[1]):
                kernels._attention_row_forward(qkv, heads, causal, p, key, base, n, h, i, attn, mask, ctx)
            for i in range(qkv.shape[1]):
                kernels._attention_row_backward_query(qkv, attn, mask, dctx, heads, causal, p, n, h, i, dattn, dqkv)
            for j in range(qkv.shape[1]):
                kernels._attention_row_backward_key(qkv, attn, mask, dctx, dattn, heads, causal, p, n, h, j, dqkv)


def _core_by_groups(qkv, dctx, heads, causal, p, key, base, attn, mask, ctx, dattn, dqkv):
    kernels._attention_core_forward(qkv, heads, causal, p, key, base, attn, mask, ctx)
    kernels._attention_core_backward(qkv, attn, mask, dctx, heads, causal, p, dattn, dqkv)


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-6), (np.float64, 1e-12)], ids=["float32", "float64"])
@pytest.mark.parametrize("causal, p", [(False, 0.0), (True, 0.0), (False, 0.4), (True, 0.4)])
@pytest.mark.parametrize("n, t, heads, d", [(3, 5, 2, 3), (5, 8, 4, 8), (1, 1, 1, 1), (9, 2, 3, 2)])
def test_the_cpu_core_computes_what_the_rows_of_the_cuda_twins_do(n, t, heads, d, causal, p, dtype, rtol):
    """The CPU core's groups of pairs and the row functions the CUDA twins compile: the same sums in
    the same order; only the exponentials' last bits may differ (vecmath's against libm's). Shapes
    with fewer pairs than a group, more (27 = 16 + 11), and the dropout masks (exact)."""
    rng = np.random.default_rng(n * t)
    qkv = rng.standard_normal((n, t, 3 * heads * d)).astype(dtype)
    dctx = rng.standard_normal((n, t, heads * d)).astype(dtype)
    results = []
    for core in (_core_by_groups, _core_by_rows):
        attn, mask, dattn = (np.full((n, heads, t, t), np.nan, dtype) for _ in range(3))
        ctx, dqkv = np.full(dctx.shape, np.nan, dtype), np.full(qkv.shape, np.nan, dtype)
        core(qkv, dctx, heads, causal, p, 7, np.uint64(11), attn, mask, ctx, dattn, dqkv)
        results.append((attn, ctx, dattn, dqkv, mask))
    (*by_groups, groups_mask), (*by_rows, rows_mask) = results
    if p > 0:
        np.testing.assert_array_equal(groups_mask, rows_mask)
    for groups, rows in zip(by_groups, by_rows):
        assert not np.isnan(rows).any()
        np.testing.assert_allclose(groups, rows, rtol=rtol, atol=rtol)


def test_seeded_models_draw_the_same_masks():
    x = np.random.default_rng(0).standard_normal((2, 4, 6))
    a = nk.Sequential([L.MultiHeadAttention(6, 2, dropout=0.5)], seed=3)
    b = nk.Sequential([L.MultiHeadAttention(6, 2, dropout=0.5)], seed=3)
    np.testing.assert_array_equal(a.forward(x, training=True), b.forward(x, training=True))
    assert a[0].seed == b[0].seed


def test_saved_models_resume_the_masks(tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 4, 6))
    model = nk.Sequential([L.MultiHeadAttention(6, 2, dropout=0.5, causal=True)], seed=1)
    model.forward(x, training=True)
    nk.save(model, tmp_path / "attention.safetensors")
    loaded = nk.load(tmp_path / "attention.safetensors")
    np.testing.assert_array_equal(loaded.forward(x, training=True), model.forward(x, training=True))


def test_no_dropout_keeps_no_state():
    """Without dropout (or in evaluation) the passes read no buffer: the counter stays, and the
    compiled step may split batches."""
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    layer = L.MultiHeadAttention(4, 2)
    assert not layer.passes(x.shape).stateful()
    layer.forward(x, training=True)
    assert layer.buffers["counter"][0] == 0
    assert L.MultiHeadAttention(4, 2, dropout=0.1).passes(x.shape).stateful()
    _, _, _, counter = run_forward(p=0.0, counter=7)
    assert counter == 7


# -- errors --------------------------------------------------------------------------------------------


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r"embed_dim \(10\) must be divisible by num_heads \(4\)"):
        L.MultiHeadAttention(10, 4)
    with pytest.raises(ValueError, match="dropout"):
        L.MultiHeadAttention(8, 2, dropout=1.5)
    with pytest.raises(TypeError, match="causal"):
        L.MultiHeadAttention(8, 2, causal=1)
    with pytest.raises(TypeError, match="num_heads"):
        L.MultiHeadAttention(8, 2.0)
    with pytest.raises(ValueError, match="approximate must be one of 'none', 'tanh'"):
        L.GELU("exact")
    with pytest.raises(TypeError, match="approximate"):
        L.GELU(True)


@pytest.mark.parametrize("shape", [(2, 8), (2, 3, 6), (2, 3, 8, 1)])
def test_inputs_of_the_wrong_shape_are_refused(shape):
    with pytest.raises(ValueError, match=r"expects input of shape \(N, T, 8\)"):
        L.MultiHeadAttention(8, 2).forward(np.zeros(shape))


def test_a_model_with_attention_saves_its_config():
    model = nk.Sequential([L.MultiHeadAttention(8, 4, dropout=0.1, bias=False, causal=True, seed=2), L.GELU("tanh")])
    rebuilt = nk.Sequential.from_config(model.get_config())
    assert rebuilt.get_config() == model.get_config()
    assert nk.registry.layers["multiheadattention"] is L.MultiHeadAttention
    assert nk.registry.layers["gelu"] is L.GELU


# -- learning ------------------------------------------------------------------------------------------


def copy_sequences(n, seed, vocabulary=6, half=4):
    """Next-token data: ``half`` random tokens, then the same tokens again. The inputs are the
    sequence but its last token (N, 2 half - 1), the labels the sequence shifted by one: the
    label at position ``i`` is token ``i + 1``. Returns (inputs, labels)."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, vocabulary, (n, half))
    tokens = np.concatenate([first, first], 1)
    return tokens[:, :-1], tokens[:, 1:]


def token_model(vocabulary, length, causal, seed, dim=16):
    """Token and position embeddings, one attention layer, logits over the vocabulary per token."""
    return nk.Sequential([L.Embedding(vocabulary, dim), L.PositionalEmbedding(length, dim),
                          L.MultiHeadAttention(dim, 2, causal=causal), L.Dense(dim, vocabulary)], seed=seed)


def copy_accuracies(causal, seed, vocabulary=6, half=4):
    """(token accuracy on the repeated half, on the first half) after training on the copying task."""
    x, y = copy_sequences(2000, seed=seed, vocabulary=vocabulary, half=half)
    x_test, y_test = copy_sequences(500, seed=100 + seed, vocabulary=vocabulary, half=half)
    model = token_model(vocabulary, 2 * half - 1, causal, seed)
    nk.train(model, x, y, loss="softmax_cross_entropy", optimizer="adam", lr=1e-2, epochs=10, batch_size=32,
             seed=seed)
    correct = model.predict(x_test).argmax(-1) == y_test  # (N, T): the next token at each position
    return correct[:, half - 1:].mean(), correct[:, :half - 1].mean()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_a_causal_model_learns_to_continue_a_repeated_sequence(seed):
    """A causal token model (Embedding, PositionalEmbedding, causal attention, Dense to the logits,
    SoftmaxCrossEntropy over (N, T, V)) learns next-token prediction on the copying task: from the
    middle on, the next token is the one ``half`` tokens back, which only attention by position can
    fetch. The first half's next tokens are random and in the future, so a causal model cannot beat
    chance there; the same model without the mask reads them (the last assertion would fail)."""
    vocabulary = 6
    copied, guessed = copy_accuracies(causal=True, seed=seed, vocabulary=vocabulary)
    assert copied >= 0.95, f"token accuracy {copied:.3f} on the repeated half"
    assert guessed <= 1 / vocabulary + 0.05, f"token accuracy {guessed:.3f} on unseen random tokens: a causal leak?"


@pytest.mark.slow
def test_without_the_mask_the_copying_check_fails():
    """The control of the test above: the same model, not causal, predicts the first half's next tokens
    (it reads them), so the test's bound on ``guessed`` does catch a leak."""
    _, guessed = copy_accuracies(causal=False, seed=0)
    assert guessed >= 0.9, f"a model that sees the future reached only {guessed:.3f} on the first half"
