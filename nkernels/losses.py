"""Losses: ``forward(outputs, targets) -> float`` (the batch mean) and ``backward() -> doutputs``."""
from __future__ import annotations

from typing import Any

import numpy as np

from .runtime import devices
from .errors import NotFittedError
from .plugins.kernels import kernel
from .validation import FLOAT_DTYPES, as_numeric_array
from .passes import COUNTS, DX, INDEX, LOSSES, TARGET, X, Call, Frame, LossPasses, run, work


class Loss:
    """Base class of losses.

    ``target_kind`` is ``"labels"`` (integer class labels, one per sample, or one per token of
    a sequence's outputs) or ``"values"`` (targets shaped like the outputs). A loss describes
    its passes once, as kernel calls, in :meth:`passes` (a :class:`~nkernels.passes.LossPasses`);
    :meth:`forward`, :meth:`backward`, :meth:`forward_into` and the compiled training step all
    run that description.

    ``forward`` and ``backward`` run on the device of ``outputs``: GPU outputs (device arrays)
    use the CUDA kernels, and ``backward`` then returns a device array. :meth:`forward_into`
    is the training loops' form, which leaves the loss on the device.
    """

    target_kind = "values"
    has_accuracy = False

    def passes(self) -> LossPasses | None:
        """The loss's forward and backward calls (see :class:`~nkernels.passes.LossPasses`)."""
        return None

    def check_outputs(self, outputs: Any) -> Any:
        """``outputs`` validated for this loss (a float array, not empty), on its device."""
        return _outputs(outputs)

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        """The batch's mean loss; keeps what :meth:`backward` needs."""
        out = self.check_outputs(outputs)
        device = devices.device_of(out)
        prepared = self.prepare_targets(devices.to_host(targets), tuple(out.shape), out.dtype)
        if prepared.shape[0] != out.shape[0]:
            what = "labels" if self.target_kind == "labels" else "targets"
            raise ValueError(f"got {out.shape[0]} outputs but {prepared.shape[0]} {what}")
        losses = devices.zeros(1, np.float64, device)
        self.forward_into(out, devices.move(prepared, device), losses, devices.zeros(1, np.int64, device), 0)
        return float(devices.to_host(losses)[0])

    def forward_into(self, outputs: Any, targets: Any, losses: Any, counts: Any, index: int) -> None:
        """Training-loop form of :meth:`forward`: write the batch's mean loss to ``losses[index]``
        (float64) and, for classifiers, the number of correct rows (tokens, for a sequence's
        labels) to ``counts[index]`` (int64).

        ``targets`` come from :meth:`prepare_targets` and, like ``losses`` and ``counts``, live on
        the device of ``outputs``: nothing is validated or copied, so a GPU loop never waits for
        the host. :meth:`backward` follows as usual.
        """
        passes = self._passes()
        device = devices.device_of(outputs)
        if self.target_kind == "values":
            targets = targets.reshape(*outputs.shape)
        arrays: dict[Any, Any] = {"x": outputs, "target": targets, "losses": losses, "counts": counts}
        for name, space in passes.workspaces.items():
            shape = tuple(outputs.shape) if space.shape == "input" else space.shape
            arrays[("work", name)] = devices.empty(shape, outputs.dtype if space.dtype is None else space.dtype, device)
        frame = Frame(arrays, {}, {"index": index})
        run(passes.forward, frame, lambda op: kernel(op, device))
        self._saved = {"frame": frame, "device": device}

    def backward(self) -> np.ndarray:
        """The gradient of the last :meth:`forward`'s loss with respect to its outputs."""
        saved = self.saved_for_backward()
        frame, device = saved["frame"], saved["device"]
        outputs = frame.arrays["x"]
        frame.arrays["dx"] = doutputs = devices.empty(outputs.shape, outputs.dtype, device)
        run(self._passes().backward, frame, lambda op: kernel(op, device))
        return doutputs

    def _passes(self) -> LossPasses:
        passes = self.passes()
        if passes is None:
            raise NotImplementedError(f"{type(self).__name__} must describe its passes in passes()")
        return passes

    def __call__(self, outputs, targets) -> float:
        return self.forward(outputs, targets)

    def prepare_targets(self, targets: Any, output_shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """Validate ``targets`` for outputs of ``output_shape`` and return them in kernel form."""
        raise NotImplementedError

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
    """Softmax followed by the cross-entropy against integer labels, averaged over the batch.

    Outputs (N, C) take labels (N,). A sequence model's outputs (N, T, C), one row of logits per
    token, take labels (N, T), one class per token (next-token prediction): the mean runs over
    every token, as ``torch.nn.CrossEntropyLoss`` on the (N*T, C) rows, and accuracy counts
    tokens. (Any (N, ..., C) takes labels (N, ...) the same way.)
    """

    target_kind = "labels"
    has_accuracy = True

    def prepare_targets(self, targets, output_shape, dtype=None):
        y = as_numeric_array(targets, "labels")
        n_classes = output_shape[-1]
        tokens = tuple(output_shape[1:-1])  # the axes between the batch and the classes
        if y.ndim != 1 + len(tokens) or tuple(y.shape[1:]) != tokens:
            if not tokens:
                raise ValueError(f"labels must be a 1-D array of class indices, got shape {y.shape}")
            raise ValueError(f"labels must have shape (N, {', '.join(map(str, tokens))}), one class index per "
                             f"token of the outputs (N, {', '.join(map(str, tokens))}, {n_classes}), got {y.shape}")
        if y.dtype.kind == "f":
            if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
                raise ValueError("labels must be whole numbers (class indices), got non-integer values")
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"labels must lie in [0, {n_classes - 1}] for a model with {n_classes} outputs, "
                             f"got values from {y.min()} to {y.max()}")
        return np.ascontiguousarray(y, dtype=np.int64)

    def check_outputs(self, outputs):
        out = _outputs(outputs)
        if out.ndim < 2:
            raise ValueError(f"loss outputs must have 2 dimensions (N, C), or 3 (N, T, C) for a sequence, "
                             f"got shape {out.shape}")
        return out

    def passes(self):
        # one row of logits per sample, or per token of a sequence: the kernels see (rows, C)
        return LossPasses(
            forward=(Call("softmax_cross_entropy_forward_into", X.vectors, TARGET.flat, work("probs").vectors,
                          LOSSES, INDEX),
                     Call("count_correct_into", X.vectors, TARGET.flat, COUNTS, INDEX)),
            backward=(Call("softmax_cross_entropy_backward", work("probs").vectors, TARGET.flat, DX.vectors),),
            workspaces={"probs": "input"},
        )


