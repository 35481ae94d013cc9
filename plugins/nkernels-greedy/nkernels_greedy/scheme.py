"""The ``greedy`` scheme: train a chain one block at a time, then optionally fine-tune it whole."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

import nkernels as nk
from nkernels.callbacks import CallbackList
from nkernels.data import (check_features, check_fit_arguments, check_model_input, check_same_length,
                           check_validation_data)
from nkernels.errors import TrainingDivergedError
from nkernels.layers.base import check_bool, check_positive_int
from nkernels.losses import get_loss
from nkernels.optimizers import Optimizer, get_optimizer
from nkernels.training import default_loss, evaluate, make_trainer

from .blocks import Block, extractor_form, split_blocks
from .checks import check_choice, check_fraction
from .extractors import RBM, Autoencoder


@dataclass
class Stage:
    """One stage of a greedy run: ``kind`` is pretrain, head, output or finetune."""

    kind: str
    block: Block | None
    text: str = ""


class Greedy(nk.schemes.Scheme):
    """Greedy layer-wise training: each block (a trainable layer and the parameter-free layers after
    it) is trained in turn on the output of the frozen blocks below it.

    ``mode="unsupervised"`` (Hinton et al. 2006; Bengio et al. 2007) pretrains each hidden block
    as a feature extractor: an autoencoder (``pretrain="autoencoder"``, with ``tied`` weights or
    not and an optional denoising ``corruption``) or an RBM trained by contrastive divergence
    (``pretrain="rbm"``, ``cd_k`` Gibbs steps, ``visible`` units ``"auto"``, ``"bernoulli"`` or
    ``"gaussian"``). With labels, the output block is then trained on the frozen features;
    without labels, every block is pretrained. Pretraining needs Dense blocks, each followed by at
    most one activation.

    ``mode="supervised"`` (Belilovsky et al. 2019) trains each hidden block together with a small
    auxiliary classifier ``head`` on the labels, then freezes it and drops the head; the last
    hidden block is trained together with the output block, its head for good. ``head`` is None (a linear head), an int (one hidden ReLU layer of that
    width) or a callable ``head(input_shape, n_outputs)`` returning a list of layers. Any kind of
    block works in this mode (convolutions too).

    ``finetune_epochs`` > 0 then trains the whole chain with backprop (``finetune_lr``, defaulting
    to ``lr``). ``epochs`` (a ``fit`` argument) is the number of epochs of each block's stage.

    ``optimizer`` (a name or an :class:`~nkernels.optimizers.Optimizer`), ``lr`` and the other
    optimizer options configure every stage; each stage starts with a fresh optimizer state.
    ``loss`` defaults to softmax cross-entropy for integer labels and MSE otherwise.
    ``compiled=False`` runs every stage step by step, layer by layer (same numbers).

    Each epoch's logs carry a text ``"stage"`` (for example ``"stage 1/4: autoencoder on layer
    0"``), which the progress bar shows; ``loss`` is the stage's own loss (reconstruction error
    while pretraining, the training loss otherwise).
    """

    def __init__(self, mode: str = "unsupervised", pretrain: str = "autoencoder", tied: bool = True,
                 corruption: float = 0.0, cd_k: int = 1, visible: str = "auto", head: Any = None,
                 finetune_epochs: int = 0, finetune_lr: float | None = None, optimizer: Any = "adam",
                 lr: float | None = None, loss: Any = None, compiled: bool = True, **optimizer_options: Any):
        self.mode = check_choice(mode, "mode", ("unsupervised", "supervised"))
        self.pretrain = check_choice(pretrain, "pretrain", ("autoencoder", "rbm"))
        self.tied = check_bool(tied, "tied")
        self.corruption = check_fraction(corruption, "corruption")
        self.cd_k = check_positive_int(cd_k, "cd_k")
        self.visible = check_choice(visible, "visible", ("auto", "bernoulli", "gaussian"))
        if not (head is None or callable(head) or (isinstance(head, (int, np.integer)) and not isinstance(head, bool))):
            raise TypeError(f"head must be None (linear), an int (hidden width) or a callable "
                            f"head(input_shape, n_outputs) -> list of layers, got {head!r}")
        self.head = check_positive_int(head, "head") if isinstance(head, (int, np.integer)) else head
        self.finetune_epochs = check_positive_int(finetune_epochs, "finetune_epochs", minimum=0)
        if lr is not None:
            optimizer_options["lr"] = lr
        self.optimizer = get_optimizer(optimizer, **optimizer_options)
        self.finetune_lr = None if finetune_lr is None else _fresh(self.optimizer, finetune_lr).lr
        self.loss = None if loss is None else get_loss(loss)
        self.compiled = check_bool(compiled, "compiled")

    # -- the plan ------------------------------------------------------------------------------
    def plan(self, model: nk.Sequential, labelled: bool = True) -> list[Stage]:
        """The stages a run on ``model`` goes through (with labels or without); checks the blocks."""
        blocks = split_blocks(model)
        stages = []
        if self.mode == "supervised":  # the output block is the last hidden block's head
            stages += [Stage("head", b) for b in blocks[:-2]]
            stages.append(Stage("output", Block(blocks[-2].start, blocks[-2].core, blocks[-1].stop)
                                if len(blocks) > 1 else blocks[-1]))
        else:
            pretrained = blocks[:-1] if labelled else blocks
            for b in pretrained:
                extractor_form(model, b, self.pretrain)
            stages += [Stage("pretrain", b) for b in pretrained]
            if labelled:
                stages.append(Stage("output", blocks[-1]))
        if self.finetune_epochs:
            stages.append(Stage("finetune", None))
        for s, stage in enumerate(stages, 1):
            stage.text = f"stage {s}/{len(stages)}: {_describe(model, stage, self.pretrain)}"
        return stages

    # -- fit -----------------------------------------------------------------------------------
    def fit(self, model, X, y=None, *, epochs=10, batch_size=32, seed=None, callbacks=None,
            validation_data=None):
        """Train ``model`` in place, stage after stage; returns a History with one entry per epoch."""
        epochs, batch_size = check_fit_arguments(epochs, batch_size)
        if model.device != "cpu":
            raise ValueError(f"greedy runs on the CPU; the model is on {model.device!r} (call model.to('cpu'))")
        labelled = y is not None
        if self.mode == "supervised" and not labelled:
            raise ValueError("greedy mode='supervised' needs labels y; use mode='unsupervised' to pretrain without")
        if self.finetune_epochs and not labelled:
            raise ValueError("finetune_epochs needs labels y; pass y or set finetune_epochs=0")
        X = check_features(X, dtype=model.dtype)
        stages = self.plan(model, labelled)
        out_shape = check_model_input(model, X)
        n = len(X)
        loss = targets = None
        if labelled:
            check_same_length(X, y)
            loss = self.loss or default_loss(y)
            targets = loss.prepare_targets(y, out_shape, model.dtype)
        if validation_data is not None:
            if not labelled:
                raise ValueError("validation_data needs labelled training data; pass y too")
            validation_data = check_validation_data(validation_data, model, loss)
        batch_size = min(batch_size, n)
        seeds = np.random.SeedSequence(seed).spawn(len(stages))
        run = _Run(self, model, X, targets, loss, validation_data, batch_size, out_shape)
        events = CallbackList(callbacks, model, self)
        history = nk.History()
        events.context.history = history
        total = sum(self.finetune_epochs if s.kind == "finetune" else epochs for s in stages)
        epoch = 0
        try:
            events.on_train_begin(model, {"epochs": total, "batch_size": batch_size, "samples": n, "scheme": "greedy",
                                          "mode": self.mode, "stages": [s.text for s in stages]})
            for stage, stage_seed in zip(stages, seeds):
                trainer = run.start(stage, stage_seed)
                events.context.optimizer = trainer.optimizer
                for _ in range(self.finetune_epochs if stage.kind == "finetune" else epochs):
                    events.on_epoch_begin(epoch)
                    started = time.perf_counter()
                    logs = {"stage": stage.text, **trainer.epoch(epoch, events)}
                    if validation_data is not None:
                        logs.update(trainer.validate())
                    logs["lr"] = trainer.optimizer.lr
                    logs["time"] = time.perf_counter() - started
                    history.append(logs)
                    events.on_epoch_end(epoch, logs)
                    epoch += 1
                    if events.stop_training:
                        break
                if events.stop_training:
                    break
                run.finish(stage)
        except BaseException as exc:
            events.on_exception(exc)
            raise
        events.on_train_end(history)
        return history

    def _head(self, input_shape: tuple[int, ...], n_outputs: int, seed, dtype) -> list:
        """The auxiliary classifier placed on a block's output in supervised mode."""
        L = nk.layers
        if callable(self.head):
            layers = self.head(tuple(input_shape), n_outputs)
            layers = list(layers.layers if isinstance(layers, nk.Sequential) else layers)
            return nk.Sequential(layers, dtype=dtype).layers
        features = int(np.prod(input_shape))
        layers = [L.Flatten()] if len(input_shape) > 1 else []
        if self.head is None:
            layers.append(L.Dense(features, n_outputs))
        else:
            layers += [L.Dense(features, self.head), L.ReLU(), L.Dense(self.head, n_outputs)]
        return nk.Sequential(layers, seed=seed, dtype=dtype).layers


