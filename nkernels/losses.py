"""Losses: ``forward(outputs, targets) -> float`` (the batch mean) and ``backward() -> doutputs``."""
from __future__ import annotations

from typing import Any

import numpy as np

from . import devices
from .errors import NotFittedError
from .kernel_registry import kernel
from .layers.base import FLOAT_DTYPES, as_numeric_array


class Loss:
    """Base class of losses.

    ``target_kind`` is ``"labels"`` (integer class labels, one per sample) or ``"values"``
    (targets shaped like the outputs). ``compiled_template`` returns source lines for the
    compiled step, or ``None`` when the loss has none.

    ``forward`` and ``backward`` run on the device of ``outputs``: GPU outputs (device arrays)
    use the CUDA kernels, and ``backward`` then returns a device array. :meth:`forward_into`
    is the training loops' form, which leaves the loss on the device.
    """

    target_kind = "values"
    has_accuracy = False

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        """The batch's mean loss; keeps what :meth:`backward` needs."""
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        """The gradient of the last :meth:`forward`'s loss with respect to its outputs."""
        raise NotImplementedError

    def forward_into(self, outputs: Any, targets: Any, losses: Any, counts: Any, index: int) -> None:
        """Training-loop form of :meth:`forward`: write the batch's mean loss to ``losses[index]``
        (float64) and, for classifiers, the number of correct rows to ``counts[index]`` (int64).

        ``targets`` come from :meth:`prepare_targets` and, like ``losses`` and ``counts``, live on
        the device of ``outputs``: nothing is validated or copied, so a GPU loop never waits for
        the host. :meth:`backward` follows as usual.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement forward_into()")

    def __call__(self, outputs, targets) -> float:
        return self.forward(outputs, targets)

    def prepare_targets(self, targets: Any, output_shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """Validate ``targets`` for outputs of ``output_shape`` and return them in kernel form."""
        raise NotImplementedError

    def compiled_template(self) -> tuple[str, tuple[str, ...], dict] | None:
        """``(source, ops, workspaces)`` for the compiled step, or None."""
        return None

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this loss."""
        return {}

    def saved_for_backward(self) -> dict[str, Any]:
        """What the last forward kept for backward; a clear error if forward never ran."""
        saved = getattr(self, "_saved", None)
        if saved is None:
            raise NotFittedError(f"{type(self).__name__}: backward() called before forward()")
        return saved


def _outputs(outputs: Any, ndim: int | None = None) -> np.ndarray:
    if devices.is_device_array(outputs):
        arr = devices.as_device_array(outputs)
        if arr.dtype not in FLOAT_DTYPES:
            raise TypeError(f"loss outputs on the GPU must be float32 or float64, got {arr.dtype}")
        if ndim is not None and arr.ndim != ndim:
            raise ValueError(f"loss outputs must have {ndim} dimensions (N, C), got shape {arr.shape}")
        if arr.shape[0] == 0:
            raise ValueError("loss outputs are empty")
        return arr
    arr = as_numeric_array(outputs, "loss outputs")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"loss outputs must have {ndim} dimensions (N, C), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("loss outputs are empty")
    return np.ascontiguousarray(arr, dtype=arr.dtype if arr.dtype in FLOAT_DTYPES else np.float32)


