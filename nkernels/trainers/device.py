"""The device trainer: mini-batches on the GPU, with the data and the state kept there."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..runtime import devices
from ..compiled.step import AUGMENT_STRIDE
from ..plugins.kernels import kernel
from .layerwise import check_trainable_layers, trained_parameters


class DeviceTrainer:
    """Runs mini-batches on the GPU: the data, the parameters and the optimizer state stay there.

    ``run`` takes the same arguments as the other trainers, with ``X2d`` and ``Y`` already on the
    device (:meth:`put` moves them, once per run of a scheme). Each call copies the shuffled
    order over once, gathers each batch on the device, keeps every step's loss and count of
    correct rows in device arrays, and copies those back once at its end: nothing crosses to the
    host per step. A loss that stops being finite ends the call at that batch, as on the CPU.
    """

    def __init__(self, model, loss, optimizer, sample_shape, augment: tuple[int, int] | None = None,
                 input_grad: bool = False, trainable_layers: Any = None):
        self.model, self.loss, self.optimizer, self.augment = model, loss, optimizer, augment
        self.sample_shape = tuple(sample_shape)
        self.input_grad = input_grad
        self.trainable_layers = check_trainable_layers(model, trainable_layers)
        self._buffers: dict = {}

    @staticmethod
    def put(array: Any) -> Any:
        """``array`` on the GPU (a no-op for a GPU array)."""
        return devices.to_device(array)

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: Any):
        key = (name, shape, np.dtype(dtype).str)
        if key not in self._buffers:
            self._buffers[key] = devices.empty(shape, dtype, "cuda")
        return self._buffers[key]

    def run(self, X2d, Y, order, start, n_batches, batch_size):
        """Same contract as :meth:`nkernels.trainers.CompiledTrainer.run`."""
        order = devices.to_device(np.ascontiguousarray(order, dtype=np.int64))
        losses = devices.zeros(n_batches, np.float64, "cuda")
        correct = devices.zeros(n_batches, np.int64, "cuda")
        xb = self._buffer("x", (batch_size, X2d.shape[1]), X2d.dtype)
        labels = Y.ndim == 1
        yb = self._buffer("y", (batch_size,) + tuple(Y.shape[1:]), Y.dtype)
        gather_rows, gather_labels = kernel("gather_rows", "cuda"), kernel("gather_labels", "cuda")
        for b in range(n_batches):
            first = start + b * batch_size
            gather_rows(X2d, order, first, xb)
            (gather_labels if labels else gather_rows)(Y, order, first, yb)
            x = xb.reshape(batch_size, *self.sample_shape)
            if self.augment is not None:
                shifted = self._buffer("shifted", x.shape, x.dtype)
                offset = (self.optimizer.steps + 1) * AUGMENT_STRIDE
                kernel("random_translate", "cuda")(x, self.augment[0], self.augment[1], offset, shifted)
                x = shifted
            out = self.model.forward(x, training=True)
            self.loss.forward_into(out, yb, losses, correct, b)
            self.model.backward(self.loss.backward(), input_grad=self.input_grad)
            self.optimizer.step(*trained_parameters(self.model, self.trainable_layers))
        losses, correct = losses.copy_to_host(), correct.copy_to_host()
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
            return losses[:bad[0]], correct[:bad[0]], int(bad[0])
        return losses, correct, n_batches