def _describe(model: nk.Sequential, stage: Stage, pretrain: str) -> str:
    """What a stage trains, for the progress display."""
    if stage.kind == "finetune":
        return "fine-tuning"
    trained = [i for i in range(stage.block.start, stage.block.stop) if model.layers[i].params]
    if stage.kind == "pretrain":
        return f"{pretrain} on layer {stage.block.core}"
    if stage.kind == "head":
        return f"layer {stage.block.core} with its head"
    if len(trained) == 1:
        return f"output layer {trained[0]}"
    return f"layers {' and '.join(map(str, trained))} (output)"


def _fresh(template: Optimizer, lr: float | None = None) -> Optimizer:
    """A new optimizer configured as ``template`` (no state), with ``lr`` when given."""
    config = template.get_config()
    if lr is not None:
        config["lr"] = lr
    return type(template)(**config)


def _predict(layers: list, X: np.ndarray) -> np.ndarray:
    return nk.Sequential(layers).predict(X) if layers else X


class _Run:
    """The data of one greedy run as it moves up the chain: the features below the current block."""

    def __init__(self, scheme: Greedy, model, X, targets, loss, validation_data, batch_size, out_shape):
        self.scheme, self.model, self.loss, self.batch_size = scheme, model, loss, batch_size
        self.X, self.targets = X, targets
        self.H = X
        self.val = validation_data
        self.H_val = None if validation_data is None else validation_data[0]
        self.n_outputs = int(np.prod(out_shape[1:]))

    def start(self, stage: Stage, seed: np.random.SeedSequence):
        """The trainer of ``stage``, set up on the current features."""
        scheme, model = self.scheme, self.model
        val_y = None if self.val is None else self.val[1]
        if stage.kind == "pretrain":
            return _Pretrain(scheme, model, stage.block, self.H, self.H_val, seed, self.batch_size)
        if stage.kind == "finetune":
            return _Supervised(model, self.X, self.targets, self.loss, _fresh(scheme.optimizer, scheme.finetune_lr),
                               self.batch_size, seed, scheme.compiled, (self.val[0], val_y) if self.val else None)
        layers = stage.block.layers(model)
        if stage.kind == "head":
            out_shape = nk.Sequential(layers).output_shape((1,) + self.H.shape[1:])
            head_seed, seed = seed.spawn(2)
            head = scheme._head(out_shape[1:], self.n_outputs, int(head_seed.generate_state(1)[0]), model.dtype)
            layers = layers + head
        return _Supervised(nk.Sequential(layers), self.H, self.targets, self.loss, _fresh(scheme.optimizer),
                           self.batch_size, seed, scheme.compiled, (self.H_val, val_y) if self.val else None)

    def finish(self, stage: Stage) -> None:
        """Freeze ``stage``'s block: the next stage trains on its output."""
        if stage.kind in ("pretrain", "head"):
            layers = stage.block.layers(self.model)
            self.H = _predict(layers, self.H)
            if self.H_val is not None:
                self.H_val = _predict(layers, self.H_val)


