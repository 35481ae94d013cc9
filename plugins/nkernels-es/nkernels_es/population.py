"""Evaluating a population: the loss of every antithetic pair of members on one minibatch.

A *problem* holds what stays fixed during a run (the training data, the model's structure, the
loss); it is shipped to each Dask worker once. Per generation only the parameters, the pair
offsets into the noise table and the minibatch's row indices travel, and each worker returns the
losses of its slice of the pairs: :func:`evaluate_pairs`.

- :class:`DenseChainProblem`: a chain of Dense layers (each optionally followed by ReLU, Sigmoid
  or Tanh; Flatten allowed) with softmax cross-entropy or MSE. One compiled call evaluates the
  whole population (:func:`nkernels_es.kernels.population_losses`).
- :class:`LayerwiseProblem`: any other model or loss, one member at a time through
  ``model.forward`` (correct for every layer, much slower).
"""
from __future__ import annotations

from typing import Any

import numpy as np

import nkernels as nk
from nkernels.losses import MSE, SoftmaxCrossEntropy

from .noise import NoiseTable


def flat_parameters(model) -> tuple[np.ndarray, dict[str, tuple[int, tuple[int, ...]]]]:
    """The model's parameters as one flat vector (model order) and each one's (start, shape) in it."""
    layout, start = {}, 0
    for key, value in model.params.items():
        layout[key] = (start, tuple(value.shape))
        start += value.size
    theta = np.empty(start, dtype=model.dtype)
    for key, value in model.params.items():
        s, shape = layout[key]
        theta[s:s + value.size] = value.reshape(-1)
    return theta, layout


def parameter_views(theta: np.ndarray, layout: dict[str, tuple[int, tuple[int, ...]]]) -> dict[str, np.ndarray]:
    """Views of ``theta`` shaped as the model's parameters (writing to them writes to ``theta``)."""
    return {key: theta[s:s + int(np.prod(shape, dtype=np.int64))].reshape(shape)
            for key, (s, shape) in layout.items()}


#: the kernels' activation codes (``kernels.ACT_*``; not imported here, so that numba loads only when a run starts)
_ACTIVATIONS = {nk.layers.ReLU: 1, nk.layers.Sigmoid: 2, nk.layers.Tanh: 3}


def dense_chain_spec(model, layout) -> dict[str, np.ndarray] | None:
    """The layer arrays :func:`~nkernels_es.kernels.population_losses` reads, or None when the model
    is not a dense chain (Dense layers, each optionally followed by one activation; Flatten anywhere)."""
    w_start, b_start, n_in, n_out, acts = [], [], [], [], []
    for i, layer in enumerate(model.layers):
        kind = type(layer)
        if kind is nk.layers.Flatten:
            continue
        if kind is nk.layers.Dense:
            w_start.append(layout[f"{i}.weight"][0])
            b_start.append(layout[f"{i}.bias"][0] if f"{i}.bias" in layout else -1)
            n_in.append(layer.in_features)
            n_out.append(layer.out_features)
            acts.append(0)
        elif kind in _ACTIVATIONS and acts and acts[-1] == 0:
            acts[-1] = _ACTIVATIONS[kind]
        else:
            return None
    if not w_start:
        return None
    arrays = dict(w_start=w_start, b_start=b_start, n_in=n_in, n_out=n_out, acts=acts)
    return {k: np.asarray(v, dtype=np.int64) for k, v in arrays.items()}


class DenseChainProblem:
    """A dense chain with cross-entropy or MSE: the whole population in one compiled call.

    ``X2d`` (N, features) of the model's dtype; ``targets`` int64 labels (N,) or values (N, out).
    """

    def __init__(self, spec: dict[str, np.ndarray], X2d: np.ndarray, targets: np.ndarray, loss_kind: int):
        self.spec, self.X, self.targets, self.loss_kind = spec, X2d, targets, loss_kind

    def losses(self, theta: np.ndarray, noise: NoiseTable, offsets: np.ndarray, sigma: float,
               rows: np.ndarray) -> np.ndarray:
        """The (pairs, 2) float64 losses of the members ``theta +- sigma * eps`` on ``X[rows]``."""
        import numba

        from .kernels import population_losses

        X = self.X[rows]
        labels = self.targets[rows] if self.loss_kind == 0 else np.zeros(0, np.int64)
        values = self.targets[rows] if self.loss_kind == 1 else X[:0]
        out = np.empty((len(offsets), 2))
        s = self.spec
        population_losses(X, labels, values, self.loss_kind, theta, noise.table, offsets, sigma, s["w_start"],
                          s["b_start"], s["n_in"], s["n_out"], s["acts"], numba.get_num_threads(), out)
        return out


class LayerwiseProblem:
    """Any model and loss, evaluated one member at a time through ``model.forward`` (evaluation mode).

    The members run on a private copy of the model (:meth:`nkernels.Sequential.copy`: parameters,
    buffers and the state of frozen extractors), so their weights never touch the caller's model;
    the copy travels to each worker with the problem.
    """

    def __init__(self, model, layout, X: np.ndarray, targets: np.ndarray, loss):
        self.model, self.layout = model.copy(), layout
        self.X, self.targets, self.loss = X, targets, loss

    def losses(self, theta, noise, offsets, sigma, rows):
        """As :meth:`DenseChainProblem.losses`, member by member."""
        model = self.model
        X, targets = self.X[rows], self.targets[rows]
        s = theta.dtype.type(sigma)
        out = np.empty((len(offsets), 2))
        member = np.empty_like(theta)
        for i, offset in enumerate(offsets):
            eps = noise.table[offset:offset + len(theta)]
            for column, sign in enumerate((s, -s)):
                np.add(theta, sign * eps, out=member)
                model.set_params(parameter_views(member, self.layout))
                out[i, column] = self.loss.forward(model.forward(X, training=False), targets)
        return out


def make_problem(model, layout, X: np.ndarray, targets: np.ndarray, loss, compiled: bool = True):
    """The fastest problem that evaluates ``model`` exactly: a dense chain when it is one."""
    if compiled and type(loss) in (SoftmaxCrossEntropy, MSE):
        spec = dense_chain_spec(model, layout)
        if spec is not None:
            loss_kind = 0 if type(loss) is SoftmaxCrossEntropy else 1
            X2d = np.ascontiguousarray(X.reshape(len(X), -1))
            t = targets if loss_kind == 0 else np.ascontiguousarray(targets.reshape(len(X), -1))
            return DenseChainProblem(spec, X2d, t, loss_kind)
    return LayerwiseProblem(model, layout, X, targets, loss)


def evaluate_pairs(bounds: tuple[int, int], problem: Any, noise: NoiseTable, theta: np.ndarray,
                   offsets: np.ndarray, sigma: float, rows: np.ndarray) -> np.ndarray:
    """The losses (pairs, 2) of pairs ``offsets[start:stop]``: what one worker computes per generation."""
    start, stop = bounds
    return problem.losses(theta, noise, offsets[start:stop], sigma, rows)
