"""Trainers: what runs mini-batches of a model's training, behind one small protocol.

A trainer is built for a model, a loss, an optimizer and a sample shape, and has one method,
``run(X2d, Y, order, start, n_batches, batch_size) -> (losses, correct, done)``: it trains on
``n_batches`` batches of ``batch_size`` rows of ``X2d[order[start:]]`` (targets ``Y`` in the
loss's kernel form) and returns each batch's loss and count of correct rows, and how many
batches ran (fewer when a loss stopped being finite; that batch made no update).

- :class:`LayerwiseTrainer` runs each layer's passes one Python call at a time: the reference,
  and the path of plugin layers that code their passes in Python;
- :class:`CompiledTrainer` runs whole runs of batches in one compiled call generated from the
  same pass descriptions (with a split mode that computes two half batches on two threads);
- :class:`DeviceTrainer` keeps everything on the GPU.

:func:`make_trainer` picks the fastest one that applies; all give the same numbers (the split
mode to float rounding). :func:`run_epoch_batches` is the epoch of batches schemes share.
"""
from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np

from .compiled import CompiledTrainer
from .device import DeviceTrainer
from .layerwise import LayerwiseTrainer, check_trainable_layers


class Trainer(Protocol):
    """What every trainer offers: one run of mini-batches (see the module's docstring), and the
    random translations it applies (``augment``: ``(max_shift, seed)`` or None)."""

    augment: tuple[int, int] | None

    def run(self, X2d: Any, Y: Any, order: np.ndarray, start: int, n_batches: int,
            batch_size: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Train on ``n_batches`` batches; the losses, the correct counts and the batches done."""
        ...


def make_trainer(model, loss, optimizer, sample_shape, batch_size: int, compiled: bool = True,
                 augment: tuple[int, int] | None = None, split_batches: bool | None = None,
                 input_grad: bool = False, trainable_layers: Any = None) -> Trainer:
    """The fastest trainer available for this model: compiled when possible, else layer by layer.

    A model on the GPU (``model.to("cuda")``) gets a :class:`DeviceTrainer`, whose ``run``
    takes the data on the device (``trainer.put(X)``).

    ``augment`` is ``(max_shift, seed)``: each training image (N, C, H, W) is shifted by a random
    number of pixels, up to ``max_shift`` each way, drawn from a counter-based generator.
    ``split_batches`` goes to :meth:`CompiledTrainer.build`. ``input_grad`` makes every trainer
    compute the first layer's input gradient too (a scheme that needs it: a generator's step,
    synthetic gradients); by default only the layers from the first trainable one run backward.
    ``trainable_layers`` (indices of layers; None for all) updates only those layers' parameters:
    the other layers pass gradients back but keep their values (a generator trained through a
    discriminator chained after it).
    """
    trainable_layers = check_trainable_layers(model, trainable_layers)
    if augment is not None and len(sample_shape) != 3:
        raise ValueError(f"random translations need image inputs (N, C, H, W), got samples of shape "
                         f"{tuple(sample_shape)}")
    if getattr(model, "device", "cpu") == "cuda":
        return DeviceTrainer(model, loss, optimizer, sample_shape, augment, input_grad, trainable_layers)
    if compiled:
        trainer = CompiledTrainer.build(model, loss, optimizer, sample_shape, batch_size, augment, split_batches,
                                        input_grad, trainable_layers)
        if trainer is not None:
            return trainer
    return LayerwiseTrainer(model, loss, optimizer, sample_shape, augment, input_grad, trainable_layers)


def run_epoch_batches(run, X2d, targets, order, batch_size: int, events, check, has_accuracy: bool) -> dict:
    """One epoch of mini-batches of ``X2d[order]`` through ``run`` (a trainer's ``run``), as schemes share it.

    Without a callback that wants batches, all full batches go in one call, with the last, smaller
    batch when ``run`` is a :class:`CompiledTrainer`'s (its ``last_batch``; other trainers give it
    a call of its own); with such a callback, a call per batch and ``events.on_batch_end`` after each.
    ``check(done, count)`` runs after each call (the scheme's divergence test; it raises). Returns
    the epoch's logs: the mean ``loss``, and ``accuracy`` when ``has_accuracy`` (the fraction of
    correct labels: of tokens, for a sequence's (N, T) labels).

    A :class:`DeviceTrainer`'s ``run`` hands the whole epoch to its ``run_epoch``, which keeps
    the losses on the GPU until the epoch ends (or a callback reads one).
    """
    trainer = getattr(run, "__self__", None)
    if isinstance(trainer, DeviceTrainer) and run == trainer.run:
        logs = trainer.run_epoch(X2d, targets, order, batch_size, events, check, has_accuracy)
        if logs is not None:
            return logs
    n = len(X2d)
    full, rest = divmod(n, batch_size)
    if events.wants_batches:
        runs = [(b * batch_size, 1, batch_size, 0) for b in range(full)]
    elif rest and isinstance(trainer, CompiledTrainer) and run == trainer.run:
        runs, rest = [(0, full, batch_size, rest)], 0  # the last batch in the same call
    else:
        runs = [(0, full, batch_size, 0)]
    if rest:
        runs.append((full * batch_size, 1, rest, 0))
    total_loss, total_correct = 0.0, 0
    for batch, (start, count, size, last) in enumerate(runs):
        losses, correct, done = run(X2d, targets, order, start, count, size, last) if last else \
            run(X2d, targets, order, start, count, size)
        check(done, count + (last > 0))
        total_loss += float(losses[:count].sum()) * size + float(losses[count:].sum()) * last
        total_correct += int(correct.sum())
        if events.wants_batches:
            events.on_batch_end(batch, {"loss": float(losses[-1]), "size": size})
    logs = {"loss": total_loss / n}
    if has_accuracy:
        logs["accuracy"] = total_correct / (n * answers_per_sample(targets))
    return logs


def answers_per_sample(targets: Any) -> int:
    """How many answers of a classifier one sample's ``targets`` hold, which accuracy counts: one
    per integer label (1 for labels (N,), T for a sequence's labels (N, T)); value targets (float
    rows, one-hot say) one per sample."""
    return math.prod(targets.shape[1:]) if np.dtype(targets.dtype).kind in "iu" else 1


__all__ = ["Trainer", "make_trainer", "run_epoch_batches", "answers_per_sample", "LayerwiseTrainer", "CompiledTrainer",
           "DeviceTrainer"]
