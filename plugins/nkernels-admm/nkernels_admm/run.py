"""An ADMM run in progress: the sharded data with its state, the weights, and one iteration at a time."""
from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np

from nkernels.runtime import distributed
from nkernels.validation import check_features, check_model_input, check_same_length
from nkernels.errors import TrainingDivergedError
from nkernels.training import default_loss

from . import updates
from .scheme import admm_chain
from .shards import ShardGroup


class ADMMRun:
    """The state of an ADMM run, made by :meth:`ADMM.start <nkernels_admm.ADMM.start>`.

    :meth:`step` runs one iteration and writes the new weights into the model. The driver (this
    object) holds the weights; the shards hold the activations, pre-activations and the
    multiplier of their samples. :meth:`close` (or leaving a ``with`` block) releases the shards
    and a cluster the run started.
    """

    def __init__(self, scheme, model, X, y):
        self.scheme, self.model = scheme, model
        self.dense = admm_chain(model)
        if model.device != "cpu":
            raise ValueError(f"ADMM runs on the CPU; the model is on {model.device!r} (use model.to('cpu'))")
        X = check_features(X, dtype=np.float64)
        check_same_length(X, y)
        self.n_outputs = check_model_input(model, X)[-1]
        targets, labels = self.prepare_targets(y)
        self.n_samples = n = len(X)
        X = X.reshape(n, -1)
        self.bias = [d.use_bias for d in self.dense]
        self.weights = [(d.params["weight"].astype(np.float64),
                         d.params["bias"].astype(np.float64) if d.use_bias else None) for d in self.dense]
        self.iterations = 0
        self._labels = labels is not None

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
            pieces = [(X[a:b], targets[a:b], None if labels is None else labels[a:b])
                      for a, b in distributed.shard_bounds(n, self.n_shards)]
            with self._single_blas_thread():
                self.group = ShardGroup(session, pieces, self.weights, scheme.loss, scheme.beta, scheme.gamma)
                self._stack.callback(self.group.close)
                self._start()
        except BaseException:
            self._stack.close()
            raise

    def prepare_targets(self, y: Any, what: str = "y") -> tuple[np.ndarray, np.ndarray | None]:
        """The (N, outputs) float64 targets ADMM fits (one-hot for labels), and the labels or None."""
        kind = default_loss(y)
        try:
            prepared = kind.prepare_targets(y, (len(y), self.n_outputs), np.float64)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{what}: {exc}") from None
        if kind.target_kind == "labels":
            return np.eye(self.n_outputs)[prepared], prepared
        if self.scheme.loss == "hinge":
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

    def step(self) -> dict[str, Any]:
        """One ADMM iteration; writes the model's weights and returns the iteration's metrics:
        ``loss`` (per sample), ``accuracy`` (for labels), ``residual`` (the RMS of
        ``z_L - W_L a_{L-1}``) and ``stage`` (``"warm start"`` while the multiplier stays at zero)."""
        warm = self.iterations < self.scheme.warm_start
        with self._single_blas_thread():
            weights, stats = self._iteration(update_multiplier=not warm)
        self.weights, self._first_cross = weights, stats["cross"]
        self.iterations += 1
        for layer, (w, b) in zip(self.dense, weights):
            layer.params["weight"][...] = w
            if b is not None:
                layer.params["bias"][...] = b
        n = self.n_samples
        logs: dict[str, Any] = {"loss": stats["loss"] / n}
        if self._labels:
            logs["accuracy"] = stats["correct"] / n
        logs["residual"] = math.sqrt(stats["residual"] / n)
        logs["stage"] = "warm start" if warm else "multiplier"
        return logs

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
            results = self.group.call("hidden_step", l, weights[l], weights[l + 1])  # [l + 1]: still the old
            gram, cross = sum(r[0] for r in results), sum(r[1] for r in results)
            if not (np.isfinite(gram).all() and np.isfinite(cross).all()):
                self._diverged()
            factor = updates.factor_gram(gram, self.n_samples, decay, self.bias[l + 1])
        results = self.group.call("output_step", weights, update_multiplier)
        stats = {"loss": sum(r["loss"] for r in results), "residual": sum(r["residual"] for r in results),
                 "cross": sum(r["cross"] for r in results)}
        if self._labels:
            stats["correct"] = sum(r["correct"] for r in results)
        if not (math.isfinite(stats["loss"]) and np.isfinite(stats["cross"]).all()):
            self._diverged()
        return weights, stats

    def _diverged(self) -> None:
        s = self.scheme
        raise TrainingDivergedError(
            f"ADMM diverged in iteration {self.iterations + 1}: a weight, activation or loss became NaN or "
            f"infinite. The model keeps the weights of the iteration before; try a larger weight_decay (now "
            f"{s.weight_decay:g}) or other beta/gamma (now {s.beta:g}/{s.gamma:g})")

    def close(self) -> None:
        """Release the shards, and the cluster if the run started one."""
        self._stack.close()

    def __enter__(self) -> "ADMMRun":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
