"""Pooling layers: MaxPool1D, MaxPool2D and AvgPool2D (square windows, no padding, floor mode)."""
from __future__ import annotations

import numpy as np

from ..compiled.spec import CompiledOp
from .base import Layer, check_positive_int


class _Pool(Layer):
    """Shared by the pools: window ``kernel_size``, ``stride`` (defaults to the window), spatial dims."""

    spatial = 2
    op = ""
    saves_argmax = True
    supported_devices = ("cpu", "cuda")

    def __init__(self, kernel_size: int, stride: int | None = None):
        self.kernel_size = check_positive_int(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else check_positive_int(stride, "stride")

    def output_shape(self, input_shape):
        if len(input_shape) != self.spatial + 2:
            layout = "(N, C, H, W)" if self.spatial == 2 else "(N, C, L)"
            raise ValueError(f"{self!r} expects input of shape {layout}, got {tuple(input_shape)}")
        spatial = input_shape[2:]
        if min(spatial) < self.kernel_size:
            raise ValueError(f"{self!r}: the window {self.kernel_size} is larger than the input's spatial "
                             f"size {tuple(spatial)}")
        return tuple(input_shape[:2]) + tuple((s - self.kernel_size) // self.stride + 1 for s in spatial)

    def forward(self, x, training=False):
        x = self.prepare_input(x)
        out = self.empty(self.output_shape(x.shape), x.dtype)  # output_shape checks the layout
        forward = self.kernel_of(self.op + "_forward")
        if self.saves_argmax:
            argmax = self.empty(out.shape, np.int64)
            forward(x, self.kernel_size, self.stride, out, argmax)
            if training:
                self.save_for_backward(argmax=argmax, shape=x.shape)
        else:
            forward(x, self.kernel_size, self.stride, out)
            if training:
                self.save_for_backward(shape=x.shape, out_shape=out.shape)
        return out

    def backward(self, dy):
        saved = self.saved_for_backward()
        out_shape = saved["argmax"].shape if self.saves_argmax else saved["out_shape"]
        dy = self.prepare_grad_output(dy, out_shape)
        dx = self.empty(saved["shape"], dy.dtype)
        backward = self.kernel_of(self.op + "_backward")
        if self.saves_argmax:
            backward(dy, saved["argmax"], dx)
        else:
            backward(dy, self.kernel_size, self.stride, dx)
        return dx

    def compiled_op(self, input_shape, dtype):
        k, s = self.kernel_size, self.stride
        if self.saves_argmax:
            return CompiledOp(forward=f"{self.op}_forward({{x}}, {k}, {s}, {{y}}, {{w[argmax]}})",
                              backward=f"{self.op}_backward({{dy}}, {{w[argmax]}}, {{dx}})",
                              ops=(self.op + "_forward", self.op + "_backward"),
                              workspaces={"argmax": (self.output_shape(input_shape), np.int64)})
        return CompiledOp(forward=f"{self.op}_forward({{x}}, {k}, {s}, {{y}})",
                          backward=f"{self.op}_backward({{dy}}, {k}, {s}, {{dx}})",
                          ops=(self.op + "_forward", self.op + "_backward"))


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
