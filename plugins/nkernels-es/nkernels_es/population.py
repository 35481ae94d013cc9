"""Evaluating a population: the loss of every antithetic pair of members on one minibatch.

A *problem* holds what stays fixed during a run (the training data, the model's structure, the
loss); it is shipped to each Dask worker once. Per generation only the parameters, the pair
offsets into the noise table and the minibatch's row indices travel, and each worker returns the
losses of its slice of the pairs: :func:`evaluate_pairs`.

- :class:`DenseChainProblem`: a chain of Dense layers (each optionally followed by ReLU, Sigmoid
  or Tanh; Flatten allowed) with softmax cross-entropy or MSE. One compiled call evaluates the
  whole population (:func:`nkernels_es.kernels.population_losses`).
- :class:`CudaDenseChainProblem`: the same on the GPU, for a model on ``"cuda"``
  (:func:`nkernels_es.cuda_kernels.population_losses`): the training set and the noise table stay
  on the device; with :meth:`CudaDenseChainProblem.device_losses` the parameters stay there too
  (the scheme's update runs on the device: :mod:`nkernels_es.cuda_update`) and per generation only
  the offsets and row indices go over.
- :class:`LayerwiseProblem`: any other model or loss, one member at a time through
  ``model.forward`` (correct for every layer, much slower).
"""
from __future__ import annotations

from typing import Any

import numpy as np

import nkernels as nk
from nkernels.losses import MSE, SoftmaxCrossEntropy
from nkernels.runtime import devices

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
        theta[s:s + value.size] = devices.to_host(value).reshape(-1)
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


class CudaDenseChainProblem:
    """A dense chain with cross-entropy or MSE on the GPU: the whole population in two launches.

    Built from a :class:`DenseChainProblem`; the training set, its targets and the layer arrays are
    copied to the device once, the noise table once per table. Used by a run whose model is on
    ``"cuda"``; it stays in the driver's process (device arrays do not travel to Dask workers).
    """

    def __init__(self, host: DenseChainProblem):
        self.loss_kind, self.width = host.loss_kind, int(max(host.spec["n_in"].max(), host.spec["n_out"].max()))
        self.X = devices.to_device(host.X)
        empty_labels, empty_values = np.zeros(1, np.int64), np.zeros((1, 1), host.X.dtype)
        self.labels = devices.to_device(host.targets if host.loss_kind == 0 else empty_labels)
        self.values = devices.to_device(host.targets if host.loss_kind == 1 else empty_values)
        self.spec = {k: devices.to_device(v) for k, v in host.spec.items()}
        self._table: tuple[tuple, Any] | None = None
        self._workspace: Any = None

    def device_table(self, noise: NoiseTable) -> Any:
        """The noise table on the device (copied over once per table)."""
        key = (noise.seed, noise.size, noise.dtype.str)
        if self._table is None or self._table[0] != key:
            self._table = (key, devices.to_device(noise.table))
        return self._table[1]

    def workspace(self, n_pairs: int, batch: int, dim: int, dtype) -> Any:
        """The device buffers for these sizes (allocated again only when a size changes)."""
        from .cuda_kernels import PopulationWorkspace

        key = (n_pairs, batch, self.width, dim, np.dtype(dtype).str)
        if self._workspace is None or self._workspace.key != key:
            self._workspace = PopulationWorkspace(n_pairs, batch, self.width, dim, dtype)
        return self._workspace

    def device_losses(self, theta, noise, offsets, sigma, rows):
        """The (pairs, 2) float64 losses as a device array, for ``theta`` on the device: one copy goes over
        (the row indices and offsets, packed), nothing comes back."""
        from .cuda_kernels import population_losses

        ws = self.workspace(len(offsets), len(rows), theta.shape[0], theta.dtype)
        ws.picks.copy_to_device(np.concatenate([np.asarray(rows, np.int64), np.asarray(offsets, np.int64)]))
        s = self.spec
        return population_losses(self.X, ws.rows, self.labels, self.values, self.loss_kind, theta,
                                 self.device_table(noise), ws.offsets, sigma, s["w_start"], s["b_start"], s["n_in"],
                                 s["n_out"], s["acts"], ws)

    def losses(self, theta, noise, offsets, sigma, rows):
        """As :meth:`DenseChainProblem.losses`, on the GPU (``theta`` copied over, the losses copied back)."""
        ws = self.workspace(len(offsets), len(rows), len(theta), theta.dtype)
        ws.theta.copy_to_device(theta)
        return self.device_losses(ws.theta, noise, offsets, sigma, rows).copy_to_host()


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
    """The fastest problem that evaluates ``model`` exactly: a dense chain when it is one (on the
    model's device: :class:`CudaDenseChainProblem` for a model on ``"cuda"``)."""
    if compiled and type(loss) in (SoftmaxCrossEntropy, MSE):
        spec = dense_chain_spec(model, layout)
        if spec is not None:
            loss_kind = 0 if type(loss) is SoftmaxCrossEntropy else 1
            X2d = np.ascontiguousarray(X.reshape(len(X), -1))
            t = targets if loss_kind == 0 else np.ascontiguousarray(targets.reshape(len(X), -1))
            problem = DenseChainProblem(spec, X2d, t, loss_kind)
            return CudaDenseChainProblem(problem) if model.device == "cuda" else problem
    return LayerwiseProblem(model, layout, X, targets, loss)


def evaluate_pairs(bounds: tuple[int, int], problem: Any, noise: NoiseTable, theta: np.ndarray,
                   offsets: np.ndarray, sigma: float, rows: np.ndarray) -> np.ndarray:
    """The losses (pairs, 2) of pairs ``offsets[start:stop]``: what one worker computes per generation."""
    start, stop = bounds
    return problem.losses(theta, noise, offsets[start:stop], sigma, rows)