class _Pretrain:
    """A block's Dense layer trained in place as an autoencoder or an RBM."""

    def __init__(self, scheme: Greedy, model, block: Block, H, H_val, seed, batch_size):
        dense, activation = extractor_form(model, block, scheme.pretrain)
        lead = model.layers[block.start:block.core]  # parameter-free layers before the Dense (a Flatten)
        self.H, self.H_val = _predict(lead, H), None if H_val is None else _predict(lead, H_val)
        self.optimizer = _fresh(scheme.optimizer)
        options = dict(n_components=dense.out_features, activation=activation, batch_size=batch_size,
                       optimizer=self.optimizer, seed=int(seed.generate_state(1)[0]), dtype=model.dtype,
                       compiled=scheme.compiled)
        if scheme.pretrain == "rbm":
            self.extractor = RBM(visible=scheme.visible, k=scheme.cd_k, **options)
        else:
            self.extractor = Autoencoder(tied=scheme.tied, corruption=scheme.corruption, **options)
        self.extractor.initialize(dense.in_features, dense.params["weight"], dense.params.get("bias"))
        self.name = scheme.pretrain

    def epoch(self, epoch: int, events: CallbackList) -> dict[str, Any]:
        params = self.extractor.params_
        snapshot = {k: v.copy() for k, v in params.items()}
        on_batch = (lambda b, value, size: events.on_batch_end(b, {"loss": value, "size": size})) \
            if events.wants_batches else None
        value = self.extractor.fit_epoch(self.H, on_batch)
        if not np.isfinite(value) or not all(np.isfinite(v).all() for v in params.values()):
            for k, v in params.items():
                v[...] = snapshot[k]
            raise TrainingDivergedError(
                f"{self.name} pretraining diverged in epoch {epoch + 1}: the loss or a weight became NaN or "
                f"infinite. The weights from the start of that epoch were restored; try a smaller learning rate "
                f"(lr is {self.optimizer.lr:g}).")
        return {"loss": value}

    def validate(self) -> dict[str, float]:
        return {"val_loss": self.extractor.reconstruction_error(self.H_val)}


