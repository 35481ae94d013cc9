"""The ES building blocks: the noise table, fitness shaping, the gradient estimate and the population kernel."""
import pickle

import numpy as np
import pytest

import nkernels as nk
from nkernels_es.estimate import centered_ranks, gradient_estimate, shape_fitness
from nkernels_es.noise import NoiseTable
from nkernels_es.population import LayerwiseProblem, flat_parameters, make_problem

L = nk.layers


# -- slow, readable references (float64) ---------------------------------------------------------
def reference_estimate(table, offsets, returns, dim):
    """g = sum_i (r+_i - r-_i) eps_i / (2n), one pair at a time."""
    g = np.zeros(dim)
    for i, offset in enumerate(offsets):
        g += (returns[i, 0] - returns[i, 1]) * table[offset:offset + dim].astype(np.float64)
    return g / (2 * len(offsets))


def reference_member_loss(layers, theta, X, y=None, values=None):
    """The loss of the dense chain ``layers`` = [(n_in, n_out, bias, act)] with flat parameters ``theta``."""
    h, start = X.astype(np.float64), 0
    for n_in, n_out, bias, act in layers:
        W = theta[start:start + n_out * n_in].reshape(n_out, n_in)
        start += n_out * n_in
        h = h @ W.T
        if bias:
            h = h + theta[start:start + n_out]
            start += n_out
        h = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
             None: lambda z: z}[act](h)
    if values is not None:
        return np.mean((h - values) ** 2)
    shifted = h - h.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -np.mean(log_probs[np.arange(len(y)), y])


# -- noise table ---------------------------------------------------------------------------------
def test_noise_table_is_seeded_and_travels_as_its_seed():
    table = NoiseTable(seed=5, size=1000)
    again = pickle.loads(pickle.dumps(table))
    assert len(pickle.dumps(table)) < 200  # the numbers themselves never travel
    np.testing.assert_array_equal(again.table, table.table)
    np.testing.assert_array_equal(table.table, np.random.default_rng(5).standard_normal(1000, dtype=np.float32))
    assert not np.array_equal(NoiseTable(seed=6, size=1000).table, table.table)
    offsets = table.sample_offsets(np.random.default_rng(0), 500, dim=990)
    assert offsets.dtype == np.int64 and offsets.min() >= 0 and offsets.max() <= 10


@pytest.mark.parametrize("kwargs, error, message", [
    ({"seed": -1, "size": 10}, ValueError, "the noise table's seed must be at least 0, got -1"),
    ({"seed": 0, "size": 0}, ValueError, "the noise table's size must be at least 1, got 0"),
    ({"seed": 0, "size": 10, "dtype": np.int32}, TypeError, "float32 or float64"),
])
def test_noise_table_rejects_bad_settings(kwargs, error, message):
    with pytest.raises(error, match=message):
        NoiseTable(**kwargs)


def test_noise_table_smaller_than_the_model_is_a_clear_error():
    with pytest.raises(ValueError, match="pass a larger noise_size"):
        NoiseTable(seed=0, size=10).sample_offsets(np.random.default_rng(0), 4, dim=11)


# -- shaping and the estimate ---------------------------------------------------------------------
def test_centered_ranks_span_minus_half_to_half_and_average_ties():
    ranks = centered_ranks(np.array([[3.0, -1.0], [10.0, 3.0]]))
    np.testing.assert_allclose(ranks, [[1.5 / 3 - 0.5, -0.5], [0.5, 1.5 / 3 - 0.5]])
    np.testing.assert_array_equal(centered_ranks(np.full((4, 2), 7.0)), np.zeros((4, 2)))