def _value_targets(targets: Any, output_shape: tuple, dtype: Any) -> np.ndarray:
    """Targets shaped like the outputs (a 1-D vector for outputs (N, 1)), finite, in ``dtype``."""
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


class MSE(Loss):
    """Mean squared error over every element, as ``torch.nn.MSELoss()``."""

    def prepare_targets(self, targets, output_shape, dtype=np.float32):
        return _value_targets(targets, output_shape, dtype)

    def passes(self):
        return LossPasses(forward=(Call("mse_forward_into", X.flat, TARGET.flat, LOSSES, INDEX),),
                          backward=(Call("mse_backward", X.flat, TARGET.flat, DX.flat),))


class BCEWithLogits(Loss):
    """Binary cross-entropy of ``sigmoid(outputs)`` against targets in [0, 1] of the outputs' shape,
    averaged over every element, as ``torch.nn.BCEWithLogitsLoss()``; computed from the logits,
    stably (no sigmoid is taken first).

    For a binary classifier (outputs (N, 1), targets 0/1 of shape (N,) or (N, 1)) and for several
    independent yes/no outputs (N, C). Accuracy counts the samples whose every decision
    ``output > 0`` matches ``target >= 0.5``. GANs' discriminators train with it.
    """

    has_accuracy = True

    def prepare_targets(self, targets, output_shape, dtype=np.float32):
        y = _value_targets(targets, output_shape, dtype)
        if y.size and (y.min() < 0 or y.max() > 1):
            raise ValueError(f"bce_with_logits targets must lie in [0, 1] (probabilities or 0/1 labels), got "
                             f"values from {y.min()} to {y.max()}")
        return y

    def passes(self):
        return LossPasses(
            forward=(Call("bce_with_logits_forward_into", X.flat, TARGET.flat, LOSSES, INDEX),
                     Call("count_binary_correct_into", X.vectors, TARGET.vectors, COUNTS, INDEX)),
            backward=(Call("bce_with_logits_backward", X.flat, TARGET.flat, DX.flat),))


def get_loss(loss: Any) -> Loss:
    """A Loss instance from an instance, a class or a registered name (``"cross_entropy"``, ``"mse"``,
    ``"bce_with_logits"`` or a plugin's: ``nk.registry.losses``)."""
    from . import registry

    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss):
        return loss()
    if isinstance(loss, str):
        return registry.losses[loss.lower()]()
    raise TypeError(f"loss must be a registered name ({', '.join(sorted(registry.losses))}), a Loss class or a "
                    f"Loss instance, got {loss!r}")


__all__ = ["Loss", "SoftmaxCrossEntropy", "MSE", "BCEWithLogits", "get_loss"]
