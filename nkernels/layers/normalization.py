"""Normalization layers: BatchNorm1D, BatchNorm2D and LayerNorm, as PyTorch's."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..passes import DX, DY, NEED_DX, X, Y, Call, Const, LayerPasses, Scalar, buffer, grad, param, work
from ..validation import check_bool, check_int, check_number
from .base import Layer


class _BatchNorm(Layer):
    """Shared by BatchNorm1D and BatchNorm2D: per-channel statistics over the batch and the positions.

    ``layouts`` maps the number of input dimensions to its description.
    """

    layouts: dict[int, str] = {}
    supported_devices = ("cpu", "cuda")
    couples_batch = True

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1):
        self.num_features = check_int(num_features, "num_features")
        self.eps = check_number(eps, "eps", low=0, low_open=True)
        self.momentum = check_number(momentum, "momentum", low=0, high=1, allow_none=True)
        self.add_parameter("weight", (self.num_features,))
        self.add_parameter("bias", (self.num_features,))
        self.add_buffer("running_mean", np.zeros(self.num_features, self.dtype))
        self.add_buffer("running_var", np.ones(self.num_features, self.dtype))
        self.add_buffer("num_batches_tracked", np.zeros(1, np.int64))
        self.reset_parameters(np.random.default_rng())

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """PyTorch's start: weight ones, bias zeros, running mean 0 and variance 1, no batch counted."""
        from ..runtime import devices

        devices.assign(self.params["weight"], np.ones(self.num_features, self.dtype))
        devices.assign(self.params["bias"], np.zeros(self.num_features, self.dtype))
        self.buffers["running_mean"][...] = 0.0
        self.buffers["running_var"][...] = 1.0
        self.buffers["num_batches_tracked"][...] = 0
        self.zero_grads()

    def scalars(self) -> dict[str, float]:
        return {"eps": self.eps, "momentum": 0.0 if self.momentum is None else self.momentum}

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) not in self.layouts or shape[1] != self.num_features:
            layouts = " or ".join(self.layouts.values())
            raise ValueError(f"{self!r} expects input of shape {layouts} with C = {self.num_features}, got {shape}")
        return shape

    def check_training_shape(self, input_shape) -> None:
        self.output_shape(input_shape)
        values = int(np.prod(input_shape)) // self.num_features
        if values < 2:
            raise ValueError(f"{self!r}: training needs more than one value per channel (the batch's variance), got "
                             f"input of shape {tuple(input_shape)}; train with batches of 2 or more samples (a "
                             f"last batch of one sample: choose a batch_size that leaves none), or use the model "
                             f"in evaluation mode")

    def passes(self, input_shape):
        self.output_shape(input_shape)
        channels = Const(self.num_features, specialize=False)
        return LayerPasses(
            forward=(Call("batchnorm_forward_train", X.rows, channels, param("weight"), param("bias"), Scalar("eps"),
                          Scalar("momentum"), Const(self.momentum is None, specialize=False), buffer("running_mean"),
                          buffer("running_var"), buffer("num_batches_tracked"), work("mean"), work("invstd"),
                          Y.rows),),
            backward=(Call("batchnorm_backward", X.rows, DY.rows, channels, param("weight"), work("mean"),
                           work("invstd"), NEED_DX, DX.rows, grad("weight"), grad("bias")),),
            inference=(Call("batchnorm_forward_eval", X.rows, channels, param("weight"), param("bias"),
                            Scalar("eps"), buffer("running_mean"), buffer("running_var"), Y.rows),),
            workspaces={"mean": ((self.num_features,), None), "invstd": ((self.num_features,), None)},
        )


