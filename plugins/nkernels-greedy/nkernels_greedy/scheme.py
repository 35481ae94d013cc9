"""The ``greedy`` scheme: train a chain one block at a time, then optionally fine-tune it whole."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

import nkernels as nk
from nkernels.callbacks import CallbackList
from nkernels.validation import (
    check_bool, check_choice, check_features, check_fit_arguments, check_int, check_model_input, check_number,
    check_same_length, check_validation_data)
from nkernels.losses import get_loss
from nkernels.optimizers import get_optimizer
from nkernels.schedules import EarlyStopping
from nkernels.training import default_loss

from .blocks import Block, extractor_form, split_blocks
from .stages import Run, Stage


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
    hidden block is trained together with the output block, its head for good. ``head`` is None
    (a linear head), an int (one hidden ReLU layer of that width) or a callable
    ``head(input_shape, n_outputs)`` returning a list of layers. Any kind of block works in this
    mode (convolutions too).

    ``finetune_epochs`` > 0 then trains the whole chain with backprop (``finetune_lr``, defaulting
    to ``lr``). ``epochs`` (a ``fit`` argument) is the number of epochs of each block's stage.

    An option that has no effect in the chosen mode is a ValueError: ``pretrain``, ``tied``,
    ``corruption``, ``cd_k`` and ``visible`` in supervised mode (``tied`` and ``corruption`` go
    with the autoencoder, ``cd_k`` and ``visible`` with the RBM), ``head`` in unsupervised mode,
    ``finetune_lr`` without fine-tuning. Left out, they take the defaults ``"autoencoder"``,
    True, 0, 1 and ``"auto"``.

    ``optimizer`` (a name or an :class:`~nkernels.optimizers.Optimizer`), ``lr`` and the other
    optimizer options configure every stage; each stage starts with a fresh copy of it
    (:meth:`~nkernels.optimizers.Optimizer.fresh`), so nothing carries over between stages or fits.
    ``loss`` defaults to softmax cross-entropy for integer labels and MSE otherwise.
    ``compiled=False`` runs every stage step by step, layer by layer (same numbers).

    Each epoch's logs carry a text ``"stage"`` (for example ``"stage 1/4: autoencoder on layer
    0"``), which the progress bar shows; ``loss`` is the stage's own loss (reconstruction error
    while pretraining, the training loss otherwise).

    A callback that stops training (:class:`~nkernels.schedules.EarlyStopping`) ends the current
    stage only; the next stage, the output stage included, still runs. Early stopping watches
    each stage's own loss afresh (:meth:`~nkernels.schedules.EarlyStopping.reset` when a stage
    starts) and puts back the stage's best weights when it ends, before the next stage builds on
    them.
    """

    def __init__(self, mode: str = "unsupervised", pretrain: str | None = None, tied: bool | None = None,
                 corruption: float | None = None, cd_k: int | None = None, visible: str | None = None,
                 head: Any = None, finetune_epochs: int = 0, finetune_lr: float | None = None,
                 optimizer: Any = "adam", lr: float | None = None, loss: Any = None, compiled: bool = True,
                 **optimizer_options: Any):
        self.mode = check_choice(mode, "mode", ("unsupervised", "supervised"))
        self.pretrain = check_choice("autoencoder" if pretrain is None else pretrain, "pretrain",
                                     ("autoencoder", "rbm"))
        self.tied = check_bool(True if tied is None else tied, "tied")
        self.corruption = check_number(0.0 if corruption is None else corruption, "corruption", low=0, high=1,
                                       high_open=True)
        self.cd_k = check_int(1 if cd_k is None else cd_k, "cd_k")
        self.visible = check_choice("auto" if visible is None else visible, "visible",
                                    ("auto", "bernoulli", "gaussian"))
        if not (head is None or callable(head)):
            try:
                head = check_int(head, "head")
            except TypeError:
                raise TypeError(f"head must be None (linear), an int (hidden width) or a callable "
                                f"head(input_shape, n_outputs) -> list of layers, got {head!r}") from None
        self.head = head
        self.finetune_epochs = check_int(finetune_epochs, "finetune_epochs", minimum=0)
        _refuse_unused_options(self.mode, self.pretrain, self.finetune_epochs,
                               {"pretrain": pretrain, "tied": tied, "corruption": corruption, "cd_k": cd_k,
                                "visible": visible, "head": head, "finetune_lr": finetune_lr})
        if lr is not None:
            optimizer_options["lr"] = lr
        self.optimizer = get_optimizer(optimizer, **optimizer_options)
        self.finetune_lr = None if finetune_lr is None else self.optimizer.fresh(finetune_lr).lr
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
        run = Run(self, model, X, targets, loss, validation_data, batch_size, out_shape)
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
                _start_stage(events)
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
                    if events.stop_training:  # ends this stage; the next one still runs
                        break
                _end_stage(events)
                run.finish(stage)
        except BaseException as exc:
            events.on_exception(exc)
            raise
        events.on_train_end(history)
        return history

    def make_head(self, input_shape: tuple[int, ...], n_outputs: int, seed: int, dtype) -> list:
        """The layers of the auxiliary classifier on a block's output of ``input_shape`` (without the
        batch axis) in supervised mode, drawn from ``seed`` unless ``head`` is a callable."""
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


