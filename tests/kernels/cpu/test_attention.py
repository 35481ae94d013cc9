"""The CPU attention kernels (nkernels.kernels.cpu.attention) against the naive reference: the output,
the softmax weights and the dropout mask, and gradients against torch's autograd of the same expression."""
import numpy as np
import pytest

import naive
from nkernels.kernels.cpu import attention

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
CASES = [(2, 5, 6, 2, 0.0, False, True), (3, 4, 8, 4, 0.3, True, False), (1, 1, 3, 1, 0.0, True, True)]


def arrays(n, t, e, heads, bias, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, t, e)).astype(dtype)
    w_in = (rng.standard_normal((3 * e, e)) / np.sqrt(e)).astype(dtype)
    w_out = (rng.standard_normal((e, e)) / np.sqrt(e)).astype(dtype)
    b_in = (rng.standard_normal(3 * e) if bias else np.zeros(0)).astype(dtype)
    b_out = (rng.standard_normal(e) if bias else np.zeros(0)).astype(dtype)
    saved = {"qkv": np.zeros((n, t, 3 * e), dtype), "attn": np.zeros((n, heads, t, t), dtype),
             "mask": np.zeros((n, heads, t, t), dtype), "ctx": np.zeros((n, t, e), dtype)}
    return x, w_in, b_in, w_out, b_out, saved


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, t, e, heads, p, causal, bias", CASES)
def test_forward_matches_naive(n, t, e, heads, p, causal, bias, dtype):
    x, w_in, b_in, w_out, b_out, saved = arrays(n, t, e, heads, bias, dtype)
    seed, counter = np.array([9], np.int64), np.array([40], np.int64)
    out = np.full((n, t, e), np.nan, dtype)
    attention.attention_forward(x, w_in, b_in, w_out, b_out, heads, causal, p, seed, counter, *saved.values(), out)
    ref_out, ref_attn, ref_mask = naive.attention(x, w_in, b_in, w_out, b_out, heads, causal, p, 9, 40)
    np.testing.assert_allclose(out, ref_out, **TOL[dtype])
    np.testing.assert_allclose(saved["attn"], ref_attn, **TOL[dtype])
    if p > 0:
        np.testing.assert_allclose(saved["mask"], ref_mask, rtol=1e-6)
    assert counter[0] == 40 + (n * heads * t * t if p > 0 else 0)


@pytest.mark.parametrize("n, t, e, heads, p, causal, bias", CASES)
def test_backward_matches_autograd_of_the_forward(n, t, e, heads, p, causal, bias):
    torch = pytest.importorskip("torch")
    x, w_in, b_in, w_out, b_out, saved = arrays(n, t, e, heads, bias, np.float64)
    out = np.empty_like(x)
    attention.attention_forward(x, w_in, b_in, w_out, b_out, heads, causal, p, np.array([3], np.int64),
                                np.array([0], np.int64), *saved.values(), out)
    dy = np.random.default_rng(2).standard_normal(x.shape)
    grads = [np.full_like(a, np.nan) for a in (x, w_in, b_in, w_out, b_out)]
    work = [np.zeros((n, t, e)), np.zeros((n, heads, t, t)), np.zeros((n, t, 3 * e))]
    attention.attention_backward(x, dy, w_in, w_out, heads, causal, p, *saved.values(), True, *work, *grads)

    tx, tw_in, tb_in, tw_out, tb_out = (torch.tensor(a, requires_grad=True) for a in (x, w_in, b_in, w_out, b_out))
    d = e // heads
    qkv = tx @ tw_in.T + (tb_in if bias else 0)
    q, k, v = (qkv[..., part * e:(part + 1) * e].reshape(n, t, heads, d).transpose(1, 2) for part in range(3))
    scores = q @ k.transpose(-1, -2) / d ** 0.5
    if causal:
        scores = scores.masked_fill(~torch.tril(torch.ones(t, t, dtype=torch.bool)), float("-inf"))
    mask = torch.tensor(saved["mask"]) if p > 0 else 1.0  # the kernel's own mask: dropout is not differentiated
    ctx = ((torch.softmax(scores, -1) * mask) @ v).transpose(1, 2).reshape(n, t, e)
    (ctx @ tw_out.T + (tb_out if bias else 0)).backward(torch.tensor(dy))
    np.testing.assert_allclose(out, (ctx @ tw_out.T + (tb_out if bias else 0)).detach().numpy(), rtol=1e-10)
    for got, param in zip(grads, (tx, tw_in, tb_in, tw_out, tb_out)):
        if param.grad is not None:
            np.testing.assert_allclose(got, param.grad.numpy(), rtol=1e-9, atol=1e-12)
