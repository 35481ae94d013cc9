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
from nkernels.schemes import Capabilities
from nkernels.validation import check_choice, check_int, check_number

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

    One epoch is one ADMM iteration over the whole training set: the scheme has neither
    mini-batches nor a learning rate, so ``batch_size``, ``schedule`` and ``augment_shift`` are
    refused.

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
    - ``checkpoint_dir``/``resume`` (see :class:`~nkernels.schemes.Scheme`): a checkpoint holds the
      weights in float64, the iteration count and every shard's activations, pre-activations and
      multiplier, so that a resumed run (in this process or on workers) is bit-identical.

    The run starts from the model's weights: a forward pass gives the activations and
    pre-activations, and the outputs start at the loss's minimizer near the forward pass (so the
    first weight solves already fit the targets). :meth:`start` returns a run to step by hand.

    Every history entry has ``loss`` (the chosen loss of the network's outputs, per sample),
    ``accuracy`` for labels, ``residual`` (the RMS of ``z_L - W_L a_{L-1}``) and ``stage``
    (``"warm start"`` or ``"multiplier"``); ``val_loss`` is the same loss on the validation data.
    The ADMM state is float64 whatever the model's dtype; the model's weights are written after
    every iteration and read back before the next (a callback that changes them changes the run).
    When an iteration produces a non-finite value, training stops with a
    :class:`~nkernels.TrainingDivergedError` and the model keeps the weights of the iteration before.
    """

    name = "admm"
    capabilities = Capabilities(labels="required", yields=("classifier", "regressor"), learning_rate=False,
                                batches=False, distributed=True)
    default_epochs = 10

    def __init__(self, beta: float = 1.0, gamma: float = 10.0, loss: str = "hinge", warm_start: int = 10,
                 weight_decay: float = 1e-4, workers: int | None = None, scheduler: str | None = None,
                 shards: int | None = None, *, checkpoint_dir: Any = None, resume: bool = False,
                 schedule: Any = None, augment_shift: int = 0):
        super().__init__(checkpoint_dir=checkpoint_dir, resume=resume, schedule=schedule,
                         augment_shift=augment_shift)
        self.beta = check_number(beta, "beta", low=0, low_open=True)
        self.gamma = check_number(gamma, "gamma", low=0, low_open=True)
        #: the loss on the network's outputs that ADMM minimizes ("hinge" or "least_squares")
        self.output_loss = check_choice(loss, "loss", LOSSES)
        self.warm_start = check_int(warm_start, "warm_start", minimum=0)
        self.weight_decay = check_number(weight_decay, "weight_decay", low=0)
        self.workers, self.scheduler = distributed.check_options(workers, scheduler)
        self.shards = check_int(shards, "shards", allow_none=True)

    def start(self, model, X, y) -> "ADMMRun":
        """Check the model and data as :meth:`fit` does, shard the data (starting or joining a Dask
        cluster when asked) and return the run, ready for :meth:`ADMMRun.step`. Use it as a context
        manager, or call :meth:`ADMMRun.close`, to release the shards and the cluster::

            with ADMM(workers=2).start(model, X, y) as run:
                for _ in range(5):
                    print(run.step())
        """
        from .run import ADMMRun

        return ADMMRun(self, nk.schemes.TrainingRun(self, model, X, y))

    # -- the toolkit's hooks -------------------------------------------------------------------
    def setup(self, run) -> None:
        """Shard the data and start the ADMM variables from a forward pass (a Dask cluster starts here)."""
        from .run import ADMMRun

        self.admm = ADMMRun(self, run)
        run.info.update(shards=self.admm.n_shards, workers=self.admm.n_workers)

    def train_epoch(self, run, epoch: int) -> dict[str, Any]:
        """One ADMM iteration over all the data."""
        return self.admm.iterate()

    def validation_metrics(self, run, X_val, y_val) -> dict[str, float]:
        """The ADMM loss per sample of the network's outputs on the validation data, and the accuracy."""
        from . import updates

        targets, labels = self.admm.prepare_targets(y_val, "y_val")
        out = run.model.forward(X_val, training=False).astype(np.float64)
        scores = {"loss": updates.loss_sum(out, targets, self.output_loss) / len(X_val)}
        if labels is not None:
            scores["accuracy"] = float((out.argmax(axis=1) == labels).mean())
        return scores

    def checkpoint_state(self, run) -> tuple[dict[str, Any], dict[str, Any]]:
        """The iteration count, the float64 weights and the shards' variables. Without a checkpoint
        directory only the divergence guard asks, at every iteration: then the shards keep their
        variables where they live instead of sending them here."""
        return self.admm.state(gather=self.checkpoint_dir is not None)

    def restore_state(self, run, state: dict[str, Any], arrays: dict[str, Any]) -> None:
        """Put back the iteration count, the weights and the shards' variables (on their workers)."""
        self.admm.load_state(state, arrays)

    def divergence_hint(self, run: Any = None) -> str:
        """The options that keep the least-squares systems and the penalties in balance."""
        return (f"try a larger weight_decay (now {self.weight_decay:g}) or other beta/gamma (now "
                f"{self.beta:g}/{self.gamma:g})")

    def teardown(self, run) -> None:
        """Release the shards and the cluster; the scheme object keeps only its options."""
        admm = vars(self).pop("admm", None)
        if admm is not None:
            admm.close()
