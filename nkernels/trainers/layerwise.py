"""The layer-by-layer trainer: one Python call per layer and step, the reference path."""
from __future__ import annotations

import numpy as np

from ..plugins.kernels import kernel
from ..runtime.threads import blas_single_threaded
from ..compiled.step import AUGMENT_STRIDE


class LayerwiseTrainer:
    """Runs mini-batches one Python call per layer: the reference path, and the one plugin layers use.

    Each step runs the layers' and the loss's pass descriptions one kernel call at a time (or a
    plugin layer's own Python passes), then the optimizer's. ``input_grad`` keeps the first
    layer's input gradient (:meth:`nkernels.Sequential.backward`).
    """

    def __init__(self, model, loss, optimizer, sample_shape, augment: tuple[int, int] | None = None,
                 input_grad: bool = False):
        self.model, self.loss, self.optimizer, self.augment = model, loss, optimizer, augment
        self.sample_shape = tuple(sample_shape)
        self.input_grad = input_grad

    def run(self, X2d, Y, order, start, n_batches, batch_size):
        """Same contract as :meth:`nkernels.trainers.CompiledTrainer.run`."""
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
            self.optimizer.step(self.model.params, self.model.grads)
        return losses, correct, n_batches
