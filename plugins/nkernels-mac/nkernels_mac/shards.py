"""Shards of the data with their auxiliary coordinates, kept where the data lives: in this process
or in Dask actors on the workers (ParMAC's layout).

A shard runs the Z-step of its samples, the W-step of the layers the driver hands it (each over
the shard's own samples: the layers travel round the shards, the coordinates never move), and
the forward-pass statistics. Only weights, optimizer moments and sums cross the network.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

#: a packed chain: (dims, acts, w_off, b_off, z_off) as int64 arrays
Layout = tuple


def pack(weights: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The flat weights and biases of a chain (``wflat``, ``bflat``) for the kernels."""
    return (np.concatenate([w.reshape(-1) for w, _ in weights]), np.concatenate([b for _, b in weights]))


def offsets(dims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each layer's weight and bias start in ``wflat``/``bflat``."""
    sizes = dims[1:] * dims[:-1]
    return (np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64),
            np.concatenate([[0], np.cumsum(dims[1:])[:-1]]).astype(np.int64))


class ShardState:
    """The samples of one shard and their auxiliary coordinates ``Z`` (float64, laid out as
    :mod:`nkernels_mac.kernels` says), which start as a forward pass of ``weights``.

    ``X`` (n, d_0) float64; ``labels`` (n,) int64 for cross-entropy, or ``targets`` (n, d_K)
    float64 for the squared error (the other empty); ``index`` the shard's place, which seeds
    its mini-batch orders. The Z-step replaces ``Z`` with a new array, never writes into the
    one it had, so :meth:`keep` holds the coordinates of an iteration by reference.
    """

    def __init__(self, X: np.ndarray, labels: np.ndarray, targets: np.ndarray, index: int, layout: Layout,
                 loss_kind: int, weights: Sequence[tuple[np.ndarray, np.ndarray]]):
        from . import kernels  # compiled (or loaded from Numba's cache) where the shard lives

        self.kernels = kernels
        self.X, self.labels, self.targets, self.index = X, labels, targets, index
        self.dims, self.acts, self.w_off, self.b_off, self.z_off = layout
        self.loss_kind = loss_kind
        self.Z, _ = self._forward(*pack(weights))
        self._kept: np.ndarray | None = None

    def _forward(self, wflat: np.ndarray, bflat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hidden = np.empty((len(self.X), int(self.z_off[-1])))
        out = np.empty((len(self.X), int(self.dims[-1])))
        self.kernels.forward_chain(self.X, wflat, bflat, self.dims, self.w_off, self.b_off, self.acts, hidden, out)
        return hidden, out

    def z_step(self, wflat: np.ndarray, bflat: np.ndarray, mu: float, etas: np.ndarray, steps: int,
               keep: bool = False) -> None:
        """The Z-step of every sample of the shard (the ``prange`` kernel), on a new array. With
        ``keep`` the shard first calls :meth:`keep` (asked with the call, so it costs no round trip)."""
        if keep:
            self.keep()
        Z = self.Z.copy()
        self.kernels.z_step(self.X, Z, self.labels, self.targets, self.loss_kind, wflat, bflat, self.dims,
                            self.w_off, self.b_off, self.z_off, self.acts, mu, etas, steps)
        self.Z = Z

    def fit_layers(self, jobs: Sequence[dict[str, Any]], batch_size: int, optimizer: int, hyper: np.ndarray,
                   flag: bool, seed: int, epoch: int) -> list[dict[str, Any]]:
        """The W-step of the layers in ``jobs`` on this shard's samples, one after another: each job
        is a dict of ``layer`` (k, from 0), ``weight``, ``bias``, the optimizer's ``moments``
        (two pairs of flat arrays) and ``step``; returns them updated, with the pass's summed
        ``loss``. The order of the samples depends on (seed, epoch, layer, shard) only."""
        done = []
        for job in jobs:
            k = job["layer"]
            weight, bias = job["weight"].copy(), job["bias"].copy()
            (a_w, a_b), (b_w, b_b) = job["moments"]
            moments = ((a_w.copy(), a_b.copy()), (b_w.copy(), b_b.copy()))
            order = np.random.default_rng([seed, epoch, k, self.index]).permutation(len(self.X))
            last = k == len(self.acts) - 1
            inputs = self.X if k == 0 else self.Z[:, self.z_off[k - 1]:self.z_off[k]]
            outputs = (self.targets if last else self.Z[:, self.z_off[k]:self.z_off[k + 1]])
            step, loss = self.kernels.fit_layer(inputs, outputs, self.labels, self.loss_kind if last else -1,
                                                self.acts[k], order, batch_size, weight, bias, moments[0],
                                                moments[1], job["step"], optimizer, hyper, flag)
            done.append({"layer": k, "weight": weight, "bias": bias, "moments": moments, "step": step,
                         "loss": loss})
        return done

    def stats(self, wflat: np.ndarray, bflat: np.ndarray) -> dict[str, Any]:
        """Sums over the shard for the epoch's logs, from a forward pass of the new weights: the loss,
        the correct predictions (labels only) and the squared constraint violation, the distance
        of the coordinates from the forward pass."""
        hidden, out = self._forward(wflat, bflat)
        n = len(self.X)
        if self.loss_kind == self.kernels.CROSS_ENTROPY:
            loss = n * self.kernels.softmax_cross_entropy_forward(out, self.labels, np.empty_like(out))
            correct = int((out.argmax(axis=1) == self.labels).sum())
        else:
            loss, correct = float(((out - self.targets) ** 2).mean(axis=1).sum()), None
        return {"loss": float(loss), "correct": correct, "violation": float(((self.Z - hidden) ** 2).sum())}

    def state(self) -> np.ndarray:
        """The shard's coordinates."""
        return self.Z

    def load_state(self, Z: np.ndarray) -> None:
        """Take back coordinates :meth:`state` gave (from a checkpoint)."""
        self.Z = np.array(Z, dtype=np.float64)

    def keep(self) -> None:
        """Remember the current coordinates (by reference: the Z-step replaces them, never writes into them)."""
        self._kept = self.Z

    def rollback(self) -> None:
        """Return to the coordinates of the last :meth:`keep`."""
        if self._kept is None:
            raise RuntimeError("rollback() without keep(): the shard holds no earlier coordinates")
        self.Z = self._kept


class ShardGroup:
    """The shards of a run: :class:`ShardState` objects in this process (no Dask client), or one
    Dask actor per shard, shard ``i`` on worker ``i mod workers`` (by sorted address).

    ``pieces`` holds each shard's constructor arguments. :meth:`call_each` runs one method on
    every shard at once and returns the results in shard order, whatever the timing.
    """

    def __init__(self, client: Any, pieces: Sequence[tuple]):
        self.client = client
        if client is None:
            self.shards = [ShardState(*piece) for piece in pieces]
            return
        workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
        actors = []
        for i, (X, labels, targets, *rest) in enumerate(pieces):
            on = [workers[i % len(workers)]]
            data = [client.scatter(a, workers=on) for a in (X, labels, targets)]  # each shard's data moves once
            actors.append(client.submit(ShardState, *data, *rest, workers=on, allow_other_workers=False,
                                        actor=True, pure=False))
        self._actors = actors  # held so that the workers keep the shards for the run
        self.shards = [a.result() for a in actors]

    def __len__(self) -> int:
        return len(self.shards)

    def call(self, method: str, *args: Any) -> list[Any]:
        """``method(*args)`` on every shard."""
        return self.call_each(method, [args] * len(self.shards))

    def call_each(self, method: str, args: Sequence[tuple | None]) -> list[Any]:
        """``method(*args[i])`` on shard ``i`` (skipped where ``args[i]`` is None), concurrently on the workers."""
        calls = [None if a is None else getattr(shard, method)(*a) for shard, a in zip(self.shards, args)]
        if self.client is None:
            return calls
        return [None if c is None else c.result() for c in calls]

    def close(self) -> None:
        """Release the shards (the workers drop their state)."""
        self.shards, self._actors = [], []