#: the options of unsupervised pretraining, and those of one kind of pretraining only
PRETRAIN_OPTIONS = ("pretrain", "tied", "corruption", "cd_k", "visible")
KIND_OPTIONS = {"autoencoder": ("tied", "corruption"), "rbm": ("cd_k", "visible")}


def _refuse_unused_options(mode: str, pretrain: str, finetune_epochs: int, given: dict[str, Any]) -> None:
    """A ValueError naming the options in ``given`` (None: left out) that have no effect in ``mode``
    with this kind of ``pretrain`` and number of ``finetune_epochs``."""
    given = {name: value for name, value in given.items() if value is not None}
    if mode == "supervised":
        unused = [name for name in PRETRAIN_OPTIONS if name in given]
        if unused:
            raise ValueError(f"greedy: {', '.join(unused)} configure{'s' if len(unused) == 1 else ''} unsupervised "
                             f"pretraining and {'has' if len(unused) == 1 else 'have'} no effect in "
                             f"mode='supervised'; drop {'it' if len(unused) == 1 else 'them'} or use "
                             f"mode='unsupervised'")
    else:
        if "head" in given:
            raise ValueError("greedy: head is the auxiliary classifier of mode='supervised' and has no effect in "
                             "mode='unsupervised'; drop it or use mode='supervised'")
        other = "rbm" if pretrain == "autoencoder" else "autoencoder"
        unused = [name for name in KIND_OPTIONS[other] if name in given]
        if unused:
            raise ValueError(f"greedy: {', '.join(unused)} {'applies' if len(unused) == 1 else 'apply'} to "
                             f"pretrain={other!r} and {'has' if len(unused) == 1 else 'have'} no effect with "
                             f"pretrain={pretrain!r} in mode='unsupervised'; drop "
                             f"{'it' if len(unused) == 1 else 'them'} or use pretrain={other!r}")
    if "finetune_lr" in given and not finetune_epochs:
        raise ValueError(f"greedy: finetune_lr has no effect without fine-tuning (finetune_epochs=0, mode={mode!r}); "
                         f"set finetune_epochs or drop finetune_lr")


def _stoppers(events: CallbackList) -> list[EarlyStopping]:
    return [cb for cb in events.callbacks if isinstance(cb, EarlyStopping)]


def _start_stage(events: CallbackList) -> None:
    """A stage starts: a stop asked for in the stage before is over, and early stopping watches this
    stage's own loss from scratch (the losses of two stages are not comparable)."""
    events.context.stop_training = False
    for stopper in _stoppers(events):
        stopper.reset()


def _end_stage(events: CallbackList) -> None:
    """A stage ends: early stopping puts back the stage's best weights before the next stage builds on them."""
    for stopper in _stoppers(events):
        stopper.restore_best()


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
