"""The ES update on the GPU: fitness shaping, the gradient estimate and the run's statistics, on the device.

For a model on ``"cuda"`` whose population runs on the GPU (:class:`~nkernels_es.population.CudaDenseChainProblem`),
the parameters ``theta``, the noise table and the whole update stay on the device
(:class:`DeviceGenerations`). Per generation one small array goes over (the minibatch's row indices and the
pairs' offsets, packed); nothing comes back until the epoch ends (or a per-batch callback asks for the
losses). The kernels are the CUDA twins of the host code:

- :func:`_shape_weights`: the per-pair weights ``(r+_i - r-_i) / (2 n)`` of
  :func:`nkernels_es.estimate.gradient_estimate` from the shaped fitness
  (:func:`nkernels_es.estimate.centered_ranks` with tied values sharing their average rank, or the raw fitness),
  and, on the side, the epoch's sums of the best and mean fitness and the first generation whose fitness was
  not finite (the host raises :class:`~nkernels.schemes.Diverged` at the epoch's end).
- :func:`_negated_noise_sum`: ``grad = -sum_i w_i * table[offset_i:offset_i + D]`` in float64, pair by pair
  (the order of :func:`nkernels_es.kernels.weighted_noise_sum`), cast to the parameters' dtype.

The optimizer's step is the core's own (:meth:`nkernels.optimizers.Optimizer.step` on device views of
``theta`` and ``grad``), so its state lives on the device too.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from nkernels.kernels.cuda.launch import grid_stride

#: the fields of the statistics buffer: the epoch's sums of best and mean fitness (each already divided
#: by the generations per epoch), and the first generation (1-based) whose fitness was not finite (0: none)
BEST, MEAN, FIRST_BAD = 0, 1, 2


@cuda.jit(device=True)
def _centered_rank(losses, pair, column, n):
    """The centered rank in [-0.5, 0.5] of member (pair, column)'s fitness ``-loss`` among the ``n`` members,
    ties sharing their average rank (as :func:`nkernels_es.estimate.centered_ranks`)."""
    mine = losses[pair, column]
    below = 0
    equal = 0
    for m in range(n):
        other = losses[m // 2, m % 2]
        if other > mine:  # a larger loss is a lower fitness
            below += 1
        elif other == mine:
            equal += 1
    return (below + (equal - 1) / 2.0) / (n - 1) - 0.5


@cuda.jit
def _shape_weights(losses, centered, weights, stats, per_epoch, generation):
    """``weights[i]`` of pair i from the (pairs, 2) float64 ``losses``; thread 0 adds the generation's best and
    mean fitness (divided by ``per_epoch``) to ``stats`` and records a non-finite fitness."""
    n_pairs = losses.shape[0]
    n = 2 * n_pairs
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, n_pairs, stride):
        if centered:
            plus, minus = _centered_rank(losses, i, 0, n), _centered_rank(losses, i, 1, n)
        else:
            plus, minus = -losses[i, 0], -losses[i, 1]
        weights[i] = (plus - minus) / n
    if start == 0:
        best = -math.inf
        total = 0.0
        finite = True
        for m in range(n):
            fitness = -losses[m // 2, m % 2]
            finite = finite and math.isfinite(fitness)
            best = max(best, fitness)
            total += fitness
        stats[BEST] += best / per_epoch
        stats[MEAN] += total / n / per_epoch
        if not finite and stats[FIRST_BAD] == 0:
            stats[FIRST_BAD] = generation


@cuda.jit
def _negated_noise_sum(table, offsets, weights, grad):
    """``grad[d] = -sum_i weights[i] * table[offsets[i] + d]``, summed in float64 pair by pair."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for d in range(start, grad.shape[0], stride):
        acc = 0.0
        for i in range(offsets.shape[0]):
            acc += weights[i] * table[offsets[i] + d]
        grad[d] = -acc


def shape_weights(losses, centered: bool, weights, stats, per_epoch: int, generation: int) -> None:
    """Launch :func:`_shape_weights` (every array on the device)."""
    blocks, threads = grid_stride(losses.shape[0], per_thread=1)
    _shape_weights[blocks, threads](losses, centered, weights, stats, float(per_epoch), generation)


def negated_noise_sum(table, offsets, weights, grad) -> None:
    """Launch :func:`_negated_noise_sum` (every array on the device)."""
    blocks, threads = grid_stride(grad.shape[0], per_thread=1)
    _negated_noise_sum[blocks, threads](table, offsets, weights, grad)


class DeviceGenerations:
    """What an ES run on the GPU keeps on the device: ``theta`` and the gradient (D,) of the parameters'
    dtype, the pair weights (P,) and the statistics (3,) float64. Built once per run."""

    def __init__(self, n_pairs: int, dim: int, dtype):
        self.theta = cuda.device_array(dim, dtype=dtype)
        self.grad = cuda.device_array(dim, dtype=dtype)
        self.weights = cuda.device_array(n_pairs, dtype=np.float64)
        self.stats = cuda.to_device(np.zeros(3))
        self._zeros = np.zeros(3)

    def load(self, model, layout) -> None:
        """Copy the model's parameters (on the device) into ``theta``, device to device."""
        for key, value in model.params.items():
            s, _ = layout[key]
            self.theta[s:s + value.size].copy_to_device(value.ravel())

    def start_epoch(self) -> None:
        """Zero the statistics (one small copy)."""
        self.stats.copy_to_device(self._zeros)

    def step(self, losses, table, offsets, centered: bool, per_epoch: int, generation: int, optimizer,
             views) -> None:
        """One update of ``theta`` from the device ``losses`` of the pairs at the device ``offsets``;
        ``views(array)`` shapes a flat (D,) device array as the model's parameters."""
        shape_weights(losses, centered, self.weights, self.stats, per_epoch, generation)
        negated_noise_sum(table, offsets, self.weights, self.grad)
        optimizer.step(views(self.theta), views(self.grad))

    def statistics(self) -> np.ndarray:
        """The statistics on the host (one copy back: call it at the epoch's end)."""
        return self.stats.copy_to_host()
