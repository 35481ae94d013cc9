"""``nk.train`` and ``nk.evaluate``: train a model with a registered scheme, and score it.

The trainers that run the mini-batches live in :mod:`nkernels.trainers`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .runtime import devices
from .validation import check_int, check_model_data, check_model_input, check_same_length, constructor_signature
from .losses import Loss, get_loss
from .runtime.threads import blas_single_threaded

FIT_ARGUMENTS = ("epochs", "batch_size", "seed", "callbacks", "validation_data")


def default_loss(y: Any, output_shape: tuple[int, ...] | None = None) -> Loss:
    """Softmax cross-entropy for integer labels, mean squared error for anything else.

    Integer labels are one per sample (N,), or, given the model's ``output_shape`` (N, T, C),
    one per token (N, T): a shape that only labels can have, since MSE's targets are shaped
    like the outputs."""
    from .losses import MSE, SoftmaxCrossEntropy

    arr = np.asarray(y)
    per_token = output_shape is not None and len(output_shape) > 2 and arr.shape[1:] == tuple(output_shape[1:-1])
    return SoftmaxCrossEntropy() if arr.dtype.kind in "iu" and (arr.ndim == 1 or per_token) else MSE()


def evaluate(model, X: Any, y: Any, loss: Any = None, batch_size: int = 256) -> dict[str, float]:
    """The mean loss (and accuracy, for classification) of ``model`` on ``X``, ``y`` in evaluation mode.

    For a sequence's labels (N, T) the loss is the mean over tokens and the accuracy the fraction
    of correct tokens."""
    from .trainers import answers_per_sample
    X = check_model_data(model, X)
    check_same_length(X, y)
    batch_size = check_int(batch_size, "batch_size")
    out_shape = check_model_input(model, X)
    loss = default_loss(y, out_shape) if loss is None else get_loss(loss)
    targets = loss.prepare_targets(y, out_shape, model.dtype)
    starts = range(0, len(X), batch_size)
    losses, correct = np.zeros(len(starts)), np.zeros(len(starts), np.int64)
    total = 0.0
    with blas_single_threaded():
        for b, i in enumerate(starts):
            out = devices.to_host(model.forward(X[i:i + batch_size], training=False))
            loss.forward_into(out, targets[i:i + batch_size], losses, correct, b)
            total += float(losses[b]) * len(out)
    result = {"loss": total / len(X)}
    if loss.has_accuracy:
        result["accuracy"] = int(correct.sum()) / (len(X) * answers_per_sample(targets))
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
    signature = constructor_signature(cls)
    try:
        signature.bind(**options)
    except TypeError:
        accepted = [p for p in signature.parameters if p not in ("self", "args", "kwargs")]
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


def __getattr__(name: str) -> Any:
    if name in ("make_trainer", "run_epoch_batches", "LayerwiseTrainer", "DeviceTrainer"):
        import warnings

        from . import trainers

        warnings.warn(f"nkernels.training.{name} moved to nkernels.trainers.{name}", DeprecationWarning,
                      stacklevel=2)
        return getattr(trainers, name)
    raise AttributeError(f"module 'nkernels.training' has no attribute {name!r}")
