"""Each ADMM sub-step against a float64 reference written here: closed forms, grid searches, lstsq."""
import numpy as np
import pytest

from nkernels_admm import kernels, updates

# a dense grid of candidate values: the closed forms must be global minimizers over it
GRID = np.linspace(-6.0, 6.0, 240001)


def relu(x):
    return np.maximum(x, 0.0)


def test_relu_preactivation_update_is_the_global_minimizer():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.normal(0, 1.5, (40, 5)), np.zeros((2, 5))])  # a = 0 is a common case
    m = rng.normal(0, 2.0, a.shape)
    z = np.empty_like(a)
    gamma, beta = 10.0, 1.0
    kernels.relu_preactivation_update(a, m, gamma, beta, z)

    def objective(zz, ai, mi):
        return gamma * (ai - relu(zz)) ** 2 + beta * (zz - mi) ** 2

    for ai, mi, zi in zip(a.ravel(), m.ravel(), z.ravel()):
        # the reference: minimize each branch of the piecewise problem, keep the better one
        positive = max((gamma * ai + beta * mi) / (gamma + beta), 0.0)
        negative = min(mi, 0.0)
        best = min(objective(positive, ai, mi), objective(negative, ai, mi))
        assert objective(zi, ai, mi) == pytest.approx(best, rel=1e-12, abs=1e-12)
        assert objective(zi, ai, mi) <= objective(GRID, ai, mi).min() + 1e-9


@pytest.mark.parametrize("beta", [1.0, 0.3])
def test_hinge_output_update_is_the_global_minimizer(beta):
    rng = np.random.default_rng(1)
    m = rng.normal(0.3, 1.5, (30, 4))
    lam = rng.normal(0, 0.8, m.shape)
    targets = np.eye(4)[rng.integers(0, 4, 30)]
    z = np.empty_like(m)
    kernels.hinge_output_update(targets, lam, m, beta, z)

    def objective(zz, t, li, mi):
        hinge = np.maximum(1.0 - zz, 0.0) if t == 1 else np.maximum(zz, 0.0)
        return hinge + li * zz + beta * (zz - mi) ** 2

    for t, li, mi, zi in zip(targets.ravel(), lam.ravel(), m.ravel(), z.ravel()):
        on_grid = objective(GRID, t, li, mi)
        assert objective(zi, t, li, mi) <= on_grid.min() + 1e-9
        assert zi == pytest.approx(GRID[on_grid.argmin()], abs=1e-4)  # the objective is strictly convex


def test_least_squares_output_update_zeroes_the_gradient():
    rng = np.random.default_rng(2)
    m, lam, targets = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    beta = 1.7
    z = np.empty_like(m)
    kernels.least_squares_output_update(targets, lam, m, beta, z)
    # d/dz [(z - t)^2 + lam z + beta (z - m)^2] = 0
    np.testing.assert_allclose(2 * (z - targets) + lam + 2 * beta * (z - m), 0.0, atol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_weight_update_is_the_ridge_regression(bias, weight_decay):
    rng = np.random.default_rng(3)
    n, k, out = 50, 6, 3
    A, Z = rng.normal(size=(n, k)), rng.normal(size=(n, out))
    factor = updates.factor_gram(updates.gram(A, bias), n, weight_decay, bias)
    weight, b = updates.solve_weights(factor, updates.cross(A, Z, bias), bias)

    # reference: least squares on the data stacked over sqrt(n tau) I rows (the bias unpenalized)
    design = np.hstack([A, np.ones((n, 1))]) if bias else A
    penalty = np.hstack([np.sqrt(n * weight_decay) * np.eye(k), np.zeros((k, design.shape[1] - k))])
    solution = np.linalg.lstsq(np.vstack([design, penalty]), np.vstack([Z, np.zeros((k, out))]), rcond=None)[0]
    np.testing.assert_allclose(weight, solution[:k].T, rtol=1e-10, atol=1e-12)
    if bias:
        np.testing.assert_allclose(b, solution[k], rtol=1e-10, atol=1e-12)
    else:
        assert b is None


def test_a_singular_weight_system_without_weight_decay_says_what_to_do():
    A = np.zeros((10, 3))  # a feature that is always 0, as the corner pixels of digits
    with pytest.raises(ValueError, match="weight_decay > 0"):
        updates.factor_gram(updates.gram(A, True), 10, 0.0, True)


def test_activation_update_solves_the_stacked_least_squares():
    rng = np.random.default_rng(4)
    n, k, out = 20, 5, 4
    Z, Z_next = rng.normal(size=(n, k)), rng.normal(size=(n, out))
    W, b = rng.normal(size=(out, k)), rng.normal(size=out)
    beta, gamma = 1.3, 10.0
    A = updates.update_activations(Z, Z_next, W, b, beta, gamma)
    for i in range(n):
        # argmin_a gamma ||a - relu(z)||^2 + beta ||z_next - W a - b||^2, as one least-squares problem
        lhs = np.vstack([np.sqrt(beta) * W, np.sqrt(gamma) * np.eye(k)])
        rhs = np.concatenate([np.sqrt(beta) * (Z_next[i] - b), np.sqrt(gamma) * relu(Z[i])])
        np.testing.assert_allclose(A[i], np.linalg.lstsq(lhs, rhs, rcond=None)[0], rtol=1e-10, atol=1e-12)


def test_gram_and_cross_products_add_up_over_shards():
    rng = np.random.default_rng(5)
    A, Z = rng.normal(size=(30, 4)), rng.normal(size=(30, 2))
    design = np.hstack([A, np.ones((30, 1))])
    np.testing.assert_allclose(updates.gram(A[:12], True) + updates.gram(A[12:], True), design.T @ design)
    np.testing.assert_allclose(updates.cross(A[:12], Z[:12], True) + updates.cross(A[12:], Z[12:], True),
                               design.T @ Z)


def test_loss_sum():
    out = np.array([[2.0, -0.5], [0.3, 0.8]])
    targets = np.array([[1.0, 0.0], [0.0, 1.0]])
    # hinge: max(1 - z, 0) for a target of 1, max(z, 0) for a target of 0
    assert updates.loss_sum(out, targets, "hinge") == pytest.approx(0.0 + 0.0 + 0.3 + 0.2)
    assert updates.loss_sum(out, targets, "least_squares") == pytest.approx(1.0 + 0.25 + 0.09 + 0.04)
