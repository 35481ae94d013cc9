"""The layer-by-layer trainer: one Python call per layer and step, the reference path."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..plugins.kernels import kernel
from ..runtime.threads import blas_single_threaded
from ..compiled.step import AUGMENT_STRIDE
from .arguments import check_run_arguments


class TrainerSettings:
    """What every trainer (compiled, layer-by-layer, device) is built with: the model, loss and optimizer,
    the sample shape, the augmentation, whether the first layer's input gradient is kept
    (``input_grad``) and which layers train (``trainable_layers``: layer indices, None for all)."""

    def __init__(self, model, loss, optimizer, sample_shape, augment: tuple[int, int] | None = None,
                 input_grad: bool = False, trainable_layers: Any = None):
        self.model, self.loss, self.optimizer, self.augment = model, loss, optimizer, augment
        self.sample_shape = tuple(sample_shape)
        self.output_shape = tuple(model.output_shape((1,) + self.sample_shape))
        self.input_grad = input_grad
        self.trainable_layers = check_trainable_layers(model, trainable_layers)

    def check_run(self, X2d, Y, order, start, n_batches, batch_size, last_batch=0) -> tuple[int, int, int, int]:
        """:func:`~nkernels.trainers.arguments.check_run_arguments` for this trainer's model and loss."""
        return check_run_arguments(X2d, Y, order, start, n_batches, batch_size, last_batch, self.sample_shape,
                                   self.output_shape, self.loss.target_kind)


class LayerwiseTrainer(TrainerSettings):
    """Runs mini-batches one Python call per layer: the reference path, and the one plugin layers use.

    Each step runs the layers' and the loss's pass descriptions one kernel call at a time (or a
    plugin layer's own Python passes), then the optimizer's. ``input_grad`` keeps the first
    layer's input gradient (:meth:`nkernels.Sequential.backward`); ``trainable_layers`` (layer
    indices, None for all) updates only those layers' parameters.
    """

    def run(self, X2d, Y, order, start, n_batches, batch_size):
        """Same contract as :meth:`nkernels.trainers.CompiledTrainer.run` (without ``last_batch``)."""
        start, n_batches, batch_size, _ = self.check_run(X2d, Y, order, start, n_batches, batch_size)
        with blas_single_threaded():
            return self._run(X2d, Y, order, start, n_batches, batch_size)

    def _run(self, X2d, Y, order, start, n_batches, batch_size):
        losses = np.zeros(n_batches)
        correct = np.zeros(n_batches, np.int64)
        for b in range(n_batches):
            index = order[start + b * batch_size: start + (b + 1) * batch_size]
            xb = X2d[index].reshape((batch_size,) + self.sample_shape)
            if self.augment is not None:
                shifted = np.empty_like(xb)
                step = self.optimizer.steps + 1
                kernel("random_translate")(xb, self.augment[0], self.augment[1], step * AUGMENT_STRIDE, shifted)
                xb = shifted
            out = self.model.forward(xb, training=True)
            self.loss.forward_into(out, Y[index], losses, correct, b)
            if not np.isfinite(losses[b]):
                return losses[:b], correct[:b], b
            self.model.backward(self.loss.backward(), input_grad=self.input_grad)
            self.optimizer.step(*trained_parameters(self.model, self.trainable_layers))
        return losses, correct, n_batches


def check_trainable_layers(model, trainable_layers: Any) -> frozenset[int] | None:
    """``trainable_layers`` as a set of layer indices (None stays None: every layer trains).

    Raises a ValueError for an index that is not a layer of ``model`` and a TypeError for a
    value that is not a collection of integers.
    """
    if trainable_layers is None:
        return None
    items = list(trainable_layers) if hasattr(trainable_layers, "__iter__") and \
        not isinstance(trainable_layers, (str, bytes)) else None
    if items is None or not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in items):
        raise TypeError(f"trainable_layers must be a collection of layer indices (integers), got "
                        f"{trainable_layers!r}")
    outside = sorted(int(i) for i in items if not 0 <= i < len(model.layers))
    if outside:
        raise ValueError(f"trainable_layers {outside} are not layers of this model (it has {len(model.layers)} "
                         f"layers, indices 0 to {len(model.layers) - 1})")
    return frozenset(int(i) for i in items)


def trained_parameters(model, trainable_layers: frozenset[int] | None) -> tuple[dict, dict]:
    """The parameters and gradients an optimizer step updates: every layer's, or those of the
    ``trainable_layers`` only (named as in :attr:`nkernels.Sequential.params`)."""
    if trainable_layers is None:
        return model.params, model.grads
    params = {f"{i}.{k}": v for i, layer in enumerate(model.layers) if i in trainable_layers
              for k, v in layer.params.items()}
    grads = {f"{i}.{k}": layer.grads[k] for i, layer in enumerate(model.layers) if i in trainable_layers
             for k in layer.params}
    return params, grads
