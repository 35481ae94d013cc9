"""An ADMM run in progress: the sharded data with its state, the weights, and one iteration at a time."""
from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np

from nkernels.errors import TrainingDivergedError
from nkernels.runtime import distributed
from nkernels.schemes import Diverged

from . import updates
from .scheme import admm_chain
from .shards import ShardGroup


class ADMMRun:
    """The state of an ADMM run on the data of a :class:`~nkernels.schemes.TrainingRun`: made by the
    scheme's ``setup`` (or :meth:`ADMM.start <nkernels_admm.ADMM.start>`, to step by hand).

    :meth:`iterate` (:meth:`step` by hand) runs one iteration and writes the new weights into
    the model. The driver (this object) holds the weights in float64; the shards hold the
    activations, pre-activations and the multiplier of their samples. :meth:`state` and
    :meth:`load_state` give and take all of it, for checkpoints. :meth:`close` (or leaving a
    ``with`` block) releases the shards and a cluster the run started.
    """

    def __init__(self, scheme, run):
        self.scheme, self.model = scheme, run.model
        self.dense = admm_chain(run.model)
        self.n_outputs = self.dense[-1].params["weight"].shape[0]
        self.n_samples = n = run.n_samples
        self.target_loss = run.loss
        targets, labels = self.prepare_targets(run.y)
        X = run.X.reshape(n, -1).astype(np.float64)
        self.bias = [d.use_bias for d in self.dense]
        self.weights = [(d.params["weight"].astype(np.float64),
                         d.params["bias"].astype(np.float64) if d.use_bias else None) for d in self.dense]
        self.iterations = 0
        self._labels = labels is not None
        self._keep_on_next_call = False

        from threadpoolctl import ThreadpoolController

        # one BLAS thread in this process while stepping: N workers are the way to use N cores, and
        # a spinning BLAS pool slows these small solves down badly on a busy machine
        self._threads = ThreadpoolController()
        self._stack = contextlib.ExitStack()
        try:
            session = self._stack.enter_context(distributed.connect(scheme.workers, scheme.scheduler))
            self.n_workers = session.n_workers
            self.n_shards = scheme.shards or session.n_workers
            if self.n_shards > n:
                raise ValueError(f"cannot split {n} samples into {self.n_shards} shards; use at most {n}")
            self.bounds = distributed.shard_bounds(n, self.n_shards)
            pieces = [(X[a:b], targets[a:b], None if labels is None else labels[a:b]) for a, b in self.bounds]
            with self._single_blas_thread():
                self.group = ShardGroup(session, pieces, self.weights, scheme.output_loss, scheme.beta,
                                        scheme.gamma)
                self._stack.callback(self.group.close)
                self._start()
        except BaseException:
            self._stack.close()
            raise

    def prepare_targets(self, y: Any, what: str = "y") -> tuple[np.ndarray, np.ndarray | None]:
        """The (N, outputs) float64 targets ADMM fits (one-hot for labels), and the labels or None.

        ``y`` has passed the run's checks for its loss (``self.target_loss``); the hinge loss
        needs labels.
        """
        prepared = self.target_loss.prepare_targets(y, (len(y), self.n_outputs), np.float64)
        if self.target_loss.target_kind == "labels":
            return np.eye(self.n_outputs)[prepared], prepared
        if self.scheme.output_loss == "hinge":
            raise ValueError(f"{what}: the hinge loss needs integer class labels (one per sample); for real "
                             f"targets use loss='least_squares'")
        return prepared.reshape(len(prepared), -1), None

    def _single_blas_thread(self):
        return self._threads.limit(limits=1, user_api="blas")

    def _start(self) -> None:
        starts = self.group.call("start")
        gram = sum(s[0] for s in starts)
        self._first_cross = sum(s[1] for s in starts)
        if not (np.isfinite(gram).all() and np.isfinite(self._first_cross).all()):
            raise TrainingDivergedError("the Gram matrix of X, or its products with the first layer's outputs, is "
                                        "not finite: the values of X or of the initial weights are too large; "
                                        "rescale X")
        # the first layer's inputs are the data: its factor serves every iteration
        self._first_factor = updates.factor_gram(gram, self.n_samples, self.scheme.weight_decay, self.bias[0])

    # -- iterations ----------------------------------------------------------------------------
    def iterate(self) -> dict[str, Any]:
        """One ADMM iteration from the model's weights; writes the new ones into the model and returns
        the iteration's metrics: ``loss`` (per sample), ``accuracy`` (for labels), ``residual``
        (the RMS of ``z_L - W_L a_{L-1}``) and ``stage`` (``"warm start"`` while the multiplier
        stays at zero). A weight, activation or loss that stops being finite raises
        :class:`~nkernels.schemes.Diverged`."""
        self._take_model_weights()
        warm = self.iterations < self.scheme.warm_start
        with self._single_blas_thread():
            weights, stats = self._iteration(update_multiplier=not warm)
        self.weights, self._first_cross = weights, stats["cross"]
        self.iterations += 1
        self._write_weights()
        n = self.n_samples
        logs: dict[str, Any] = {"loss": stats["loss"] / n}
        if self._labels:
            logs["accuracy"] = stats["correct"] / n
        logs["residual"] = math.sqrt(stats["residual"] / n)
        logs["stage"] = "warm start" if warm else "multiplier"
        return logs

    def step(self) -> dict[str, Any]:
        """:meth:`iterate`, by hand: a value that stops being finite raises a
        :class:`~nkernels.TrainingDivergedError`, and the model keeps the weights of the iteration before."""
        try:
            return self.iterate()
        except Diverged as exc:
            raise TrainingDivergedError(f"ADMM diverged in iteration {self.iterations + 1}: {exc}. The model "
                                        f"keeps the weights of the iteration before; "
                                        f"{self.scheme.divergence_hint()}") from None

    def _take_model_weights(self) -> None:
        """The model holds the weights between iterations: take those that something else (a callback)
        changed since the last iteration wrote them; the float64 ones stand for those it did not."""
        taken = []
        for layer, (w, b) in zip(self.dense, self.weights):
            weight = layer.params["weight"]
            if not np.array_equal(weight, w.astype(weight.dtype)):
                w = weight.astype(np.float64)
            if b is not None and not np.array_equal(layer.params["bias"], b.astype(weight.dtype)):
                b = layer.params["bias"].astype(np.float64)
            if not all(np.isfinite(p).all() for p in (w, b) if p is not None):
                raise Diverged("a weight of the model became NaN or infinite")
            taken.append((w, b))
        self.weights = taken

    def _write_weights(self) -> None:
        for layer, (w, b) in zip(self.dense, self.weights):
            layer.params["weight"][...] = w
            if b is not None:
                layer.params["bias"][...] = b

    def _iteration(self, update_multiplier: bool):
        """Layer by layer: solve the weights here from the summed Gram matrices and cross products,
        then let the shards update their activations and pre-activations; last the outputs and
        the multiplier. Returns the new weights and the summed statistics of the output step."""
        weights, decay = list(self.weights), self.scheme.weight_decay
        factor, cross = self._first_factor, self._first_cross
        for l in range(len(weights)):
            weights[l] = updates.solve_weights(factor, cross, self.bias[l])
            if not all(np.isfinite(p).all() for p in weights[l] if p is not None):
                self._diverged()
            if l == len(weights) - 1:
                break
            results = self._change_shards("hidden_step", l, weights[l], weights[l + 1])  # [l + 1]: still the old
            gram, cross = sum(r[0] for r in results), sum(r[1] for r in results)
            if not (np.isfinite(gram).all() and np.isfinite(cross).all()):
                self._diverged()
            factor = updates.factor_gram(gram, self.n_samples, decay, self.bias[l + 1])
        results = self._change_shards("output_step", weights, update_multiplier)
        stats = {"loss": sum(r["loss"] for r in results), "residual": sum(r["residual"] for r in results),
                 "cross": sum(r["cross"] for r in results)}
        if self._labels:
            stats["correct"] = sum(r["correct"] for r in results)
        if not (math.isfinite(stats["loss"]) and np.isfinite(stats["cross"]).all()):
            self._diverged()
        return weights, stats

    def _change_shards(self, method: str, *args: Any) -> list[Any]:
        """A call that changes the shards' variables; the first after :meth:`state` without ``gather``
        asks the shards to keep theirs before."""
        keep, self._keep_on_next_call = self._keep_on_next_call, False
        return self.group.call(method, *args, keep)

    @staticmethod
    def _diverged() -> None:
        raise Diverged("a weight, activation or loss became NaN or infinite")

    # -- state ---------------------------------------------------------------------------------
    def state(self, gather: bool = True) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Everything that decides the rest of the run: the iteration count, the float64 weights, the
        first layer's cross products and, with ``gather``, every shard's ``activations.l``,
        ``preactivations.l`` and ``multiplier`` (concatenated in sample order, so that the arrays
        do not depend on the sharding). Without ``gather`` the shards keep their variables where
        they live (:meth:`ShardState.keep <nkernels_admm.shards.ShardState.keep>`, asked with
        the next call that changes them) and the state says so: :meth:`load_state` rolls them
        back there. The divergence guard asks at every iteration; this way nothing per sample
        crosses the network for it."""
        arrays = {"first_cross": self._first_cross}
        for l, (w, b) in enumerate(self.weights):
            arrays[f"weight.{l}"] = w
            if b is not None:
                arrays[f"bias.{l}"] = b
        if gather:
            parts = self.group.call("state")
            for name in ("activations", "preactivations"):
                for l in range(len(parts[0][name])):
                    arrays[f"{name}.{l}"] = np.concatenate([part[name][l] for part in parts])
            arrays["multiplier"] = np.concatenate([part["multiplier"] for part in parts])
        else:
            self._keep_on_next_call = True
        return {"iterations": self.iterations, "shards": "gathered" if gather else "kept"}, arrays

    def load_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Take back what :meth:`state` gave: from a checkpoint, or (``"kept"``) from the shards' own copy."""
        gathered = state["shards"] == "gathered"
        if gathered and len(arrays["multiplier"]) != self.n_samples:
            raise ValueError(f"the checkpoint's ADMM state is for {len(arrays['multiplier'])} samples and this run "
                             f"has {self.n_samples}: resume with the same training data")
        self.iterations = int(state["iterations"])
        self.weights = [(np.array(arrays[f"weight.{l}"]), np.array(arrays[f"bias.{l}"]) if bias else None)
                        for l, bias in enumerate(self.bias)]
        self._first_cross = np.array(arrays["first_cross"])
        if not gathered:
            if not self._keep_on_next_call:  # else they have not changed since
                self.group.call("rollback")
            return
        layers = len(self.dense)
        self.group.call_each("load_state", [
            ([arrays[f"activations.{l}"][a:b] for l in range(layers - 1)],
             [arrays[f"preactivations.{l}"][a:b] for l in range(layers)], arrays["multiplier"][a:b])
            for a, b in self.bounds])

    def close(self) -> None:
        """Release the shards, and the cluster if the run started one."""
        self._stack.close()

    def __enter__(self) -> "ADMMRun":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
