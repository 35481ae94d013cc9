"""The ``mac`` scheme: the method of auxiliary coordinates (Carreira-Perpiñán and Wang, "Distributed
optimization of deeply nested systems", AISTATS 2014; ParMAC, 2016) for Dense/activation chains.

The nested network ``f_K(... f_1(x))`` gets one auxiliary coordinate ``z_k`` per sample and hidden
layer, and MAC minimises the quadratic-penalty objective

    sum_n  loss(y_n, W_K z_{K-1,n} + b_K)  +  mu/2 sum_n sum_{k<K} ||z_{k,n} - f_k(W_k z_{k-1,n} + b_k)||^2

(``z_0 = x``) by alternating a Z-step (each sample's coordinates, on their own: a few gradient
steps of a small problem per sample, no chain rule through the net) and a W-step (each layer
fitted on its own to map its input coordinates to its output coordinates, or for the last layer
to the targets), raising ``mu`` every iteration so that the coordinates come to agree with a
forward pass.
"""
from __future__ import annotations

from typing import Any

import nkernels as nk
from nkernels.runtime import distributed
from nkernels.schemes import Capabilities
from nkernels.validation import check_int, check_number


#: the W-step's learning rate when the optimizer is given by name without one
DEFAULT_LR = 0.003


class MAC(nk.schemes.Scheme):
    """The method of auxiliary coordinates (MAC), distributed on Dask as ParMAC does.

    One epoch is one MAC iteration: the Z-step of every sample, then the W-step of every layer.

    - ``mu`` and ``mu_growth``: the penalty of iteration ``i`` is ``mu * mu_growth ** i``; the
      epoch logs show it (``mu``) and the constraint violation (``violation``: the RMS distance
      of the coordinates from a forward pass of the new weights), which falls as ``mu`` grows.
    - ``z_steps``: the Z-step's gradient steps per sample, each layer's coordinates in turn,
      each step the inverse of a bound on that coordinate's curvature
      (the own term's ``mu`` plus the next layer's, or the loss's, through ``||W_{k+1}||_2^2``).
    - ``w_epochs``, ``optimizer`` (a name or an instance), ``lr`` (default 0.003 with an
      optimizer's name) and the run's ``batch_size``: the W-step, that many
      passes of mini-batches over the data per layer, each hidden layer fitting
      ``f(W z_{k-1} + b)`` to ``z_k`` by least squares and the last layer the loss, with
      nkernels' fused SGD/Adam/AdamW update (each layer's moments carry across iterations;
      a learning-rate schedule changes ``lr``).
    - ``workers=N`` shards the samples across a Dask ``LocalCluster`` of N processes on
      loopback; ``scheduler="tcp://HOST:PORT"`` joins a running cluster (its workers need
      nkernels-mac installed). The shards keep their samples and coordinates; the Z-step runs
      on each shard at once, and in the W-step the layers travel round the shards (ParMAC), so
      the shards train different layers at the same time. ``shards`` splits the data into
      that many pieces (default: one per worker); the numbers depend on ``shards``, not on
      the workers or their timing.
    - ``checkpoint_dir``/``resume``: a checkpoint holds the coordinates of every sample, the
      iteration count (so ``mu``) and each layer's optimizer moments and step, beside what
      the toolkit saves (the weights, the random generator ...): a resumed run is bit-identical.

    The model is trained as it is (no ``adapt_model``): Dense layers each followed by at most
    one ReLU, Sigmoid or Tanh, the last Dense layer's outputs going to the loss (softmax
    cross-entropy for labels, the mean squared error for real targets). The coordinates,
    moments and the W-step's arithmetic are float64 whatever the model's dtype; the model
    holds the weights between iterations. ``augment_shift`` is refused: the coordinates belong
    to fixed samples.
    """

    name = "mac"
    capabilities = Capabilities(labels="required", yields=("classifier", "regressor"), distributed=True)
    default_epochs, default_batch_size = 30, 32

    def __init__(self, mu: float = 0.01, mu_growth: float = 1.2, z_steps: int = 3, w_epochs: int = 1,
                 optimizer: Any = "adam", lr: float | None = None, workers: int | None = None,
                 scheduler: str | None = None, shards: int | None = None, *, checkpoint_dir: Any = None,
                 resume: bool = False, schedule: Any = None, augment_shift: int = 0):
        if augment_shift:
            raise ValueError("mac keeps one auxiliary coordinate per training sample, so random translations "
                             "(augment_shift) would make the W-step's inputs disagree with them; drop augment_shift")
        super().__init__(checkpoint_dir=checkpoint_dir, resume=resume, schedule=schedule)
        self.mu = check_number(mu, "mu", low=0, low_open=True)
        self.mu_growth = check_number(mu_growth, "mu_growth", low=1)
        self.z_steps = check_int(z_steps, "z_steps")
        self.w_epochs = check_int(w_epochs, "w_epochs")
        if lr is None and isinstance(optimizer, str):
            lr = DEFAULT_LR
        self.optimizer = nk.optimizers.get_optimizer(optimizer, **({} if lr is None else {"lr": lr}))
        if self.optimizer.fused_form() is None:
            raise ValueError(f"mac's W-step runs nkernels' fused update, which takes SGD, Adam or AdamW without "
                             f"clip_norm/max_norm; got {type(self.optimizer).__name__}")
        self.workers, self.scheduler = distributed.check_options(workers, scheduler)
        self.shards = check_int(shards, "shards", allow_none=True)

    # -- the toolkit's hooks -------------------------------------------------------------------
    def setup(self, run) -> None:
        """Check the chain, shard the data (a Dask cluster starts here) and start the coordinates
        from a forward pass."""
        from .run import MACRun

        run.optimizer = self.optimizer.fresh()  # its lr is the W-step's, which schedules change
        self.mac = MACRun(self, run)
        run.info.update(shards=self.mac.n_shards, workers=self.mac.n_workers)

    def train_epoch(self, run, epoch: int) -> dict[str, Any]:
        """One MAC iteration: Z-step, W-step; logs ``loss``/``accuracy`` of a forward pass on the
        training data, ``violation``, ``mu`` and ``w_loss`` (the W-step's summed layer losses)."""
        return self.mac.iterate()

    def checkpoint_state(self, run) -> tuple[dict[str, Any], dict[str, Any]]:
        """The coordinates, ``mu``'s iteration and the layers' optimizer state. Without a checkpoint
        directory only the divergence guard asks, every epoch: then the shards keep their
        coordinates where they live instead of sending them here."""
        return self.mac.state(gather=self.checkpoint_dir is not None)

    def restore_state(self, run, state: dict[str, Any], arrays: dict[str, Any]) -> None:
        """Put back the iteration count, the optimizer state and the coordinates (on their shards)."""
        self.mac.load_state(state, arrays)

    def divergence_hint(self, run: Any) -> str:
        """The options that keep the W-step and the Z-step stable."""
        return f"try a smaller lr (now {run.optimizer.lr:g}) or a larger mu (now {self.mu:g})"

    def teardown(self, run) -> None:
        """Release the shards and the cluster; the scheme object keeps only its options."""
        mac = vars(self).pop("mac", None)
        if mac is not None:
            mac.close()