class _Supervised:
    """Backprop on a (sub-)chain, through nkernels' trainers (compiled when the layers allow)."""

    def __init__(self, model, H, targets, loss, optimizer, batch_size, seed, compiled, validation):
        self.model, self.loss, self.optimizer, self.batch_size = model, loss, optimizer, batch_size
        self.validation = validation
        n = len(H)
        self.H2d = H.reshape(n, -1)
        self.targets = targets.reshape(n, -1) if loss.target_kind == "values" else targets
        self.rng = np.random.default_rng(seed)
        self.trainer = make_trainer(model, loss, optimizer, H.shape[1:], batch_size, compiled)

    def epoch(self, epoch: int, events: CallbackList) -> dict[str, Any]:
        n, size = len(self.H2d), self.batch_size
        full, rest = divmod(n, size)
        order = self.rng.permutation(n)
        snapshot = {k: v.copy() for k, v in self.model.params.items()}
        runs = [(b * size, 1, size) for b in range(full)] if events.wants_batches else [(0, full, size)]
        if rest:
            runs.append((full * size, 1, rest))
        total_loss, total_correct = 0.0, 0
        for batch, (start, count, rows) in enumerate(runs):
            losses, correct, done = self.trainer.run(self.H2d, self.targets, order, start, count, rows)
            if done < count or not all(np.isfinite(v).all() for v in self.model.params.values()):
                self.model.set_params(snapshot)
                raise TrainingDivergedError(
                    f"greedy training diverged in epoch {epoch + 1}: the loss or a weight became NaN or infinite. "
                    f"The weights from the start of that epoch were restored; try a smaller learning rate (lr is "
                    f"{self.optimizer.lr:g}).")
            total_loss += float(losses.sum()) * rows
            total_correct += int(correct.sum())
            if events.wants_batches:
                events.on_batch_end(batch, {"loss": float(losses[-1]), "size": rows})
        logs = {"loss": total_loss / n}
        if self.loss.has_accuracy:
            logs["accuracy"] = total_correct / n
        return logs

    def validate(self) -> dict[str, float]:
        scores = evaluate(self.model, *self.validation, loss=self.loss)
        return {f"val_{k}": v for k, v in scores.items()}
