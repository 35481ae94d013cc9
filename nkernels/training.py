"""``nk.train`` and ``nk.evaluate``, and the trainers that run mini-batches of backprop.

:func:`make_trainer` returns the compiled trainer when every layer, the loss and the kernels
offer a compiled form, and a :class:`LayerwiseTrainer` otherwise. Both have one ``run`` method
with the same arguments and give the same numbers (the compiled trainer's split mode, which
computes two half batches on two threads, to float rounding); schemes of plugins may use either.
"""
from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from . import devices
from .data import check_features, check_model_input, check_same_length
from .kernel_registry import kernel
from .layers.base import check_positive_int
from .losses import Loss, get_loss
from .threads import blas_single_threaded

FIT_ARGUMENTS = ("epochs", "batch_size", "seed", "callbacks", "validation_data")


class LayerwiseTrainer:
    """Runs mini-batches one Python call per layer: the reference path, and the one plugin layers use."""

    def __init__(self, model, loss: Loss, optimizer, sample_shape, augment: tuple[int, int] | None = None):
        self.model, self.loss, self.optimizer, self.augment = model, loss, optimizer, augment
        self.sample_shape = tuple(sample_shape)

    def run(self, X2d, Y, order, start, n_batches, batch_size):
        """Same contract as :meth:`nkernels.compiled.step.CompiledTrainer.run`."""
        with blas_single_threaded():
            return self._run(X2d, Y, order, start, n_batches, batch_size)

    def _run(self, X2d, Y, order, start, n_batches, batch_size):
        losses = np.zeros(n_batches)
        correct = np.zeros(n_batches, np.int64)
        count = kernel("count_correct")
        for b in range(n_batches):
            index = order[start + b * batch_size: start + (b + 1) * batch_size]
            xb = X2d[index].reshape((batch_size,) + self.sample_shape)
            if self.augment is not None:
                from .compiled.step import AUGMENT_STRIDE

                shifted = np.empty_like(xb)
                step = self.optimizer.steps + 1
                kernel("random_translate")(xb, self.augment[0], self.augment[1], step * AUGMENT_STRIDE, shifted)
                xb = shifted
            yb = Y[index]
            out = self.model.forward(xb, training=True)
            if self.loss.target_kind == "values":  # targets travel as rows, like the inputs
                yb = yb.reshape(out.shape)
            loss = self.loss.forward(out, yb)
            if not np.isfinite(loss):
                return losses[:b], correct[:b], b
            losses[b] = loss
            if self.loss.has_accuracy:
                correct[b] = count(out, yb)
            self.model.backward(self.loss.backward())
            self.optimizer.step(self.model.params, self.model.grads)
        return losses, correct, n_batches


class DeviceTrainer:
    """Runs mini-batches on the GPU: the data, the parameters and the optimizer state stay there.

    ``run`` takes the same arguments as the other trainers, with ``X2d`` and ``Y`` already on the
    device (:meth:`put` moves them, once per run of a scheme). Each call copies the shuffled
    order over once, gathers each batch on the device, keeps every step's loss and count of
    correct rows in device arrays, and copies those back once at its end: nothing crosses to the
    host per step. A loss that stops being finite ends the call at that batch, as on the CPU.
    """

    def __init__(self, model, loss: Loss, optimizer, sample_shape, augment: tuple[int, int] | None = None):
        self.model, self.loss, self.optimizer, self.augment = model, loss, optimizer, augment
        self.sample_shape = tuple(sample_shape)
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
        """Same contract as :meth:`nkernels.compiled.step.CompiledTrainer.run`."""
        from .compiled.step import AUGMENT_STRIDE

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
            self.model.backward(self.loss.backward())
            self.optimizer.step(self.model.params, self.model.grads)
        losses, correct = losses.copy_to_host(), correct.copy_to_host()
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
            return losses[:bad[0]], correct[:bad[0]], int(bad[0])
        return losses, correct, n_batches


def run_epoch_batches(run, X2d, targets, order, batch_size: int, events, check, has_accuracy: bool) -> dict:
    """One epoch of mini-batches of ``X2d[order]`` through ``run`` (a trainer's ``run``), as schemes share it.

    Without a callback that wants batches, all full batches go in one call; with one, a call per
    batch and ``events.on_batch_end`` after each. A last, smaller batch gets its own call.
    ``check(done, count)`` runs after each call (the scheme's divergence test; it raises). Returns
    the epoch's logs: the mean ``loss``, and ``accuracy`` when ``has_accuracy``.
    """
    n = len(X2d)
    full, rest = divmod(n, batch_size)
    runs = [(b * batch_size, 1, batch_size) for b in range(full)] if events.wants_batches \
        else [(0, full, batch_size)]
    if rest:
        runs.append((full * batch_size, 1, rest))
    total_loss, total_correct = 0.0, 0
    for batch, (start, count, size) in enumerate(runs):
        losses, correct, done = run(X2d, targets, order, start, count, size)
        check(done, count)
        total_loss += float(losses.sum()) * size
        total_correct += int(correct.sum())
        if events.wants_batches:
            events.on_batch_end(batch, {"loss": float(losses[-1]), "size": size})
    logs = {"loss": total_loss / n}
    if has_accuracy:
        logs["accuracy"] = total_correct / n
    return logs


