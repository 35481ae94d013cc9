"""The linear-algebra steps of ADMM: Gram matrices, regularized least squares and the activation update.

Arrays hold one sample per row, as nkernels does: ``A`` (N, in), ``Z`` (N, out), and a Dense
layer's ``weight`` (out, in) and ``bias`` (out,). A layer with a bias regresses on ``[A, 1]``.
Every system is symmetric positive definite and solved by Cholesky (LAPACK ``potrf``/``potrs``
through SciPy); no inverse is ever formed.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve


def affine(A: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``A @ weight.T + bias``: a Dense layer's pre-activations for the rows of ``A``."""
    out = A @ weight.T
    if bias is not None:
        out += bias
    return out


def gram(A: np.ndarray, bias: bool) -> np.ndarray:
    """The Gram matrix of ``[A, 1]`` (or of ``A`` without a bias), ``(in + 1, in + 1)``."""
    if not bias:
        return A.T @ A
    k = A.shape[1]
    G = np.empty((k + 1, k + 1))
    G[:k, :k] = A.T @ A
    G[:k, k] = G[k, :k] = A.sum(axis=0)
    G[k, k] = A.shape[0]
    return G


def cross(A: np.ndarray, Z: np.ndarray, bias: bool) -> np.ndarray:
    """``[A, 1].T @ Z`` (or ``A.T @ Z`` without a bias), ``(in + 1, out)``."""
    if not bias:
        return A.T @ Z
    C = np.empty((A.shape[1] + 1, Z.shape[1]))
    C[:-1] = A.T @ Z
    C[-1] = Z.sum(axis=0)
    return C


def factor_gram(G: np.ndarray, n_samples: int, weight_decay: float, bias: bool):
    """The Cholesky factor of ``G + n_samples * weight_decay * I`` (the bias row is not penalized).

    A ValueError explains a singular system (inputs with constant or duplicate features and no
    weight decay).
    """
    G = G.copy()
    k = G.shape[0] - 1 if bias else G.shape[0]
    G[np.arange(k), np.arange(k)] += n_samples * weight_decay
    try:
        return cho_factor(G, check_finite=False)
    except np.linalg.LinAlgError:
        raise ValueError("the least-squares system of a weight update is singular: some inputs of a layer are "
                         "constant or linearly dependent. Use weight_decay > 0 (for example 1e-4)") from None


def solve_weights(factor, C: np.ndarray, bias: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The ridge solution ``(weight, bias)`` of ``min ||Z - [A, 1] W~.T||^2 + n tau ||W||^2``, from the
    Cholesky ``factor`` of the regularized Gram matrix and the cross products ``C = [A, 1].T @ Z``."""
    solution = cho_solve(factor, C, check_finite=False)  # (in + 1, out)
    if not bias:
        return np.ascontiguousarray(solution.T), None
    return np.ascontiguousarray(solution[:-1].T), np.ascontiguousarray(solution[-1])


def update_activations(Z: np.ndarray, Z_next: np.ndarray, weight_next: np.ndarray, bias_next: np.ndarray | None,
                       beta: float, gamma: float) -> np.ndarray:
    """``argmin_a gamma ||a - relu(z)||^2 + beta ||z_next - W_next a - b_next||^2`` for every row:

    ``a = (beta W.T W + gamma I)^-1 (beta W.T (z_next - b) + gamma relu(z))``, a Cholesky solve
    with one right-hand side per sample.
    """
    k = weight_next.shape[1]
    M = beta * (weight_next.T @ weight_next)
    M[np.arange(k), np.arange(k)] += gamma
    target = Z_next - bias_next if bias_next is not None else Z_next
    rhs = beta * (target @ weight_next) + gamma * np.maximum(Z, 0.0)
    # M is symmetric, so rows solve as a = rhs M^-1: one potrs on the transposed right-hand sides
    return np.ascontiguousarray(cho_solve(cho_factor(M, check_finite=False), rhs.T, check_finite=False).T)


def loss_sum(out: np.ndarray, targets: np.ndarray, loss: str) -> float:
    """The summed loss of network outputs against 0/1 (or real) targets: the paper's binary hinge
    ``max(1 - z, 0)`` / ``max(z, 0)`` on every output, or the squared error."""
    if loss == "hinge":
        return float(np.where(targets > 0.5, np.maximum(1.0 - out, 0.0), np.maximum(out, 0.0)).sum())
    return float(((out - targets) ** 2).sum())
