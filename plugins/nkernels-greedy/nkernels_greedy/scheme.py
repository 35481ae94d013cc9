"""The ``greedy`` scheme: train a chain one block at a time, then optionally fine-tune it whole."""
from __future__ import annotations

from typing import Any

import numpy as np

import nkernels as nk
from nkernels.losses import get_loss
from nkernels.optimizers import get_optimizer
from nkernels.schemes import Capabilities, Stage
from nkernels.validation import check_bool, check_choice, check_int, check_number

from .blocks import Block, extractor_form, split_blocks
from .stages import Task, start_work

#: the learning rate of Adam and AdamW given by name when ``lr`` is left out (chosen on digits)
DEFAULT_ADAM_LR = 3e-3
#: the fine-tuning epochs after unsupervised pretraining with labels when ``finetune_epochs`` is left out
DEFAULT_FINETUNE_EPOCHS = 10


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
    to ``lr``); left out, it is 10 after unsupervised pretraining with labels and 0 otherwise.
    ``epochs`` (a ``fit`` argument, 10 by default) is the number of epochs of each block's stage.

    An option that has no effect in the chosen mode is a ValueError: ``pretrain``, ``tied``,
    ``corruption``, ``cd_k`` and ``visible`` in supervised mode (``tied`` and ``corruption`` go
    with the autoencoder, ``cd_k`` and ``visible`` with the RBM), ``head`` in unsupervised mode,
    ``finetune_lr`` without fine-tuning. Left out, they take the defaults ``"autoencoder"``,
    True, 0, 1 and ``"auto"``.

    ``optimizer`` (a name or an :class:`~nkernels.optimizers.Optimizer`), ``lr`` and the other
    optimizer options configure every stage; each stage starts with a fresh copy of it
    (:meth:`~nkernels.optimizers.Optimizer.fresh`), so nothing carries over between stages or fits.
    ``lr`` defaults to 3e-3 for Adam and AdamW given by name (the optimizer's own default otherwise).
    ``loss`` defaults to softmax cross-entropy for integer labels and MSE otherwise.
    ``compiled=False`` runs every stage step by step, layer by layer (same numbers).

    The options every scheme shares (:class:`~nkernels.schemes.Scheme`): ``checkpoint_dir`` and
    ``resume`` (a run resumed inside a stage rebuilds that stage's inputs from the frozen layers
    below it and ends with the uninterrupted run's weights), ``schedule`` (each stage's learning
    rate, the schedule starting again with each stage) and ``augment_shift``, which shifts the
    training images of the stages that train on the images themselves: the first block's in
    supervised mode, and fine-tuning (the other stages train on the frozen layers' output).

    Each epoch's logs carry a text ``"stage"`` (for example ``"stage 1/4: autoencoder on layer
    0"``), which the progress bar shows; ``loss`` is the stage's own loss (reconstruction error
    while pretraining, the training loss otherwise), and so are the validation metrics.

    A callback that stops training (:class:`~nkernels.schedules.EarlyStopping`) ends the current
    stage only; the next stage, the output stage included, still runs. Early stopping watches
    each stage's own loss afresh and puts back the stage's best weights when it ends, before the
    next stage builds on them.
    """

    name = "greedy"
    capabilities = Capabilities(labels="optional", yields=("classifier", "regressor", "extractor"))
    default_epochs = 10
    default_batch_size = 32

    def __init__(self, mode: str = "unsupervised", pretrain: str | None = None, tied: bool | None = None,
                 corruption: float | None = None, cd_k: int | None = None, visible: str | None = None,
                 head: Any = None, finetune_epochs: int | None = None, finetune_lr: float | None = None,
                 optimizer: Any = "adam", lr: float | None = None, loss: Any = None, compiled: bool = True, *,
                 checkpoint_dir: Any = None, resume: bool = False, schedule: Any = None, augment_shift: int = 0,
                 **optimizer_options: Any):
        super().__init__(checkpoint_dir=checkpoint_dir, resume=resume, schedule=schedule,
                         augment_shift=augment_shift)
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
        self.finetune_epochs = None if finetune_epochs is None else check_int(finetune_epochs, "finetune_epochs",
                                                                              minimum=0)
        _refuse_unused_options(self.mode, self.pretrain, self.finetune_epochs,
                               {"pretrain": pretrain, "tied": tied, "corruption": corruption, "cd_k": cd_k,
                                "visible": visible, "head": head, "finetune_lr": finetune_lr})
        if lr is not None:
            optimizer_options["lr"] = lr
        elif isinstance(optimizer, str) and optimizer.lower() in ("adam", "adamw"):
            optimizer_options["lr"] = DEFAULT_ADAM_LR
        self.optimizer = get_optimizer(optimizer, **optimizer_options)
        self.finetune_lr = None if finetune_lr is None else self.optimizer.fresh(finetune_lr).lr
        self.loss = None if loss is None else get_loss(loss)
        self.compiled = check_bool(compiled, "compiled")

    # -- the plan ------------------------------------------------------------------------------
    def stages(self, run) -> list[Stage]:
        """One stage per block (pretraining, a block with its head, the output block), then fine-tuning;
        checks that the blocks suit the mode."""
        model, labelled = run.model, run.y is not None
        blocks = split_blocks(model)
        tasks: list[tuple[str, Block | None]] = []
        if self.mode == "supervised":  # the output block is the last hidden block's head
            tasks += [("head", b) for b in blocks[:-2]]
            tasks.append(("output", Block(blocks[-2].start, blocks[-2].core, blocks[-1].stop)
                          if len(blocks) > 1 else blocks[-1]))
        else:
            pretrained = blocks[:-1] if labelled else blocks
            for b in pretrained:
                extractor_form(model, b, self.pretrain)
            tasks += [("pretrain", b) for b in pretrained]
            if labelled:
                tasks.append(("output", blocks[-1]))
        finetune_epochs = self._finetune_epochs(labelled)
        if finetune_epochs:
            tasks.append(("finetune", None))
        plan = [Task(i, kind, block) for i, (kind, block) in enumerate(tasks)]
        if self.augment_shift and not any(t.kind != "pretrain" and t.start == 0 for t in plan):
            raise ValueError("greedy: augment_shift shifts the images of the stages that train on them (the first "
                             "block's in mode='supervised', and fine-tuning); this run has neither, so it would "
                             "have no effect; drop it or set finetune_epochs")
        return [Stage(f"stage {t.index + 1}/{len(plan)}: {_describe(model, t, self.pretrain)}",
                      finetune_epochs if t.kind == "finetune" else run.epochs, t) for t in plan]

    def _finetune_epochs(self, labelled: bool) -> int:
        if self.finetune_epochs is not None:
            return self.finetune_epochs
        return DEFAULT_FINETUNE_EPOCHS if labelled and self.mode == "unsupervised" else 0

    # -- a run ---------------------------------------------------------------------------------
    def setup(self, run) -> None:
        """Check the labels the mode needs and draw the run's seed sequence."""
        labelled = run.y is not None
        if self.mode == "supervised" and not labelled:
            raise ValueError("greedy mode='supervised' needs labels y; use mode='unsupervised' to pretrain without")
        if not labelled and (self.finetune_epochs or self.finetune_lr is not None):
            raise ValueError(f"{'finetune_epochs' if self.finetune_epochs else 'finetune_lr'} needs labels y "
                             f"(fine-tuning trains on them); pass y or drop it")
        # each stage's random numbers come from its own child of this seed sequence (kept in checkpoints)
        self.entropy = np.random.SeedSequence(run.seed).entropy
        self.work: Any = None
        self.resumed: Any = None
        run.info["mode"] = self.mode

    def start_stage(self, run, stage: Stage) -> None:
        """Build the stage's work on the model as it stands (the frozen layers' output as its input)."""
        task = stage.data
        self.work = start_work(self, run, task, np.random.SeedSequence(self.entropy, spawn_key=(task.index,)))
        if self.resumed is not None and self.resumed[0].get("stage") == task.index:  # resumed inside this stage
            self.work.load(self.resumed[0]["work"], self.resumed[1])
        self.resumed = None
        # The toolkit saves the optimizer it sees under the model's parameter names; the stage's own also
        # updates parameters the model does not have (a head, a decoder), so the toolkit sees a twin of
        # it without state (its learning rate, which schedules change, and its step count), and the
        # stage's state travels in checkpoint_state.
        run.optimizer = self.work.optimizer.fresh()
        run.optimizer.steps = self.work.optimizer.steps

    def train_epoch(self, run, epoch: int) -> dict[str, Any]:
        """One epoch of the stage's work, at the learning rate the run's callbacks set."""
        work = self.work
        work.optimizer.lr = run.optimizer.lr
        logs = work.epoch(run)
        run.optimizer.steps = work.optimizer.steps
        return logs

    def validation_metrics(self, run, X_val, y_val) -> dict[str, float]:
        """The stage's own metrics: the reconstruction error while pretraining, else the loss (and
        accuracy) of the part being trained on the frozen layers' output."""
        return self.work.validate(run, y_val)

    def checkpoint_state(self, run) -> tuple[dict[str, Any], dict[str, Any]]:
        """The run's seed sequence and the current stage's work: its generator, optimizer and the
        parameters the model does not hold (a head, a decoder)."""
        state: dict[str, Any] = {"entropy": self.entropy}
        arrays: dict[str, Any] = {}
        if self.work is not None:
            work_state, arrays = self.work.state()
            state.update(stage=self.work_index, work=work_state)
        return state, arrays

    def restore_state(self, run, state: dict[str, Any], arrays: dict[str, Any]) -> None:
        """Back to a state of :meth:`checkpoint_state`: now inside the stage (the divergence guard), or
        when the stage starts (a resume)."""
        self.entropy = state["entropy"]
        if self.work is not None and state.get("stage") == self.work_index:  # the divergence guard
            self.work.load(state["work"], arrays)
        else:  # a resume: the stage's work is built when it starts
            self.resumed = state, arrays

    @property
    def work_index(self) -> int | None:
        """The index of the stage whose work is built."""
        return None if self.work is None else self.work.task.index

    def teardown(self, run) -> None:
        """Forget the run (its features, trainers and state)."""
        for name in ("entropy", "work", "resumed"):  # a scheme object keeps its configuration, not a run's
            vars(self).pop(name, None)

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


def _refuse_unused_options(mode: str, pretrain: str, finetune_epochs: int | None, given: dict[str, Any]) -> None:
    """A ValueError naming the options in ``given`` (None: left out) that have no effect in ``mode``
    with this kind of ``pretrain`` and number of ``finetune_epochs`` (None: the mode's default)."""
    given = {name: value for name, value in given.items() if value is not None}
    if finetune_epochs is None:
        finetune_epochs = DEFAULT_FINETUNE_EPOCHS if mode == "unsupervised" else 0
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


def _describe(model: nk.Sequential, task: Task, pretrain: str) -> str:
    """What a stage trains, for the progress display."""
    if task.kind == "finetune":
        return "fine-tuning"
    trained = [i for i in range(task.block.start, task.block.stop) if model.layers[i].params]
    if task.kind == "pretrain":
        return f"{pretrain} on layer {task.block.core}"
    if task.kind == "head":
        return f"layer {task.block.core} with its head"
    if len(trained) == 1:
        return f"output layer {trained[0]}"
    return f"layers {' and '.join(map(str, trained))} (output)"
