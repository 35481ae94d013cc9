"""Data shards and their ADMM state, kept where the data lives: in this process or in Dask actors.

Every per-sample update (activations, pre-activations, outputs, multiplier) runs on the shard
that holds those samples. A shard sends back only what the driver's weight solves need: the Gram
matrix of a layer's input and its cross products with the layer's pre-activations, whose sizes
depend on the layer widths, never on the number of samples.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import updates

Weights = Sequence[tuple[np.ndarray, "np.ndarray | None"]]


class ShardState:
    """The ADMM variables of one shard of the data.

    ``X`` (n, in) and ``targets`` (n, out) as float64; ``labels`` (n,) for the accuracy, or None;
    ``weights`` a list of (weight, bias) per Dense layer, from which the activations ``A`` and
    pre-activations ``Z`` start as a forward pass. ``A[l]`` is the input of Dense layer ``l`` and
    ``Z[l]`` its output; ``lam`` is the output layer's Lagrange multiplier.

    An update never writes into an array it replaces, so :meth:`keep` holds the state of an
    iteration by reference, without a copy, for :meth:`rollback`.
    """

    def __init__(self, X: np.ndarray, targets: np.ndarray, labels: np.ndarray | None, weights: Weights,
                 loss: str, beta: float, gamma: float):
        from . import kernels  # compiled (or loaded from Numba's cache) where the shard lives

        self.kernels = kernels
        self.targets, self.labels = targets, labels
        self.loss, self.beta, self.gamma = loss, beta, gamma
        self.bias = [b is not None for _, b in weights]
        self.A, self.Z = [X], []
        for l, (w, b) in enumerate(weights):
            self.Z.append(updates.affine(self.A[l], w, b))
            if l < len(weights) - 1:
                self.A.append(np.maximum(self.Z[l], 0.0))
        self.lam = np.zeros_like(self.Z[-1])
        self.Z[-1] = self._outputs(self.Z[-1])  # so that the first weight solves already fit the targets
        self._kept: tuple | None = None

    def _outputs(self, m: np.ndarray) -> np.ndarray:
        z = np.empty_like(m)
        if self.loss == "hinge":
            self.kernels.hinge_output_update(self.targets, self.lam, m, self.beta, z)
        else:
            self.kernels.least_squares_output_update(self.targets, self.lam, m, self.beta, z)
        return z

    def start(self) -> tuple[np.ndarray, np.ndarray]:
        """The Gram matrix of the first layer's input (fixed: it is the data) and its cross products."""
        return updates.gram(self.A[0], self.bias[0]), updates.cross(self.A[0], self.Z[0], self.bias[0])

    def hidden_step(self, l: int, weight: tuple, weight_next: tuple,
                    keep: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """With layer ``l``'s new weights: update its activations (closed form, through the next layer's
        current weights) and pre-activations (the ReLU kernel). Returns the Gram matrix and cross
        products of layer ``l + 1``, whose weights the driver solves next. With ``keep``, the shard
        first calls :meth:`keep` (the driver asks in the first call of an iteration, so that
        keeping costs no round trip of its own)."""
        if keep:
            self.keep()
        a = updates.update_activations(self.Z[l], self.Z[l + 1], *weight_next, self.beta, self.gamma)
        self.A[l + 1] = a
        m = updates.affine(self.A[l], *weight)
        z = np.empty_like(m)
        self.kernels.relu_preactivation_update(a, m, self.gamma, self.beta, z)
        self.Z[l] = z
        nxt = l + 1
        return updates.gram(a, self.bias[nxt]), updates.cross(a, self.Z[nxt], self.bias[nxt])

    def output_step(self, weights: Weights, update_multiplier: bool, keep: bool = False) -> dict[str, Any]:
        """With every layer's new weights: update the outputs (and the multiplier, past the warm start).

        Returns the summed loss and correct predictions of the network on this shard, the summed
        squared constraint residual ``z_L - W_L a_{L-1}``, and the first layer's cross products
        for the next iteration (its pre-activations do not change again in this one). ``keep``
        as for :meth:`hidden_step`.
        """
        if keep:
            self.keep()
        m = updates.affine(self.A[-1], *weights[-1])
        self.Z[-1] = self._outputs(m)
        residual = self.Z[-1] - m
        if update_multiplier:
            self.lam = self.lam + self.beta * residual
        out = forward(self.A[0], weights)
        return {"loss": updates.loss_sum(out, self.targets, self.loss),
                "correct": None if self.labels is None else int((out.argmax(axis=1) == self.labels).sum()),
                "residual": float((residual ** 2).sum()),
                "cross": updates.cross(self.A[0], self.Z[0], self.bias[0])}

    def state(self) -> dict[str, Any]:
        """The shard's ADMM variables: ``activations`` (``A[1:]``; ``A[0]`` is the data),
        ``preactivations`` (``Z``) and ``multiplier`` (``lam``)."""
        return {"activations": self.A[1:], "preactivations": list(self.Z), "multiplier": self.lam}

    def load_state(self, activations: Sequence[np.ndarray], preactivations: Sequence[np.ndarray],
                   multiplier: np.ndarray) -> None:
        """Take back the variables :meth:`state` gave (from a checkpoint)."""
        self.A = [self.A[0], *(np.array(a, dtype=np.float64) for a in activations)]
        self.Z = [np.array(z, dtype=np.float64) for z in preactivations]
        self.lam = np.array(multiplier, dtype=np.float64)

    def keep(self) -> None:
        """Remember the current variables (by reference: updates replace arrays, never write into them)."""
        self._kept = (list(self.A), list(self.Z), self.lam)

    def rollback(self) -> None:
        """Return to the variables of the last :meth:`keep`."""
        if self._kept is None:
            raise RuntimeError("rollback() without keep(): the shard holds no earlier state")
        A, Z, self.lam = self._kept
        self.A, self.Z = list(A), list(Z)


def forward(X: np.ndarray, weights: Weights) -> np.ndarray:
    """The network's outputs: Dense layers with ReLU between them."""
    h = X
    for l, (w, b) in enumerate(weights):
        h = updates.affine(h, w, b)
        if l < len(weights) - 1:
            np.maximum(h, 0.0, out=h)
    return h


class ShardGroup:
    """The shards of one run: ``ShardState`` objects here, or Dask actors on the session's workers.

    ``pieces`` is a list of (X, targets, labels) tuples; shard ``i`` lives on worker ``i mod
    n_workers`` (workers sorted by address). :meth:`call` runs a method on every shard at once and
    returns the results in shard order, so that reductions over them do not depend on timing.
    """

    def __init__(self, session: Any, pieces: Sequence[tuple], *args: Any):
        self.client = session.client
        if self.client is None:
            self.shards = [ShardState(*piece, *args) for piece in pieces]
            return
        addresses = sorted(self.client.scheduler_info(n_workers=-1)["workers"])
        futures = []
        for i, piece in enumerate(pieces):
            where = [addresses[i % len(addresses)]]
            # the data goes to its worker once, ahead of the actor that keeps it
            data = [None if x is None else self.client.scatter(x, workers=where) for x in piece]
            futures.append(self.client.submit(ShardState, *data, *args, workers=where, allow_other_workers=False,
                                              actor=True, pure=False))
        self._futures = futures  # keep the actors alive for the run
        self.shards = [f.result() for f in futures]

    def call(self, method: str, *args: Any) -> list[Any]:
        """``[shard.method(*args) for shard in shards]``, concurrently on the workers."""
        return self.call_each(method, [args] * len(self.shards))

    def call_each(self, method: str, args: Sequence[tuple]) -> list[Any]:
        """``[shard.method(*args[i]) for i, shard in enumerate(shards)]``, concurrently on the workers."""
        if self.client is None:
            return [getattr(shard, method)(*a) for shard, a in zip(self.shards, args)]
        pending = [getattr(shard, method)(*a) for shard, a in zip(self.shards, args)]
        return [p.result() for p in pending]

    def close(self) -> None:
        """Release the actors (their workers drop the shard state)."""
        self.shards, self._futures = [], []
