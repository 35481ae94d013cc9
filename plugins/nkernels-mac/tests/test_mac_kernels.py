"""The kernels against NumPy: the Z-step is a gradient step of each sample's own penalty objective
(checked by finite differences), it lowers that objective, and the W-step of a layer is Adam on its
own least-squares or cross-entropy fit."""
import numpy as np
import pytest

from nkernels_mac import kernels
from nkernels_mac.shards import offsets, pack

ACT = {kernels.IDENTITY: lambda v: v, kernels.RELU: lambda v: np.maximum(v, 0),
       kernels.SIGMOID: lambda v: 1 / (1 + np.exp(-v)), kernels.TANH: np.tanh}


def chain(rng, dims, acts):
    weights = [(rng.normal(size=(dims[k + 1], dims[k])), rng.normal(size=dims[k + 1])) for k in range(len(dims) - 1)]
    dims = np.array(dims, np.int64)
    z_off = np.concatenate([[0], np.cumsum(dims[1:-1])]).astype(np.int64)
    return weights, dims, np.array(acts, np.int64), z_off


def objective(x, z, label, target, weights, acts, z_off, mu, loss_kind):
    """One sample's MAC objective, in NumPy."""
    K = len(weights)
    coords = [x] + [z[z_off[k]:z_off[k + 1]] for k in range(K - 1)]
    total = sum(0.5 * mu * np.sum((coords[k + 1] - ACT[acts[k]](weights[k][0] @ coords[k] + weights[k][1])) ** 2)
                for k in range(K - 1))
    out = weights[-1][0] @ coords[-1] + weights[-1][1]
    if loss_kind == kernels.CROSS_ENTROPY:
        return total + np.log(np.exp(out - out.max()).sum()) + out.max() - out[label]
    return total + np.mean((out - target) ** 2)


def numeric_gradient(f, z, block):
    g = np.zeros_like(z)
    for j in range(*block):
        e = np.zeros_like(z)
        e[j] = 1e-6
        g[j] = (f(z + e) - f(z - e)) / 2e-6
    return g


@pytest.mark.parametrize("loss_kind", [kernels.CROSS_ENTROPY, kernels.SQUARED])
def test_one_z_step_is_a_block_gradient_step_of_the_sample_objective(loss_kind):
    rng = np.random.default_rng(0)
    weights, dims, acts, z_off = chain(rng, [5, 4, 3, 2], [kernels.TANH, kernels.SIGMOID, kernels.IDENTITY])
    n = 3
    X, Z = rng.normal(size=(n, 5)), rng.normal(size=(n, 7))
    labels, targets = rng.integers(0, 2, n), rng.normal(size=(n, 2))
    w_off, b_off = offsets(dims)
    mu, etas = 0.7, np.array([0.05, 0.08])
    new = Z.copy()
    kernels.z_step(X, new, labels, targets, loss_kind, *pack(weights), dims, w_off, b_off, z_off, acts, mu, etas, 1)
    for s in range(n):
        def f(z):
            return objective(X[s], z, labels[s], targets[s], weights, acts, z_off, mu, loss_kind)
        # the first layer's coordinates step from the old point; the second's after the first moved
        first = Z[s] - etas[0] * numeric_gradient(f, Z[s], (0, 4))
        np.testing.assert_allclose(new[s, :4], first[:4], rtol=1e-6, atol=1e-8)
        middle = np.concatenate([new[s, :4], Z[s, 4:]])
        second = middle - etas[1] * numeric_gradient(f, middle, (4, 7))
        np.testing.assert_allclose(new[s, 4:], second[4:], rtol=1e-6, atol=1e-8)


def test_z_steps_with_the_scheme_step_sizes_lower_every_sample_objective():
    from nkernels_mac.run import MACRun

    rng = np.random.default_rng(1)
    weights, dims, acts, z_off = chain(rng, [6, 8, 5, 3], [kernels.RELU, kernels.TANH, kernels.IDENTITY])
    n = 40
    X, Z = rng.normal(size=(n, 6)), rng.normal(size=(n, 13))
    labels = rng.integers(0, 3, n)
    mu = 0.3
    fake = MACRun.__new__(MACRun)  # only step_sizes: the loss kind and the widths
    fake.loss_kind = kernels.CROSS_ENTROPY
    fake.chain = type("Chain", (), {"dims": dims})()
    etas = fake.step_sizes(weights, mu)
    w_off, b_off = offsets(dims)
    new = Z.copy()
    kernels.z_step(X, new, labels, np.empty((0, 0)), kernels.CROSS_ENTROPY, *pack(weights), dims, w_off, b_off,
                   z_off, acts, mu, etas, 5)
    before = [objective(X[s], Z[s], labels[s], None, weights, acts, z_off, mu, kernels.CROSS_ENTROPY)
              for s in range(n)]
    after = [objective(X[s], new[s], labels[s], None, weights, acts, z_off, mu, kernels.CROSS_ENTROPY)
             for s in range(n)]
    assert all(a < b for a, b in zip(after, before))


@pytest.mark.parametrize("loss_kind, act", [(-1, kernels.SIGMOID), (kernels.CROSS_ENTROPY, kernels.IDENTITY),
                                            (kernels.SQUARED, kernels.IDENTITY)])
def test_the_w_step_is_adam_on_the_layer_own_fit(loss_kind, act):
    from nkernels.kernels.cpu.optim import ADAM

    rng = np.random.default_rng(2)
    n, din, dout, batch = 10, 4, 3, 4
    A, T = rng.normal(size=(n, din)), rng.uniform(size=(n, dout))
    labels = rng.integers(0, dout, n)
    W, b = rng.normal(size=(dout, din)), rng.normal(size=dout)
    order = rng.permutation(n)
    hyper = np.array([0.01, 0.9, 0.999, 1e-8, 0.0])
    moments = ((np.zeros(W.size), np.zeros(b.size)), (np.zeros(W.size), np.zeros(b.size)))
    Wk, bk = W.copy(), b.copy()
    step, _ = kernels.fit_layer(A, T, labels, loss_kind, act, order, batch, Wk, bk, moments[0], moments[1], 0,
                                ADAM, hyper, False)
    assert step == 3  # batches of 4, 4 and 2
    m, v = [np.zeros(W.size + b.size) for _ in range(2)]
    theta = np.concatenate([W.ravel(), b])
    for t, start in enumerate(range(0, n, batch), 1):
        rows = order[start:start + batch]

        def fit(theta):
            out = A[rows] @ theta[:W.size].reshape(W.shape).T + theta[W.size:]
            if loss_kind == kernels.CROSS_ENTROPY:
                return np.mean(np.log(np.exp(out).sum(1)) - out[np.arange(len(rows)), labels[rows]])
            if loss_kind == kernels.SQUARED:
                return np.mean((out - T[rows]) ** 2)
            return np.mean(0.5 * ((ACT[act](out) - T[rows]) ** 2).sum(1))
        g = numeric_gradient(fit, theta, (0, theta.size))
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        theta = theta - 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    np.testing.assert_allclose(np.concatenate([Wk.ravel(), bk]), theta, rtol=1e-5, atol=1e-7)
