"""Pooling layers: MaxPool1D, MaxPool2D and AvgPool2D (square windows, no padding, floor mode),
GlobalAvgPool2D, and GlobalAvgPool1D (the mean over the tokens of a sequence)."""
from __future__ import annotations

import numpy as np

from ..passes import DX, DY, X, Y, Call, Const, LayerPasses, work
from ..validation import check_int
from .base import Layer


class _Pool(Layer):
    """Shared by the pools: window ``kernel_size``, ``stride`` (defaults to the window), spatial dims."""

    spatial = 2
    op = ""
    saves_argmax = True
    supported_devices = ("cpu", "cuda")

    def __init__(self, kernel_size: int, stride: int | None = None):
        self.kernel_size = check_int(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else check_int(stride, "stride")

    def output_shape(self, input_shape):
        if len(input_shape) != self.spatial + 2:
            layout = "(N, C, H, W)" if self.spatial == 2 else "(N, C, L)"
            raise ValueError(f"{self!r} expects input of shape {layout}, got {tuple(input_shape)}")
        spatial = input_shape[2:]
        if min(spatial) < self.kernel_size:
            raise ValueError(f"{self!r}: the window {self.kernel_size} is larger than the input's spatial "
                             f"size {tuple(spatial)}")
        return tuple(input_shape[:2]) + tuple((s - self.kernel_size) // self.stride + 1 for s in spatial)

    def passes(self, input_shape):
        k, s = Const(self.kernel_size, specialize=False), Const(self.stride, specialize=False)
        if self.saves_argmax:
            return LayerPasses(forward=(Call(self.op + "_forward", X, k, s, Y, work("argmax")),),
                               backward=(Call(self.op + "_backward", DY, work("argmax"), DX, k, s),),
                               workspaces={"argmax": (self.output_shape(input_shape), np.int64)})
        return LayerPasses(forward=(Call(self.op + "_forward", X, k, s, Y),),
                           backward=(Call(self.op + "_backward", DY, k, s, DX),))


class MaxPool2D(_Pool):
    """Max over ``kernel_size`` x ``kernel_size`` windows of (N, C, H, W), as ``torch.nn.MaxPool2d``."""

    op = "maxpool2d"


class MaxPool1D(_Pool):
    """Max over windows of length ``kernel_size`` of (N, C, L), as ``torch.nn.MaxPool1d``."""

    spatial = 1
    op = "maxpool1d"


class AvgPool2D(_Pool):
    """Mean over ``kernel_size`` x ``kernel_size`` windows of (N, C, H, W), as ``torch.nn.AvgPool2d``."""

    op = "avgpool2d"
    saves_argmax = False


class GlobalAvgPool2D(Layer):
    """The mean of each channel's plane: (N, C, H, W) -> (N, C), as ``torch.nn.AdaptiveAvgPool2d(1)`` followed by
    ``torch.nn.Flatten()``."""

    supported_devices = ("cpu", "cuda")

    def output_shape(self, input_shape):
        if len(input_shape) != 4 or min(input_shape[2:]) < 1:
            raise ValueError(f"{self!r} expects input of shape (N, C, H, W) with H, W >= 1, got {tuple(input_shape)}")
        return tuple(input_shape[:2])

    def passes(self, input_shape):
        return LayerPasses(forward=(Call("globalavgpool2d_forward", X, Y),),
                           backward=(Call("globalavgpool2d_backward", DY, DX),))


class GlobalAvgPool1D(Layer):
    """The mean over the tokens of a sequence: (N, T, D) -> (N, D), as ``x.mean(dim=1)`` in PyTorch
    (the sum in float64)."""

    supported_devices = ("cpu", "cuda")

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self!r} expects input of shape (N, T, D), got {tuple(input_shape)}")
        return (input_shape[0], input_shape[2])

    def passes(self, input_shape):
        return LayerPasses(forward=(Call("globalavgpool1d_forward", X, Y),),
                           backward=(Call("globalavgpool1d_backward", DY, DX),))
