"""The stages of a greedy run: pretraining a Dense layer as an extractor, or backprop on part of the chain."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import nkernels as nk
from nkernels.callbacks import CallbackList
from nkernels.errors import TrainingDivergedError
from nkernels.trainers import make_trainer
from nkernels.training import evaluate

from .blocks import Block, extractor_form
from .extractors import RBM, Autoencoder


@dataclass
class Stage:
    """One stage of a greedy run: ``kind`` is pretrain, head, output or finetune."""

    kind: str
    block: Block | None
    text: str = ""


def _predict(layers: list, X: np.ndarray) -> np.ndarray:
    return nk.Sequential(layers).predict(X) if layers else X


class Run:
    """The data of one greedy run as it moves up the chain: the features below the current block."""

    def __init__(self, scheme, model, X, targets, loss, validation_data, batch_size, out_shape):
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
            optimizer = scheme.optimizer.fresh(scheme.finetune_lr)
            return _Supervised(model, self.X, self.targets, self.loss, optimizer, self.batch_size, seed,
                               scheme.compiled, (self.val[0], val_y) if self.val else None)
        layers = stage.block.layers(model)
        if stage.kind == "head":
            out_shape = nk.Sequential(layers).output_shape((1,) + self.H.shape[1:])
            head_seed, seed = seed.spawn(2)
            head = scheme.make_head(out_shape[1:], self.n_outputs, int(head_seed.generate_state(1)[0]), model.dtype)
            layers = layers + head
        return _Supervised(nk.Sequential(layers), self.H, self.targets, self.loss, scheme.optimizer.fresh(),
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

    def __init__(self, scheme, model, block: Block, H, H_val, seed, batch_size):
        dense, activation = extractor_form(model, block, scheme.pretrain)
        lead = model.layers[block.start:block.core]  # parameter-free layers before the Dense (a Flatten)
        self.H, self.H_val = _predict(lead, H), None if H_val is None else _predict(lead, H_val)
        options = dict(n_components=dense.out_features, activation=activation, batch_size=batch_size,
                       optimizer=scheme.optimizer, seed=int(seed.generate_state(1)[0]), dtype=model.dtype,
                       compiled=scheme.compiled)
        if scheme.pretrain == "rbm":
            self.extractor = RBM(visible=scheme.visible, k=scheme.cd_k, **options)
        else:
            self.extractor = Autoencoder(tied=scheme.tied, corruption=scheme.corruption, **options)
        self.extractor.initialize(dense.in_features, dense.params["weight"], dense.params.get("bias"))
        self.optimizer = self.extractor.optimizer_  # the stage's fresh copy, which callbacks may adjust
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
