"""The ``autoencoder`` scheme: train any chain to reconstruct its input, optionally from a corrupted copy."""
from __future__ import annotations

from typing import Any

import numpy as np

import nkernels as nk
from nkernels.losses import get_loss
from nkernels.optimizers import get_optimizer
from nkernels.schemes import Capabilities
from nkernels.trainers import make_trainer
from nkernels.training import evaluate
from nkernels.validation import check_bool, check_int, check_number

from .blocks import split_blocks

#: the reconstruction losses: the mean squared error, and binary cross-entropy on logits (inputs in [0, 1])
LOSSES = ("mse", "bce_with_logits")
#: the fraction of inputs masked when neither ``corruption`` nor ``noise_std`` is given (chosen on digits)
DEFAULT_CORRUPTION = 0.3


class AutoencoderScheme(nk.schemes.Scheme):
    """Autoencoders (Rumelhart et al. 1986; denoising: Vincent et al. 2008): any chain whose output has
    its input's shape, trained to reconstruct its input, without labels.

    ``loss`` is ``"mse"`` (the default) or ``"bce_with_logits"`` (binary cross-entropy on the
    chain's outputs read as logits, so the chain ends without a Sigmoid; the inputs must lie in
    [0, 1]). A denoising autoencoder
    reconstructs the clean input from a corrupted copy, drawn afresh every epoch:
    ``corruption`` is the fraction of input values set to 0 (masking noise), ``noise_std`` the
    standard deviation of Gaussian noise added to them (after the masking when both are set).
    Left out, ``corruption`` is 0.3 (0 when ``noise_std`` > 0 is given) and ``noise_std`` 0; both 0
    train a plain autoencoder. The noise is the kernel the ``autoencoder`` extractor uses
    (:func:`nkernels_greedy.kernels.corrupt`), its random numbers drawn from the run's generator,
    so a resumed run corrupts as the uninterrupted one did. Validation data (``X_val`` or
    ``(X_val, None)``) is scored by the reconstruction loss of the clean inputs.

    The trained model is a feature extractor: :meth:`encoder` gives ``model[:code_layer]``, by
    default the chain up to the first trainable layer and the parameter-free layers after it (a
    Dense and its activation: the first hidden layer's features), and ``nk.layers.Frozen`` wraps it
    for a classifier on top. Dense chains and convolutional ones (Conv2D, pooling, ConvTranspose2D,
    Upsample2D) train alike, compiled where the layers allow (``compiled=False``: layer by layer).

    ``optimizer`` (a name or an :class:`~nkernels.optimizers.Optimizer`), ``lr`` and the other
    optimizer options configure the run's optimizer (a fresh copy for each ``fit``); Adam at
    1e-3 by default. ``checkpoint_dir``, ``resume`` and
    ``schedule`` are the toolkit's (:class:`~nkernels.schemes.Scheme`); ``augment_shift`` is
    refused, as it would shift the inputs but not the clean targets.
    """

    name = "autoencoder"
    capabilities = Capabilities(labels="none", yields=("extractor",))
    default_epochs = 30
    default_batch_size = 32

    def __init__(self, loss: Any = "mse", corruption: float | None = None, noise_std: float | None = None,
                 code_layer: int | None = None, optimizer: Any = "adam", lr: float | None = None,
                 compiled: bool = True, *, checkpoint_dir: Any = None, resume: bool = False, schedule: Any = None,
                 augment_shift: int = 0, **optimizer_options: Any):
        if augment_shift:
            raise ValueError("autoencoder: augment_shift would shift the inputs but not the clean targets they are "
                             "reconstructed as; drop it")
        super().__init__(checkpoint_dir=checkpoint_dir, resume=resume, schedule=schedule)
        if not isinstance(loss, str) or loss not in LOSSES:
            raise ValueError(f"autoencoder: loss must be one of {LOSSES} (the reconstruction error), got {loss!r}")
        self.loss = loss
        self.noise_std = check_number(0.0 if noise_std is None else noise_std, "noise_std", low=0)
        default = 0.0 if self.noise_std else DEFAULT_CORRUPTION
        self.corruption = check_number(default if corruption is None else corruption, "corruption", low=0, high=1,
                                       high_open=True)
        self.code_layer = check_int(code_layer, "code_layer", allow_none=True)
        if lr is not None:
            optimizer_options["lr"] = lr
        self.optimizer = get_optimizer(optimizer, **optimizer_options)
        self.compiled = check_bool(compiled, "compiled")

    # -- the trained model ---------------------------------------------------------------------
    def encoder(self, model: nk.Sequential) -> nk.Sequential:
        """The part of a trained ``model`` whose outputs are the features: ``model[:code_layer]`` (sharing
        its layers), by default up to the end of the first block (the first trainable layer and the
        parameter-free layers after it)."""
        return model[:self._code_layer(model)]

    def adapt_model(self, model: nk.Sequential, n_features: int, n_classes: int) -> nk.Sequential:
        """The autoencoder for a classifier chain of flat inputs: its hidden layers (shared), and in place of
        its output layer a Dense layer back to the ``n_features`` inputs, drawn from seed 0."""
        blocks = split_blocks(model)
        if len(blocks) < 2:
            raise ValueError("autoencoder: the classifier has no hidden layer to keep; give a chain with one")
        hidden = nk.Sequential(model.layers[:blocks[-1].core])
        shape = hidden.output_shape((1, n_features))[1:]
        if len(shape) != 1:
            raise ValueError(f"autoencoder: the classifier's last hidden layer gives outputs of shape {shape}; "
                             f"adapt_model needs flat ones (a chain of Dense layers)")
        decoder = nk.Sequential([nk.layers.Dense(shape[0], n_features)], seed=0, dtype=model.dtype)
        return nk.Sequential(hidden.layers + decoder.layers)

    def _code_layer(self, model: nk.Sequential) -> int:
        if self.code_layer is None:
            blocks = split_blocks(model)
            if len(blocks) < 2:
                raise ValueError("autoencoder: the chain has one trainable layer, so it has no encoder below the "
                                 "output; give code_layer or a chain with a hidden layer")
            return blocks[0].stop
        if not 1 <= self.code_layer < len(model.layers):
            raise ValueError(f"autoencoder: code_layer={self.code_layer} must lie in 1..{len(model.layers) - 1} "
                             f"(the encoder is model[:code_layer], the chain has {len(model.layers)} layers)")
        return self.code_layer

    # -- a run ---------------------------------------------------------------------------------
    def setup(self, run) -> None:
        """Check that the chain reconstructs its input, and build the trainer with the clean inputs as targets."""
        model, X = run.model, run.X
        sample_shape = X.shape[1:]
        out_shape = tuple(model.output_shape((1,) + sample_shape)[1:])
        if out_shape != sample_shape:
            raise ValueError(f"autoencoder: the chain must reconstruct its input, but it maps samples of shape "
                             f"{sample_shape} to {out_shape}; end it with layers back to the input's shape")
        self._code_layer(model)
        if self.loss == "bce_with_logits":
            if isinstance(model.layers[-1], nk.layers.Sigmoid):
                raise ValueError(f"autoencoder: loss='bce_with_logits' reads the chain's outputs as logits, but its "
                                 f"last layer ({len(model.layers) - 1}) is a Sigmoid; drop it, or use loss='mse'")
            for name, data in (("X", X), ("X_val", None if run.validation_data is None else run.validation_data[0])):
                if data is not None and (data.min() < 0 or data.max() > 1):
                    raise ValueError(f"autoencoder: loss='bce_with_logits' reconstructs values in [0, 1], but {name} "
                                     f"holds values in [{data.min():g}, {data.max():g}]; scale it or use loss='mse'")
        run.loss = get_loss(self.loss)
        run.optimizer = self.optimizer.fresh()
        self.trainer = make_trainer(model, run.loss, run.optimizer, sample_shape, run.batch_size, self.compiled)
        self.clean = X.reshape(run.n_samples, -1)
        self.targets = run.loss.prepare_targets(X, (run.n_samples,) + out_shape, model.dtype) \
            .reshape(run.n_samples, -1)
        self.noisy = np.empty_like(self.clean) if self.corruption or self.noise_std else None
        run.info.update(corruption=self.corruption, noise_std=self.noise_std)

    def train_epoch(self, run, epoch: int) -> dict[str, Any]:
        """One epoch of shuffled mini-batches reconstructing the clean inputs from this epoch's corrupted copy."""
        inputs = self.clean
        if self.noisy is not None:
            from .kernels import corrupt

            corrupt(self.clean.reshape(-1), self.corruption, self.noise_std, int(run.rng.integers(2**62)), 0,
                    self.noisy.reshape(-1))
            inputs = self.noisy
        logs = run.train_batches(self.trainer.run, inputs, self.targets)
        logs.pop("accuracy", None)  # binary cross-entropy counts pixels' 0/1 decisions: no figure of a reconstruction
        return logs

    def validation_metrics(self, run, X_val, y_val) -> dict[str, float]:
        """The reconstruction loss of the clean validation inputs."""
        return {"loss": evaluate(run.model, X_val, X_val, loss=run.loss)["loss"]}

    def teardown(self, run) -> None:
        """Forget the run's trainer and data."""
        for name in ("trainer", "clean", "targets", "noisy"):  # a scheme object keeps its configuration only
            vars(self).pop(name, None)
