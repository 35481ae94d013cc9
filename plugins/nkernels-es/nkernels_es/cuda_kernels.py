"""CUDA twin of :func:`nkernels_es.kernels.population_losses`: a whole population of a dense chain on the GPU.

The model, loss and data are those of the CPU kernel (see its docstring); what differs is the split
of the work. One thread evaluates one (member, sample) item: it runs the sample through every
Dense layer with the member's parameters ``theta +- sigma * table[offset:offset + D]``, formed on
the fly from the two vectors (no perturbed parameter vector is ever stored), and writes the
sample's loss. Consecutive threads take consecutive samples of one member, so a warp reads each
weight and noise number once (a broadcast) and its activations, stored sample-minor in a workspace
(``work[buffer, member, feature, sample]``), with coalesced accesses. A second kernel adds each
member's per-sample losses in sample order (float64), so the result does not depend on the grid:
two launches per generation, no atomics.

The scalar activation and the per-sample loss are the CPU kernel's own functions
(:func:`nkernels_es.kernels.activate_value`, :func:`nkernels_es.kernels.sample_loss`), compiled
again as CUDA device functions. The minibatch is never gathered: the kernel reads ``X[rows[r]]``
in place from the training set held on the device. Results match the CPU kernel to float
rounding (the sums run in another order).
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from nkernels.kernels.cuda.launch import grid_stride, python_function, scalar

from . import kernels as cpu

_activate = cuda.jit(device=True)(python_function(cpu.activate_value))
_sample_loss = cuda.jit(device=True)(python_function(cpu.sample_loss))


@cuda.jit
def _member_sample_losses(X, rows, labels, values, loss_kind, theta, table, offsets, s, w_start, b_start, n_in,
                          n_out, acts, work, item_losses):
    """``item_losses[m, r]`` = the loss of member ``m`` on sample ``rows[r]`` (float64).

    Member ``m`` is pair ``m // 2``'s ``+`` member (m even) or ``-`` member (m odd). ``work``
    (2, members, width, batch) holds the activations, ping-ponged between layers.
    """
    n_rows = rows.shape[0]
    n_members = item_losses.shape[0]
    n_layers = n_in.shape[0]
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for item in range(start, n_members * n_rows, stride):
        m = item // n_rows
        r = item - m * n_rows
        sign = s if m % 2 == 0 else -s
        off = offsets[m // 2]
        row = rows[r]
        one = theta.dtype.type(1.0)
        src = 0
        for layer in range(n_layers):
            w, bs, ni, no, act = w_start[layer], b_start[layer], n_in[layer], n_out[layer], acts[layer]
            for j in range(no):
                acc = (theta[bs + j] + sign * table[off + bs + j]) if bs >= 0 else one - one
                base = w + j * ni
                for k in range(ni):
                    h = X[row, k] if layer == 0 else work[src, m, k, r]
                    acc += h * (theta[base + k] + sign * table[off + base + k])
                work[1 - src, m, j, r] = _activate(acc, act, one)
            src = 1 - src
        last = n_out[n_layers - 1]
        label = labels[row] if loss_kind == cpu.LOSS_CROSS_ENTROPY else 0
        item_losses[m, r] = _sample_loss(work[src, m, :, r], last, loss_kind, label, values, row)


@cuda.jit
def _member_means(item_losses, losses):
    """``losses[p, c]`` = the mean of ``item_losses[2 p + c]`` over the samples, added in sample order."""
    n_members, n_rows = item_losses.shape
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for m in range(start, n_members, stride):
        total = 0.0
        for r in range(n_rows):
            total += item_losses[m, r]
        losses[m // 2, m % 2] = total / n_rows


class PopulationWorkspace:
    """The device buffers of :func:`population_losses` for one population size, batch and model, allocated
    once: the activations and losses, and the per-generation inputs: the parameters ``theta`` and
    ``picks``, the row indices then the offsets packed so that one copy brings both over (``rows`` and
    ``offsets`` are views of it)."""

    def __init__(self, n_pairs: int, batch: int, width: int, dim: int, dtype):
        self.key = (n_pairs, batch, width, dim, np.dtype(dtype).str)
        self.theta = cuda.device_array(dim, dtype=dtype)
        self.picks = cuda.device_array(batch + n_pairs, dtype=np.int64)
        self.rows, self.offsets = self.picks[:batch], self.picks[batch:]
        self.work = cuda.device_array((2, 2 * n_pairs, width, batch), dtype=dtype)
        self.item_losses = cuda.device_array((2 * n_pairs, batch), dtype=np.float64)
        self.losses = cuda.device_array((n_pairs, 2), dtype=np.float64)


def population_losses(X, rows, labels, values, loss_kind, theta, table, offsets, sigma, w_start, b_start, n_in,
                      n_out, acts, workspace: PopulationWorkspace):
    """Launch the population's evaluation on the device; returns the device array ``losses`` (pairs, 2) float64.

    Every array is a device array: X (N, n_in[0]) the whole training set, ``rows`` (B,) int64 the
    minibatch's row indices into it, ``labels`` (N,) int64 or ``values`` (N, n_out[-1]) the
    targets of the whole set (the unused one any array of its kind), ``theta`` (D,), ``table`` the
    noise table, ``offsets`` (P,) int64, the layer arrays as in the CPU kernel. ``workspace`` comes
    from :class:`PopulationWorkspace` for these sizes. The caller checks shapes and offsets.
    """
    n_members, n_rows = workspace.item_losses.shape
    blocks, threads = grid_stride(n_members * n_rows, per_thread=1)
    s = scalar(X.dtype, sigma)
    _member_sample_losses[blocks, threads](X, rows, labels, values, loss_kind, theta, table, offsets, s, w_start,
                                           b_start, n_in, n_out, acts, workspace.work, workspace.item_losses)
    blocks, threads = grid_stride(n_members, per_thread=1)
    _member_means[blocks, threads](workspace.item_losses, workspace.losses)
    return workspace.losses
