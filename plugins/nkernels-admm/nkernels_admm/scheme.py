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

from typing import TYPE_CHECKING, Any

import numpy as np

import nkernels as nk
from nkernels.runtime import distributed
from nkernels.callbacks import CallbackList
from nkernels.validation import check_choice, check_fit_arguments, check_int, check_number, check_validation_data
from nkernels.training import default_loss

if TYPE_CHECKING:
    from .run import ADMMRun

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

    The run starts from the model's weights: a forward pass gives the activations and
    pre-activations, and the outputs start at the loss's minimizer near the forward pass (so the
    first weight solves already fit the targets). :meth:`start` returns a run to step by hand.

    Every history entry has ``loss`` (the chosen loss of the network's outputs, per sample),
    ``accuracy`` for labels, ``residual`` (the RMS of ``z_L - W_L a_{L-1}``) and ``stage``.
    The ADMM state is float64 whatever the model's dtype; the model's weights are written after
    every iteration. When an iteration produces a non-finite value, training stops with a
    :class:`~nkernels.TrainingDivergedError` and the model keeps the weights of the iteration before.
    """

    def __init__(self, beta: float = 1.0, gamma: float = 10.0, loss: str = "hinge", warm_start: int = 10,
                 weight_decay: float = 1e-4, workers: int | None = None, scheduler: str | None = None,
                 shards: int | None = None):
        self.beta = check_number(beta, "beta", low=0, low_open=True)
        self.gamma = check_number(gamma, "gamma", low=0, low_open=True)
        self.loss = check_choice(loss, "loss", LOSSES)
        self.warm_start = check_int(warm_start, "warm_start", minimum=0)
        self.weight_decay = check_number(weight_decay, "weight_decay", low=0)
        self.workers, self.scheduler = distributed.check_options(workers, scheduler)
        self.shards = check_int(shards, "shards", allow_none=True)

    # -- training ------------------------------------------------------------------------------
    def start(self, model, X, y) -> "ADMMRun":
        """Check the model and data, shard the data (starting or joining a Dask cluster when asked) and
        return the run, ready for :meth:`ADMMRun.step`. Use it as a context manager, or call
        :meth:`ADMMRun.close`, to release the shards and the cluster::

            with ADMM(workers=2).start(model, X, y) as run:
                for _ in range(5):
                    print(run.step())
        """
        from .run import ADMMRun

        return ADMMRun(self, model, X, y)

    def fit(self, model, X, y=None, *, epochs=10, batch_size=32, seed=None, callbacks=None,
            validation_data=None):
        """Run ``epochs`` ADMM iterations on the whole of ``X``, ``y``; returns the History.

        ``batch_size`` is checked but not used (every iteration sees all the data), and ``seed``
        is not used (ADMM is deterministic; it starts from the model's current weights).
        """
        from . import updates

        epochs, _ = check_fit_arguments(epochs, batch_size)
        if validation_data is not None:
            admm_chain(model)  # a clear error about the model comes first
            X_val, y_val = check_validation_data(validation_data, model, default_loss(y))
        events = CallbackList(callbacks, model, self)
        history = nk.History()
        events.context.history = history
        with self.start(model, X, y) as run:
            if validation_data is not None:
                T_val, labels_val = run.prepare_targets(y_val, "y_val")

            def run_epoch(epoch: int) -> dict[str, Any]:
                logs = run.step()
                if validation_data is not None:
                    out = model.forward(X_val, training=False).astype(np.float64)
                    logs["val_loss"] = updates.loss_sum(out, T_val, self.loss) / len(X_val)
                    if labels_val is not None:
                        logs["val_accuracy"] = float((out.argmax(axis=1) == labels_val).mean())
                return logs

            events.run_epochs(model, {"epochs": epochs, "samples": run.n_samples, "scheme": "admm",
                                      "shards": run.n_shards, "workers": run.n_workers}, epochs, run_epoch)
        events.on_train_end(history)
        return history