def make_trainer(model, loss: Loss, optimizer, sample_shape, batch_size: int, compiled: bool = True,
                 augment: tuple[int, int] | None = None, split_batches: bool | None = None):
    """The fastest trainer available for this model: compiled when possible, else layer by layer.

    A model on the GPU (``model.to("cuda")``) gets a :class:`DeviceTrainer`, whose ``run``
    takes the data on the device (``trainer.put(X)``).

    ``augment`` is ``(max_shift, seed)``: each training image (N, C, H, W) is shifted by a random
    number of pixels, up to ``max_shift`` each way, drawn from a counter-based generator.
    ``split_batches`` goes to :meth:`~nkernels.compiled.step.CompiledTrainer.build`.
    """
    if augment is not None and len(sample_shape) != 3:
        raise ValueError(f"random translations need image inputs (N, C, H, W), got samples of shape "
                         f"{tuple(sample_shape)}")
    if getattr(model, "device", "cpu") == "cuda":
        return DeviceTrainer(model, loss, optimizer, sample_shape, augment)
    if compiled:
        from .compiled.step import CompiledTrainer

        trainer = CompiledTrainer.build(model, loss, optimizer, sample_shape, batch_size, augment, split_batches)
        if trainer is not None:
            return trainer
    return LayerwiseTrainer(model, loss, optimizer, sample_shape, augment)


def default_loss(y: Any) -> Loss:
    """Softmax cross-entropy for integer labels, mean squared error for anything else."""
    from .losses import MSE, SoftmaxCrossEntropy

    arr = np.asarray(y)
    return SoftmaxCrossEntropy() if arr.ndim == 1 and arr.dtype.kind in "iu" else MSE()


def evaluate(model, X: Any, y: Any, loss: Any = None, batch_size: int = 256) -> dict[str, float]:
    """The mean loss (and accuracy, for classification) of ``model`` on ``X``, ``y`` in evaluation mode."""
    X = check_features(X, dtype=model.dtype)
    check_same_length(X, y)
    batch_size = check_positive_int(batch_size, "batch_size")
    loss = default_loss(y) if loss is None else get_loss(loss)
    out_shape = check_model_input(model, X)
    targets = loss.prepare_targets(y, out_shape, model.dtype)
    total, correct = 0.0, 0
    count = kernel("count_correct")
    with blas_single_threaded():
        for i in range(0, len(X), batch_size):
            out = model.forward(X[i:i + batch_size], training=False)
            t = targets[i:i + batch_size]
            total += loss.forward(out, t) * len(out)
            if loss.has_accuracy:
                correct += count(out, t)
    result = {"loss": total / len(X)}
    if loss.has_accuracy:
        result["accuracy"] = correct / len(X)
    return result


def _resolve_scheme(scheme: Any, options: dict[str, Any]):
    from . import registry
    from .schemes.base import Scheme

    if isinstance(scheme, Scheme):
        if options:
            raise ValueError(f"options {sorted(options)} were given with a scheme instance; "
                             f"pass them to its constructor instead")
        return scheme
    if isinstance(scheme, type) and issubclass(scheme, Scheme):
        cls = scheme
    elif isinstance(scheme, str):
        cls = registry.schemes[scheme]
    else:
        raise TypeError(f"scheme must be a registered name or a Scheme, got {scheme!r}")
    try:
        inspect.signature(cls).bind(**options)
    except TypeError:
        accepted = [p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs")]
        raise TypeError(f"scheme {scheme!r} does not accept the option(s) {sorted(options)}; it accepts "
                        f"{accepted} plus the fit arguments {list(FIT_ARGUMENTS)}") from None
    return cls(**options)


def train(model, X: Any, y: Any = None, scheme: Any = "backprop", *, progress: bool = False,
          device: str | None = None, **kwargs: Any):
    """Train ``model`` on ``X``, ``y`` with a registered scheme; returns the History.

    The ``fit`` arguments (``epochs``, ``batch_size``, ``seed``, ``callbacks``,
    ``validation_data``) go to the scheme's ``fit``; everything else (``optimizer``, ``lr``, the
    scheme's own options) to its constructor. ``progress=True`` shows a progress bar.
    ``device="cuda"`` moves the model to the GPU first (``model.to("cuda")``); backprop then
    keeps the data, the parameters and the optimizer state there for the whole run.
    """
    fit_kwargs = {k: kwargs.pop(k) for k in FIT_ARGUMENTS if k in kwargs}
    scheme_obj = _resolve_scheme(scheme, kwargs)
    if device is not None:
        model.to(device)
    if progress:
        from .callbacks import ProgressBar, as_callback_list

        fit_kwargs["callbacks"] = as_callback_list(fit_kwargs.get("callbacks")) + [ProgressBar()]
    return scheme_obj.fit(model, X, y, **fit_kwargs)
