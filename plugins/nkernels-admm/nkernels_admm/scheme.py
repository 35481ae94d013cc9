"""The ``admm`` scheme: Taylor et al., "Training Neural Networks Without Gradients: A Scalable ADMM
Approach" (ICML 2016), for chains of Dense layers with ReLU between them.

The network ``z_l = W_l a_{l-1} + b_l``, ``a_l = relu(z_l)`` is split into its variables, and each
iteration minimizes, layer by layer and in closed form::

    loss(z_L, y) + <z_L, lam> + beta ||z_L - W_L a_{L-1}||^2
                 + sum_{l<L} gamma ||a_l - relu(z_l)||^2 + beta ||z_l - W_l a_{l-1}||^2

over the weights (regularized least squares through Gram matrices), the activations (a linear
system per sample), the pre-activations (a piecewise problem per element, a Numba kernel) and the
outputs; then ``lam += beta (z_L - W_L a_{L-1})``. The first ``warm_start`` iterations leave the
multiplier at zero, as the paper does.
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

import nkernels as nk
from nkernels import distributed
from nkernels.callbacks import CallbackList
from nkernels.data import (check_features, check_fit_arguments, check_model_input, check_same_length,
                           check_validation_data)
from nkernels.errors import TrainingDivergedError
from nkernels.training import default_loss

LOSSES = ("hinge", "least_squares")


def admm_chain(model) -> list:
    """The Dense layers of ``model``, which must read Dense, ReLU, Dense, ..., ReLU, Dense
    (Flatten layers anywhere are allowed: they only reshape). A ValueError names the first layer
    that does not fit, with its position."""
    L = nk.layers
    dense, expect = [], "dense"
    layers = list(model.layers)
    for i, layer in enumerate(layers):
        kind = type(layer)
        where = f"layer {i} ({kind.__name__})"
        if kind is L.Flatten:
            continue
        if kind not in (L.Dense, L.ReLU):
            raise ValueError(f"ADMM cannot train {where}: it trains chains of Dense layers with a ReLU between "
                             f"consecutive ones (Dense, ReLU, ..., Dense; Flatten is allowed). Train this "
                             f"model with another scheme, such as backprop")
        if kind is L.ReLU and expect == "dense":
            raise ValueError(f"ADMM cannot train {where} here: a ReLU must follow a Dense layer "
                             f"(the chain is Dense, ReLU, ..., Dense)")
        if kind is L.Dense and expect == "relu":
            raise ValueError(f"ADMM cannot train {where} directly after another Dense layer: it needs a ReLU "
                             f"between consecutive Dense layers (Dense, ReLU, ..., Dense)")
        if kind is L.Dense:
            dense.append(layer)
        expect = "relu" if kind is L.Dense else "dense"
    if not dense:
        raise ValueError("ADMM trains chains of Dense layers with ReLU between them; the model has no Dense layer")
    if expect == "dense":
        last = max(i for i, layer in enumerate(layers) if type(layer) is L.ReLU)
        raise ValueError(f"ADMM cannot train layer {last} (ReLU) at the end of the chain: the last layer must be "
                         f"Dense, whose pre-activations the loss acts on")
    return dense


def _positive(value: Any, name: str, minimum_inclusive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or (value == 0 and not minimum_inclusive):
        bound = ">= 0" if minimum_inclusive else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def _count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class ADMM(nk.schemes.Scheme):
    """Gradient-free training by ADMM (Taylor et al., ICML 2016) for Dense/ReLU chains.

    One epoch is one ADMM iteration over the whole training set (``batch_size`` is not used).

    - ``beta`` and ``gamma``: the penalties on ``z_l = W_l a_{l-1} + b_l`` and ``a_l = relu(z_l)``;
      the paper's defaults are 1 and 10.
    - ``loss``: ``"hinge"`` (the paper's binary hinge on each output against one-hot labels) or
      ``"least_squares"`` (one-hot labels, or real targets of shape (N, outputs)).
    - ``warm_start``: the number of first iterations that leave the Lagrange multiplier at zero.
    - ``weight_decay``: the ridge term ``tau`` of the weight updates, which solve
      ``min ||Z - A W.T - b||^2 + N tau ||W||^2`` (the bias is not penalized); it keeps the
      least-squares systems well conditioned, for example for pixels that are always 0.
    - ``workers=N`` shards the data across a Dask ``LocalCluster`` of N processes on loopback;
      ``scheduler="tcp://HOST:PORT"`` joins a running cluster (its workers need nkernels-admm
      installed). Each shard keeps its activations, pre-activations and multiplier where it lives
      and sends back only Gram matrices and cross products, which this process sums and solves.
      ``shards`` splits the data into that many pieces (default: one per worker); the sums run
      in shard order, so the weights do not depend on the timing of the workers.

    Every history entry has ``loss`` (the chosen loss of the network's outputs, per sample),
    ``accuracy`` for labels, ``residual`` (the RMS of ``z_L - W_L a_{L-1}``) and ``stage``.
    The ADMM state is float64 whatever the model's dtype; the model's weights are written after
    every iteration. When an iteration produces a non-finite value, training stops with a
    :class:`~nkernels.TrainingDivergedError` and the model keeps the weights of the iteration before.
    """

    def __init__(self, beta: float = 1.0, gamma: float = 10.0, loss: str = "hinge", warm_start: int = 10,
                 weight_decay: float = 1e-4, workers: int | None = None, scheduler: str | None = None,
                 shards: int | None = None):
        self.beta = _positive(beta, "beta")
        self.gamma = _positive(gamma, "gamma")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(map(repr, LOSSES))}, got {loss!r}")
        self.loss = loss
        self.warm_start = _count(warm_start, "warm_start", 0)
        self.weight_decay = _positive(weight_decay, "weight_decay", minimum_inclusive=True)
        self.workers, self.scheduler = distributed.check_options(workers, scheduler)
        self.shards = None if shards is None else _count(shards, "shards", 1)

    # -- data ----------------------------------------------------------------------------------
    def _targets(self, y: Any, out_shape: tuple, what: str = "y") -> tuple[np.ndarray, np.ndarray | None]:
        """The (N, outputs) float64 targets ADMM fits, and the labels (or None for real targets)."""
        kind = default_loss(y)
        try:
            prepared = kind.prepare_targets(y, out_shape, np.float64)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{what}: {exc}") from None
        if kind.target_kind == "labels":
            return np.eye(out_shape[-1])[prepared], prepared
        if self.loss == "hinge":
            raise ValueError(f"{what}: the hinge loss needs integer class labels (one per sample); for real "
                             f"targets use loss='least_squares'")
        return prepared.reshape(len(prepared), -1), None

    # -- training ------------------------------------------------------------------------------
    def fit(self, model, X, y=None, *, epochs=10, batch_size=32, seed=None, callbacks=None,
            validation_data=None):
        """Run ``epochs`` ADMM iterations on the whole of ``X``, ``y``; returns the History.

        ``batch_size`` is checked but not used (every iteration sees all the data), and ``seed``
        is not used (ADMM is deterministic; it starts from the model's current weights).
        """
        epochs, _ = check_fit_arguments(epochs, batch_size)
        dense = admm_chain(model)
        if model.device != "cpu":
            raise ValueError(f"ADMM runs on the CPU; the model is on {model.device!r} (use model.to('cpu'))")
        X = check_features(X, dtype=np.float64)
        check_same_length(X, y)
        out_shape = check_model_input(model, X)
        targets, labels = self._targets(y, out_shape)
        if validation_data is not None:
            X_val, y_val = check_validation_data(validation_data, model, default_loss(y))
            validation = (X_val, *self._targets(y_val, (len(X_val), out_shape[-1]), "y_val"))
        n = len(X)
        n_shards = self.shards
        X = X.reshape(n, -1)
        weights = [(d.params["weight"].astype(np.float64), d.params["bias"].astype(np.float64) if d.use_bias
                    else None) for d in dense]

        from threadpoolctl import threadpool_limits

        from .shards import ShardGroup

        events = CallbackList(callbacks, model, self)
        history = nk.History()
        events.context.history = history
        with distributed.connect(self.workers, self.scheduler) as session:
            n_shards = n_shards or session.n_workers
            if n_shards > n:
                raise ValueError(f"cannot split {n} samples into {n_shards} shards; use at most {n}")
            pieces = [(X[a:b], targets[a:b], None if labels is None else labels[a:b])
                      for a, b in distributed.shard_bounds(n, n_shards)]
            # one BLAS thread here: N workers are the way to use N cores, and a spinning BLAS pool
            # slows these small solves down on a busy machine
            with threadpool_limits(limits=1, user_api="blas"):
                group = ShardGroup(session, pieces, weights, self.loss, self.beta, self.gamma)
                try:
                    events.on_train_begin(model, {"epochs": epochs, "samples": n, "scheme": "admm",
                                                  "shards": n_shards, "workers": session.n_workers})
                    self._run(model, dense, group, weights, n, epochs, labels is not None,
                              validation if validation_data is not None else None, events, history)
                except BaseException as exc:
                    events.on_exception(exc)
                    raise
                finally:
                    group.close()
        events.on_train_end(history)
        return history

    def _run(self, model, dense, group, weights, n, epochs, has_labels, validation, events, history) -> None:
        from . import updates

        bias = [b is not None for _, b in weights]
        starts = group.call("start")
        first_gram = sum(s[0] for s in starts)
        first_cross = sum(s[1] for s in starts)
        if not (np.isfinite(first_gram).all() and np.isfinite(first_cross).all()):
            raise TrainingDivergedError("the Gram matrix of X, or its products with the first layer's outputs, is "
                                        "not finite: the values of X or of the initial weights are too large; "
                                        "rescale X")
        first_factor = updates.factor_gram(first_gram, n, self.weight_decay, bias[0])  # the data's: fixed
        for epoch in range(epochs):
            events.on_epoch_begin(epoch)
            started = time.perf_counter()
            warm = epoch < self.warm_start
            weights, stats = self._iteration(group, first_factor, first_cross, weights, bias, n, not warm, epoch)
            first_cross = stats["cross"]
            for layer, (w, b) in zip(dense, weights):
                layer.params["weight"][...] = w
                if b is not None:
                    layer.params["bias"][...] = b
            logs: dict[str, Any] = {"loss": stats["loss"] / n}
            if has_labels:
                logs["accuracy"] = stats["correct"] / n
            logs["residual"] = math.sqrt(stats["residual"] / n)
            if validation is not None:
                X_val, T_val, labels_val = validation
                out = model.forward(X_val, training=False).astype(np.float64)
                logs["val_loss"] = updates.loss_sum(out, T_val, self.loss) / len(X_val)
                if labels_val is not None:
                    logs["val_accuracy"] = float((out.argmax(axis=1) == labels_val).mean())
            logs["stage"] = "warm start" if warm else "multiplier"
            logs["time"] = time.perf_counter() - started
            history.append(logs)
            events.on_epoch_end(epoch, logs)
            if events.stop_training:
                break

    def _iteration(self, group, first_factor, first_cross, weights, bias, n, update_multiplier, epoch):
        """One ADMM sweep: layer by layer, solve the weights on this process from the summed Gram
        matrices and cross products, then let the shards update their activations and
        pre-activations; last the outputs and the multiplier. Returns the new weights and the
        summed statistics of the output step."""
        from . import updates

        new = list(weights)
        factor, cross = first_factor, first_cross
        for l in range(len(weights)):
            new[l] = updates.solve_weights(factor, cross, bias[l])
            if not all(np.isfinite(p).all() for p in new[l] if p is not None):
                self._diverged(epoch)
            if l == len(weights) - 1:
                break
            results = group.call("hidden_step", l, new[l], new[l + 1])  # new[l + 1] is still the old one
            gram, cross = sum(r[0] for r in results), sum(r[1] for r in results)
            if not (np.isfinite(gram).all() and np.isfinite(cross).all()):
                self._diverged(epoch)
            factor = updates.factor_gram(gram, n, self.weight_decay, bias[l + 1])
        results = group.call("output_step", new, update_multiplier)
        stats = {"loss": sum(r["loss"] for r in results), "residual": sum(r["residual"] for r in results),
                 "cross": sum(r["cross"] for r in results)}
        if results[0]["correct"] is not None:
            stats["correct"] = sum(r["correct"] for r in results)
        if not (math.isfinite(stats["loss"]) and np.isfinite(stats["cross"]).all()):
            self._diverged(epoch)
        return new, stats

    def _diverged(self, epoch: int) -> None:
        raise TrainingDivergedError(
            f"ADMM diverged in iteration {epoch + 1}: a weight, activation or loss became NaN or infinite. The "
            f"model keeps the weights of the iteration before; try a larger weight_decay (now "
            f"{self.weight_decay:g}) or other beta/gamma (now {self.beta:g}/{self.gamma:g})")