def test_estimate_matches_the_pairwise_reference():
    noise = NoiseTable(seed=1, size=5000, dtype=np.float64)
    rng = np.random.default_rng(2)
    offsets = noise.sample_offsets(rng, 64, dim=37)
    returns = rng.standard_normal((64, 2))
    np.testing.assert_allclose(gradient_estimate(noise, offsets, returns, 37),
                               reference_estimate(noise.table, offsets, returns, 37), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("shaping", ["centered_rank", "none"])
def test_antithetic_pairs_cancel_on_a_constant_function(shaping):
    noise = NoiseTable(seed=3, size=10_000)
    offsets = noise.sample_offsets(np.random.default_rng(4), 50, dim=100)
    returns = shape_fitness(np.full((50, 2), -2.5), shaping)
    np.testing.assert_array_equal(gradient_estimate(noise, offsets, returns, 100), np.zeros(100))


def test_estimate_on_a_quadratic_matches_its_gradient_within_the_expected_error():
    # f(theta) = -1/2 (theta - c)^T A (theta - c): f(theta + s e) - f(theta - s e) = 2 s grad.e exactly,
    # so g / s = (1/n) sum_i e_i e_i^T grad, whose error has E|err|^2 = (|grad|^2 (D + 1)) / n.
    dim, pairs, sigma = 20, 4000, 0.1
    rng = np.random.default_rng(5)
    M = rng.standard_normal((dim, dim))
    A, c, theta = M @ M.T / dim + np.eye(dim), rng.standard_normal(dim), rng.standard_normal(dim)

    def f(t):
        return -0.5 * (t - c) @ A @ (t - c)

    true_gradient = -A @ (theta - c)
    noise = NoiseTable(seed=6, size=1_000_000, dtype=np.float64)
    offsets = noise.sample_offsets(rng, pairs, dim)
    returns = np.array([[f(theta + sigma * noise.get(o, dim)), f(theta - sigma * noise.get(o, dim))]
                        for o in offsets])
    estimate = gradient_estimate(noise, offsets, shape_fitness(returns, "none"), dim) / sigma
    expected_sq_error = true_gradient @ true_gradient * (dim + 1) / pairs
    error = estimate - true_gradient
    assert error @ error < 3 * expected_sq_error      # within the estimator's own spread
    assert error @ error > expected_sq_error / 10     # and it is a Monte Carlo estimate, not a copy
    cosine = estimate @ true_gradient / np.linalg.norm(estimate) / np.linalg.norm(true_gradient)
    assert cosine > 0.95


def test_estimate_rejects_mismatched_returns_and_offsets():
    noise = NoiseTable(seed=0, size=100)
    with pytest.raises(ValueError, match="returns must have shape"):
        gradient_estimate(noise, np.array([0, 1]), np.zeros((3, 2)), 10)
    with pytest.raises(ValueError, match="offsets must lie in"):
        gradient_estimate(noise, np.array([0, 95]), np.zeros((2, 2)), 10)


# -- the whole-population kernel ------------------------------------------------------------------
CHAINS = {
    "mlp relu, cross-entropy": ([L.Flatten(), L.Dense(6, 9), L.ReLU(), L.Dense(9, 5), L.ReLU(), L.Dense(5, 3)],
                                [(6, 9, True, "relu"), (9, 5, True, "relu"), (5, 3, True, None)]),
    "tanh/sigmoid, no bias": ([L.Dense(6, 7, bias=False), L.Tanh(), L.Dense(7, 4), L.Sigmoid(),
                               L.Dense(4, 3, bias=False)],
                              [(6, 7, False, "tanh"), (7, 4, True, "sigmoid"), (4, 3, False, None)]),
    "one layer": ([L.Dense(6, 3)], [(6, 3, True, None)]),
}


@pytest.mark.parametrize("chain", list(CHAINS))
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_population_kernel_matches_the_reference(chain, loss, dtype=np.float32, rtol=2e-5):
    layers, description = CHAINS[chain]
    model = nk.Sequential(layers, seed=0, dtype=dtype)
    rng = np.random.default_rng(7)
    X = rng.standard_normal((11, 6)).astype(dtype)  # 11 rows: the 4x4 tiles and the rows left over
    y = rng.integers(0, 3, 11) if loss == "cross_entropy" else rng.standard_normal((11, 3)).astype(dtype)
    theta, layout = flat_parameters(model)
    problem = make_problem(model, layout, X, y, nk.losses.get_loss(loss))
    assert type(problem).__name__ == "DenseChainProblem"
    noise = NoiseTable(seed=8, size=4096, dtype=dtype)
    offsets = noise.sample_offsets(rng, 5, theta.size)
    rows = np.array([3, 0, 7, 10, 1, 5, 9])
    got = problem.losses(theta, noise, offsets, 0.3, rows)
    for i, offset in enumerate(offsets):
        for column, sign in enumerate((1, -1)):
            member = theta.astype(np.float64) + sign * 0.3 * noise.get(offset, theta.size).astype(np.float64)
            target = {"y": y[rows]} if loss == "cross_entropy" else {"values": y[rows]}
            expected = reference_member_loss(description, member, X[rows], **target)
            np.testing.assert_allclose(got[i, column], expected, rtol=rtol, atol=rtol)


def test_layerwise_problem_gives_the_kernel_numbers_for_any_model():
    # in float64, where the two paths agree to rounding
    model = nk.Sequential([L.Dense(6, 8), L.ReLU(), L.Dense(8, 3)], seed=1, dtype=np.float64)
    rng = np.random.default_rng(9)
    X, y = rng.standard_normal((10, 6)), rng.integers(0, 3, 10)
    theta, layout = flat_parameters(model)
    loss = nk.losses.SoftmaxCrossEntropy()
    noise = NoiseTable(seed=2, size=2000, dtype=np.float64)
    offsets = noise.sample_offsets(rng, 4, theta.size)
    rows = np.arange(10)
    compiled = make_problem(model, layout, X, y, loss).losses(theta, noise, offsets, 0.1, rows)
    layerwise = LayerwiseProblem(model, layout, X, y, loss)
    np.testing.assert_allclose(layerwise.losses(theta, noise, offsets, 0.1, rows), compiled, rtol=1e-12)
    np.testing.assert_array_equal(flat_parameters(model)[0], theta)  # the caller's model is left alone
