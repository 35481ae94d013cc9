"""A MAC run in progress: the layers' weights and optimizer moments here, the sharded data with its
auxiliary coordinates on the shards, and one iteration (Z-step, W-step) per epoch."""
from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np

import nkernels as nk
from nkernels.runtime import distributed
from nkernels.schemes import Diverged

from . import kernels
from .chain import read_chain
from .shards import ShardGroup, offsets, pack


def loss_kind(loss: Any) -> int:
    """The kernels' code for the run's loss; a ValueError for a loss MAC cannot use."""
    if isinstance(loss, nk.losses.SoftmaxCrossEntropy):
        return kernels.CROSS_ENTROPY
    if isinstance(loss, nk.losses.MSE):
        return kernels.SQUARED
    raise ValueError(f"mac trains with softmax cross-entropy (integer labels) or the mean squared error (real "
                     f"targets), not {type(loss).__name__}")


class MACRun:
    """The state of a MAC run on a :class:`~nkernels.schemes.TrainingRun` (made by the scheme's ``setup``).

    The driver (this object) holds each layer's optimizer moments and step count and the
    iteration count (which gives the penalty ``mu``); the model holds the weights between
    iterations (read at the start of each, so a callback that changes them changes the run);
    the shards hold the data and its coordinates. :meth:`state`/:meth:`load_state` give and
    take all of it; :meth:`close` releases the shards and a cluster the run started.
    """

    def __init__(self, scheme, run):
        self.scheme, self.run = scheme, run
        self.chain = chain = read_chain(run.model)
        self.loss_kind = loss_kind(run.loss)
        n = self.n_samples = run.n_samples
        X = run.X.reshape(n, -1).astype(np.float64)
        if self.loss_kind == kernels.CROSS_ENTROPY:
            labels, targets = run.targets.astype(np.int64), np.empty((n, 0))
        else:
            labels, targets = np.empty(0, np.int64), run.targets.reshape(n, -1).astype(np.float64)
        self.layout = (chain.dims, chain.acts, *offsets(chain.dims), chain.hidden_columns)
        weights = self._model_weights()
        self.moments = [((np.zeros(w.size), np.zeros(b.size)), (np.zeros(w.size), np.zeros(b.size)))
                        for w, b in weights]
        self.steps = [0] * len(weights)
        self.iterations = 0
        self._keep_on_next_call = False
        self._stack = contextlib.ExitStack()
        try:
            session = self._stack.enter_context(distributed.connect(scheme.workers, scheme.scheduler))
            self.n_workers = session.n_workers
            self.n_shards = scheme.shards or session.n_workers
            if self.n_shards > n:
                raise ValueError(f"cannot split {n} samples into {self.n_shards} shards; use at most {n}")
            self.bounds = distributed.shard_bounds(n, self.n_shards)
            pieces = [(X[a:b], labels[a:b] if len(labels) else labels, targets[a:b], i, self.layout,
                       self.loss_kind, weights) for i, (a, b) in enumerate(self.bounds)]
            self.group = ShardGroup(session.client, pieces)
            self._stack.callback(self.group.close)
        except BaseException:
            self._stack.close()
            raise

    # -- one iteration -------------------------------------------------------------------------
    def mu(self, iteration: int | None = None) -> float:
        """The penalty of an iteration (the current one by default): ``mu * mu_growth ** iteration``."""
        i = self.iterations if iteration is None else iteration
        return self.scheme.mu * self.scheme.mu_growth ** i

    def step_sizes(self, weights, mu: float) -> np.ndarray:
        """Each hidden coordinate's Z-step size: the inverse of a bound on the curvature of its
        objective, ``mu`` (its own term) plus ``||W_{k+1}||_2^2`` times ``mu`` (the next layer's
        penalty) or times the loss's curvature bound (1/2 for softmax cross-entropy, 2/d_K for the
        mean squared error)."""
        K = len(weights)
        loss_curvature = 0.5 if self.loss_kind == kernels.CROSS_ENTROPY else 2.0 / self.chain.dims[-1]
        etas = np.empty(K - 1)
        for k in range(1, K):
            norm2 = float(np.linalg.norm(weights[k][0], 2)) ** 2
            etas[k - 1] = 1.0 / (mu + norm2 * (mu if k + 1 < K else loss_curvature))
        return etas

    def iterate(self) -> dict[str, Any]:
        """One MAC iteration: the Z-step on every shard, then the W-step of every layer, then the
        new weights into the model and the epoch's logs (from a forward pass)."""
        weights = self._model_weights()
        mu = self.mu()
        wflat, bflat = pack(weights)
        self._change_shards("z_step", wflat, bflat, mu, self.step_sizes(weights, mu), self.scheme.z_steps)
        weights, w_loss = self._w_step(weights)
        self._write_weights(weights)
        stats = self.group.call("stats", *pack(weights))
        self.iterations += 1
        n = self.n_samples
        logs = {"loss": sum(s["loss"] for s in stats) / n}
        if self.loss_kind == kernels.CROSS_ENTROPY:
            logs["accuracy"] = sum(s["correct"] for s in stats) / n
        violation = math.sqrt(sum(s["violation"] for s in stats) / (n * int(self.chain.hidden_columns[-1])))
        logs.update(violation=violation, mu=mu, w_loss=w_loss)
        if not (math.isfinite(logs["loss"]) and math.isfinite(violation)):
            raise Diverged("the loss or the auxiliary coordinates became NaN or infinite")
        return logs

    def _w_step(self, weights) -> tuple[list, float]:
        """Every layer fitted on its own, ``w_epochs`` passes over the data: as in ParMAC the layers
        travel round the shards (in round ``r`` layer ``k`` trains on shard ``(k + r) mod P``),
        so the shards train different layers at once and no coordinate moves. Returns the new
        weights and the mean per-sample loss of the last pass, summed over the layers."""
        optimizer, hyper, flag = self._fused_optimizer()
        seed = int(self.run.rng.integers(2**63))
        jobs = [{"layer": k, "weight": w, "bias": b, "moments": self.moments[k], "step": self.steps[k]}
                for k, (w, b) in enumerate(weights)]
        P, K = self.n_shards, len(weights)
        for epoch in range(self.scheme.w_epochs):
            losses = [0.0] * K
            for r in range(P):
                per_shard = [[jobs[k] for k in range(K) if (k + r) % P == p] for p in range(P)]
                args = [(todo, self.run.batch_size, optimizer, hyper, flag, seed, epoch) if todo else None
                        for todo in per_shard]
                for done in self.group.call_each("fit_layers", args):
                    for job in done or ():
                        jobs[job["layer"]] = job
                        losses[job["layer"]] += job.pop("loss")
        for k, job in enumerate(jobs):
            if not (np.isfinite(job["weight"]).all() and np.isfinite(job["bias"]).all()):
                raise Diverged(f"the W-step of layer {k} gave NaN or infinite weights")
            self.moments[k], self.steps[k] = job["moments"], job["step"]
        return [(job["weight"], job["bias"]) for job in jobs], sum(losses) / self.n_samples

    def _fused_optimizer(self) -> tuple[int, np.ndarray, bool]:
        fused = self.run.optimizer.fused_form()
        if fused is None:  # a callback may have put another optimizer in place
            raise ValueError(f"mac's W-step runs nkernels' fused SGD/Adam/AdamW update; "
                             f"{type(self.run.optimizer).__name__} (or clip_norm/max_norm) needs more")
        code, hyper, flag = fused
        return code, np.asarray(hyper, np.float64), bool(flag)

    def _model_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The chain's weights in float64 (a layer without a bias gets an empty bias), checked finite."""
        weights = []
        for layer in self.chain.dense:
            w = layer.params["weight"].astype(np.float64)
            b = layer.params["bias"].astype(np.float64) if layer.use_bias else np.empty(0)
            if not (np.isfinite(w).all() and np.isfinite(b).all()):
                raise Diverged("a weight of the model became NaN or infinite")
            weights.append((w, b))
        return weights

    def _write_weights(self, weights) -> None:
        for layer, (w, b) in zip(self.chain.dense, weights):
            layer.params["weight"][...] = w
            if layer.use_bias:
                layer.params["bias"][...] = b

    def _change_shards(self, method: str, *args: Any) -> None:
        """A call that changes the coordinates; the first after :meth:`state` without ``gather``
        asks the shards to keep theirs first."""
        keep, self._keep_on_next_call = self._keep_on_next_call, False
        self.group.call(method, *args, keep)

    # -- state ---------------------------------------------------------------------------------
    def state(self, gather: bool = True) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Everything that decides the rest of the run beyond the model and the run's generator:
        the iteration count (and so ``mu``), each layer's optimizer step count and moments and,
        with ``gather``, the coordinates ``Z`` of every sample (in sample order, whatever the
        sharding). Without ``gather`` (the divergence guard's snapshot, every epoch) the shards
        keep their coordinates where they live, and :meth:`load_state` rolls them back there."""
        arrays = {}
        for k, ((a_w, a_b), (b_w, b_b)) in enumerate(self.moments):
            arrays.update({f"moment_a.{k}.weight": a_w, f"moment_a.{k}.bias": a_b,
                           f"moment_b.{k}.weight": b_w, f"moment_b.{k}.bias": b_b})
        if gather:
            arrays["coordinates"] = np.concatenate(self.group.call("state"))
        else:
            self._keep_on_next_call = True
        state = {"iterations": self.iterations, "mu": self.mu(), "steps": list(self.steps),
                 "coordinates": "gathered" if gather else "kept"}
        return state, arrays

    def load_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Take back what :meth:`state` gave: from a checkpoint, or (``"kept"``) from the shards' own copy."""
        gathered = state["coordinates"] == "gathered"
        if gathered and arrays["coordinates"].shape != (self.n_samples, int(self.chain.hidden_columns[-1])):
            raise ValueError(f"the checkpoint's coordinates are shaped {arrays['coordinates'].shape}, this run's "
                             f"({self.n_samples}, {int(self.chain.hidden_columns[-1])}): resume with the same "
                             f"training data and model")
        self.iterations, self.steps = int(state["iterations"]), [int(s) for s in state["steps"]]
        self.moments = [((np.array(arrays[f"moment_a.{k}.weight"]), np.array(arrays[f"moment_a.{k}.bias"])),
                         (np.array(arrays[f"moment_b.{k}.weight"]), np.array(arrays[f"moment_b.{k}.bias"])))
                        for k in range(len(self.moments))]
        if not gathered:
            if not self._keep_on_next_call:  # else they have not changed since
                self.group.call("rollback")
            return
        Z = arrays["coordinates"]
        self.group.call_each("load_state", [(Z[a:b],) for a, b in self.bounds])

    def close(self) -> None:
        """Release the shards, and the cluster if the run started one."""
        self._stack.close()