class SoftmaxCrossEntropy(Loss):
    """Softmax followed by the cross-entropy against integer labels, averaged over the batch."""

    target_kind = "labels"
    has_accuracy = True

    def prepare_targets(self, targets, output_shape, dtype=None):
        y = as_numeric_array(targets, "labels")
        n_classes = output_shape[-1]
        if y.ndim != 1:
            raise ValueError(f"labels must be a 1-D array of class indices, got shape {y.shape}")
        if y.dtype.kind == "f":
            if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
                raise ValueError("labels must be whole numbers (class indices), got non-integer values")
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"labels must lie in [0, {n_classes - 1}] for a model with {n_classes} outputs, "
                             f"got values from {y.min()} to {y.max()}")
        return np.ascontiguousarray(y, dtype=np.int64)

    def forward(self, outputs, targets):
        logits = _outputs(outputs, ndim=2)
        device = devices.device_of(logits)
        labels = self.prepare_targets(devices.to_host(targets), logits.shape)
        if labels.shape[0] != logits.shape[0]:
            raise ValueError(f"got {logits.shape[0]} outputs but {labels.shape[0]} labels")
        labels = devices.move(labels, device)
        probs = devices.empty(logits.shape, logits.dtype, device)
        loss = kernel("softmax_cross_entropy_forward", device)(logits, labels, probs)
        self._saved = {"probs": probs, "labels": labels}
        return float(loss)

    def forward_into(self, outputs, targets, losses, counts, index):
        device = devices.device_of(outputs)
        probs = devices.empty(outputs.shape, outputs.dtype, device)
        kernel("softmax_cross_entropy_forward_into", device)(outputs, targets, probs, losses, index)
        kernel("count_correct_into", device)(outputs, targets, counts, index)
        self._saved = {"probs": probs, "labels": targets}

    def backward(self):
        saved = self.saved_for_backward()
        probs = saved["probs"]
        device = devices.device_of(probs)
        dlogits = devices.empty(probs.shape, probs.dtype, device)
        kernel("softmax_cross_entropy_backward", device)(probs, saved["labels"], dlogits)
        return dlogits

    def compiled_template(self):
        source = ("loss = softmax_cross_entropy_forward({out}, {target}, {w[probs]})\n"
                  "correct_ = count_correct({out}, {target})\n"
                  "softmax_cross_entropy_backward({w[probs]}, {target}, {dout})")
        ops = ("softmax_cross_entropy_forward", "softmax_cross_entropy_backward", "count_correct")
        return source, ops, {"probs": "output"}


class MSE(Loss):
    """Mean squared error over every element, as ``torch.nn.MSELoss()``."""

    def prepare_targets(self, targets, output_shape, dtype=np.float32):
        y = as_numeric_array(targets, "targets")
        if y.ndim == 1 and len(output_shape) == 2 and output_shape[1] == 1:
            y = y[:, None]
        if y.shape[1:] != tuple(output_shape[1:]):
            hint = "; for classification pass integer class labels" if y.ndim == 1 else ""
            raise ValueError(f"targets must have shape (N, {', '.join(map(str, output_shape[1:]))}) to "
                             f"match the outputs, got {y.shape}{hint}")
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise ValueError("targets contain NaN or infinite values")
        return np.ascontiguousarray(y, dtype=dtype)

    def forward(self, outputs, targets):
        pred = _outputs(outputs)
        device = devices.device_of(pred)
        target = self.prepare_targets(devices.to_host(targets), tuple(pred.shape), pred.dtype)
        if target.shape[0] != pred.shape[0]:
            raise ValueError(f"got {pred.shape[0]} outputs but {target.shape[0]} targets")
        target = devices.move(target, device)
        flat = devices.flat_view
        loss = kernel("mse_forward", device)(flat(pred), flat(target))
        self._saved = {"pred": pred, "target": target}
        return float(loss)

    def forward_into(self, outputs, targets, losses, counts, index):
        target = targets.reshape(*outputs.shape)
        flat = devices.flat_view
        kernel("mse_forward_into", devices.device_of(outputs))(flat(outputs), flat(target), losses, index)
        self._saved = {"pred": outputs, "target": target}

    def backward(self):
        saved = self.saved_for_backward()
        pred = saved["pred"]
        device = devices.device_of(pred)
        dpred = devices.empty(pred.shape, pred.dtype, device)
        flat = devices.flat_view
        kernel("mse_backward", device)(flat(pred), flat(saved["target"]), flat(dpred))
        return dpred

    def compiled_template(self):
        source = ("loss = mse_forward({out_flat}, {target_flat})\n"
                  "correct_ = 0\n"
                  "mse_backward({out_flat}, {target_flat}, {dout_flat})")
        return source, ("mse_forward", "mse_backward"), {}


LOSSES = {"softmax_cross_entropy": SoftmaxCrossEntropy, "cross_entropy": SoftmaxCrossEntropy, "mse": MSE}


def get_loss(loss: Any) -> Loss:
    """A Loss instance from an instance, a class or a name (``"cross_entropy"``, ``"mse"``)."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss):
        return loss()
    if isinstance(loss, str) and loss.lower() in LOSSES:
        return LOSSES[loss.lower()]()
    raise ValueError(f"unknown loss {loss!r}; available: {', '.join(sorted(LOSSES))} or a Loss instance")


__all__ = ["Loss", "SoftmaxCrossEntropy", "MSE", "get_loss"]
