"""The work of one stage of a greedy run: a Dense layer pretrained as an extractor, or backprop on part of the chain.

A stage's work is built when the stage starts, from the model as it stands: its inputs are the
outputs of the frozen layers below its block, so a run resumed inside a later stage trains on
the same features as the uninterrupted run. Each work holds the stage's own optimizer and random
generator, and gives its state (:meth:`state`) and takes it back in place (:meth:`load`), for
checkpoints and the divergence guard.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import nkernels as nk
from nkernels.schemes import Diverged
from nkernels.trainers import make_trainer, run_epoch_batches
from nkernels.training import evaluate

from .blocks import Block, extractor_form
from .extractors import RBM, Autoencoder
from .optimizer_state import load_optimizer, optimizer_arrays


@dataclass(frozen=True)
class Task:
    """What stage ``index`` of a greedy run trains: ``kind`` is ``"pretrain"``, ``"head"``,
    ``"output"`` or ``"finetune"`` (``block`` None: the whole chain)."""

    index: int
    kind: str
    block: Block | None

    @property
    def start(self) -> int:
        """The first layer the stage trains; the layers below it are frozen."""
        return 0 if self.block is None else self.block.start


def features(model: nk.Sequential, stop: int, X: np.ndarray) -> np.ndarray:
    """The outputs of the model's first ``stop`` layers (in evaluation mode) for ``X``."""
    return model[:stop].predict(X) if stop else X


class Pretraining:
    """A block's Dense layer trained in place as an autoencoder or an RBM on the frozen layers' output."""

    def __init__(self, scheme: Any, run: Any, task: Task, seed: np.random.SeedSequence):
        self.task, model, block = task, run.model, task.block
        dense, activation = extractor_form(model, block, scheme.pretrain)
        # the input of the Dense: the frozen blocks and any parameter-free layers before it (a Flatten)
        self.H = features(model, block.core, run.X)
        self.H_val = None if run.validation_data is None else features(model, block.core, run.validation_data[0])
        options = dict(n_components=dense.out_features, activation=activation, batch_size=run.batch_size,
                       optimizer=scheme.optimizer, seed=int(seed.generate_state(1)[0]), dtype=model.dtype,
                       compiled=scheme.compiled)
        if scheme.pretrain == "rbm":
            self.extractor = RBM(visible=scheme.visible, k=scheme.cd_k, **options)
        else:
            self.extractor = Autoencoder(tied=scheme.tied, corruption=scheme.corruption, **options)
        self.extractor.initialize(dense.in_features, dense.params["weight"], dense.params.get("bias"))
        self.optimizer = self.extractor.optimizer_

    def epoch(self, run: Any) -> dict[str, Any]:
        """One pass over the features; the loss is the reconstruction error."""
        events = run.events
        on_batch = (lambda b, value, size: events.on_batch_end(b, {"loss": value, "size": size})) \
            if events.wants_batches else None
        return {"loss": self.extractor.fit_epoch(self.H, on_batch)}

    def validate(self, run: Any, y_val: Any) -> dict[str, float]:
        """The reconstruction error of the validation inputs' features."""
        return {"loss": self.extractor.reconstruction_error(self.H_val)}

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The extractor's training state: its generator, noise counter, decoder and optimizer."""
        return self.extractor.training_state()

    def load(self, state: dict[str, Any], arrays: dict[str, Any]) -> None:
        """Take back what :meth:`state` gave, in place."""
        self.extractor.load_training_state(state, arrays)


class Supervised:
    """Backprop on a part of the chain (a block with its head, the output block, or the whole chain),
    on the frozen layers' output, through nkernels' trainers (compiled when the layers allow)."""

    def __init__(self, scheme: Any, run: Any, task: Task, seed: np.random.SeedSequence):
        self.task, model = task, run.model
        H = features(model, task.start, run.X)
        self.H_val = None if run.validation_data is None else features(model, task.start, run.validation_data[0])
        self.head = None
        if task.kind == "finetune":
            self.chain, self.optimizer = model, scheme.optimizer.fresh(scheme.finetune_lr)
        else:
            layers = task.block.layers(model)
            if task.kind == "head":
                head_seed, seed = seed.spawn(2)
                out_shape = nk.Sequential(layers).output_shape((1,) + H.shape[1:])
                n_outputs = int(np.prod(model.output_shape((1,) + run.X.shape[1:])[1:]))
                self.head = nk.Sequential(scheme.make_head(out_shape[1:], n_outputs,
                                                           int(head_seed.generate_state(1)[0]), model.dtype))
                layers = layers + self.head.layers
            self.chain, self.optimizer = nk.Sequential(layers), scheme.optimizer.fresh()
        self.H2d, self.targets = H.reshape(len(H), -1), run.rows_of_targets()
        self.rng = np.random.default_rng(seed)
        # random translations reach the stages that train on the input images themselves
        augment = run.augment if task.start == 0 else None
        self.trainer = make_trainer(self.chain, run.loss, self.optimizer, H.shape[1:], run.batch_size,
                                    scheme.compiled, augment)

    def epoch(self, run: Any) -> dict[str, Any]:
        """One epoch of shuffled mini-batches."""
        def check(done: int, count: int) -> None:
            if done < count:
                raise Diverged("the loss became NaN or infinite")

        order = self.rng.permutation(len(self.H2d))
        return run_epoch_batches(self.trainer.run, self.H2d, self.targets, order, run.batch_size, run.events, check,
                                 run.loss.has_accuracy)

    def validate(self, run: Any, y_val: Any) -> dict[str, float]:
        """The loss (and accuracy) of the part being trained on the validation inputs' features."""
        return evaluate(self.chain, self.H_val, y_val, loss=run.loss)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The generator of the batch order, the optimizer's state and the head's weights."""
        arrays = optimizer_arrays(self.optimizer)
        if self.head is not None:  # the head is no part of the model, whose weights the toolkit saves
            arrays.update({f"head.{k}": v for k, v in self.head.params.items()})
            arrays.update({f"head_buffer.{k}": v for k, v in self.head.buffers.items()})
        return {"rng": self.rng.bit_generator.state, "steps": self.optimizer.steps}, arrays

    def load(self, state: dict[str, Any], arrays: dict[str, Any]) -> None:
        """Take back what :meth:`state` gave, in place (the trainer holds the arrays)."""
        self.rng.bit_generator.state = state["rng"]
        load_optimizer(self.optimizer, self.chain.params, state["steps"], arrays)
        if self.head is not None:
            self.head.set_params({k: arrays[f"head.{k}"] for k in self.head.params})
            for key, buffer in self.head.buffers.items():
                buffer[...] = arrays[f"head_buffer.{key}"]


def start_work(scheme: Any, run: Any, task: Task, seed: np.random.SeedSequence) -> Pretraining | Supervised:
    """The work of ``task``'s stage, set up on the model as it stands."""
    return (Pretraining if task.kind == "pretrain" else Supervised)(scheme, run, task, seed)