class BatchNorm1D(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L), as ``torch.nn.BatchNorm1d``.

    Training normalises each channel with the batch's mean and biased variance (over N, or N and
    L) and moves the buffers ``running_mean`` and ``running_var`` toward the batch's mean and
    unbiased variance: ``running = (1 - momentum) * running + momentum * batch``, or a cumulative
    average with ``momentum=None``; ``num_batches_tracked`` counts the training batches.
    Evaluation normalises with the running statistics. ``weight`` (ones) and ``bias`` (zeros)
    scale and shift each channel. The buffers are saved with the model and with checkpoints.

    A sample's output depends on the rest of its batch, so the compiled trainer never splits a
    batch of a model holding one, and training needs more than one value per channel.
    """

    layouts = {2: "(N, C)", 3: "(N, C, L)"}


class BatchNorm2D(_BatchNorm):
    """Batch normalization of NCHW images per channel (over N, H and W), as ``torch.nn.BatchNorm2d``.

    Parameters, buffers, training and evaluation as :class:`BatchNorm1D`.
    """

    layouts = {4: "(N, C, H, W)"}


class LayerNorm(Layer):
    """Layer normalization over the trailing ``normalized_shape`` dimensions, as ``torch.nn.LayerNorm``.

    Each sample (and each position of a sequence) is normalised with the mean and biased
    variance of its last ``len(normalized_shape)`` dimensions, which must equal
    ``normalized_shape`` (an int or a tuple). With ``elementwise_affine`` the result is scaled by
    ``weight`` (ones) and, with ``bias``, shifted by ``bias`` (zeros), both of
    ``normalized_shape``; a disabled one is not a parameter at all. Training and evaluation
    compute the same thing.
    """

    supported_devices = ("cpu", "cuda")

    def __init__(self, normalized_shape: Any, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True):
        self.normalized_shape = _normalized_shape(normalized_shape)
        self.eps = check_number(eps, "eps", low=0, low_open=True)
        self.elementwise_affine = check_bool(elementwise_affine, "elementwise_affine")
        bias = check_bool(bias, "bias")
        if not self.elementwise_affine and bias and "bias" in (self._init_arguments or {}):
            raise ValueError("LayerNorm: bias=True has no effect with elementwise_affine=False (there is no affine "
                             "transform to shift); drop bias or set elementwise_affine=True")
        self.use_bias = self.elementwise_affine and bias
        if self.elementwise_affine:
            self.add_parameter("weight", self.normalized_shape)
        if self.use_bias:
            self.add_parameter("bias", self.normalized_shape)
        self.reset_parameters(np.random.default_rng())

    @property
    def size(self) -> int:
        """The number of values normalised together (the product of ``normalized_shape``)."""
        return int(np.prod(self.normalized_shape))

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """PyTorch's start: weight ones, bias zeros."""
        from ..runtime import devices

        for name, value in self.params.items():
            devices.assign(value, (np.ones if name == "weight" else np.zeros)(value.shape, value.dtype))
        self.zero_grads()

    def scalars(self) -> dict[str, float]:
        return {"eps": self.eps}

    def output_shape(self, input_shape):
        shape, k = tuple(input_shape), len(self.normalized_shape)
        if len(shape) < k + 1 or shape[-k:] != self.normalized_shape:
            want = ", ".join(["N", "..."] + [str(s) for s in self.normalized_shape])
            raise ValueError(f"{self!r} expects input of shape ({want}): its last {k} dimension"
                             f"{'s' if k > 1 else ''} {'are' if k > 1 else 'is'} normalised, got {shape}")
        return shape

    def passes(self, input_shape):
        self.output_shape(input_shape)
        d, eps = Const(self.size), Scalar("eps")
        stats = (work("mean"), work("invstd"))
        rows = int(np.prod(input_shape)) // self.size
        if self.use_bias:
            forward = Call("layernorm_affine_forward", X.flat, d, param("weight").flat, param("bias").flat, eps,
                           *stats, Y.flat)
            backward = Call("layernorm_affine_backward", X.flat, DY.flat, d, param("weight").flat, *stats, NEED_DX,
                            DX.flat, grad("weight").flat, grad("bias").flat)
        elif self.elementwise_affine:
            forward = Call("layernorm_scale_forward", X.flat, d, param("weight").flat, eps, *stats, Y.flat)
            backward = Call("layernorm_scale_backward", X.flat, DY.flat, d, param("weight").flat, *stats, NEED_DX,
                            DX.flat, grad("weight").flat)
        else:
            forward = Call("layernorm_forward", X.flat, d, eps, *stats, Y.flat)
            backward = Call("layernorm_backward", X.flat, DY.flat, d, *stats, NEED_DX, DX.flat)
        return LayerPasses(forward=(forward,), backward=(backward,),
                           workspaces={"mean": ((rows,), None), "invstd": ((rows,), None)})


def _normalized_shape(value: Any) -> tuple[int, ...]:
    """``normalized_shape`` as a tuple of positive ints (an int is a one-dimensional shape)."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError("normalized_shape must name at least one dimension, got ()")
        return tuple(check_int(v, f"normalized_shape[{i}]") for i, v in enumerate(value))
    return (check_int(value, "normalized_shape"),)
