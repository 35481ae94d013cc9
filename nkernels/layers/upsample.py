"""Upsample2D: nearest-neighbour upsampling of NCHW images by an integer factor."""
from __future__ import annotations

from ..passes import DX, DY, X, Y, Call, Const, LayerPasses
from ..validation import check_int
from .base import Layer


class Upsample2D(Layer):
    """Repeats every pixel of (N, C, H, W) into a ``scale_factor`` x ``scale_factor`` block, giving
    (N, C, H * scale_factor, W * scale_factor), as ``torch.nn.Upsample(scale_factor=..., mode="nearest")``
    with an integer factor (at least 1)."""

    supported_devices = ("cpu", "cuda")

    def __init__(self, scale_factor: int):
        self.scale_factor = check_int(scale_factor, "scale_factor")

    def output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{self!r} expects input of shape (N, C, H, W), got {tuple(input_shape)}")
        s = self.scale_factor
        return tuple(input_shape[:2]) + (input_shape[2] * s, input_shape[3] * s)

    def passes(self, input_shape):
        s = Const(self.scale_factor, specialize=False)
        return LayerPasses(forward=(Call("upsample2d_forward", X, s, Y),),
                           backward=(Call("upsample2d_backward", DY, s, DX),))
