"""Convolution layers: Conv1D, Conv2D and ConvTranspose2D (im2col + one GEMM per layer, zero padding, stride)."""
from __future__ import annotations

import numpy as np

from ..passes import DX, DY, FRESH, NEED_DX, X, Y, Call, Const, LayerPasses, grad, param, work
from ..validation import check_bool, check_int, check_pair
from .base import Layer


class _Conv(Layer):
    """Shared by Conv1D and Conv2D: parameters, PyTorch's initialization, the kernels' workspaces."""

    spatial = 2
    supported_devices = ("cpu", "cuda")

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True):
        self.in_channels = check_int(in_channels, "in_channels")
        self.out_channels = check_int(out_channels, "out_channels")
        self.kernel: tuple[int, ...]
        self.strides: tuple[int, ...]
        self.paddings: tuple[int, ...]
        if self.spatial == 2:
            self.kernel = check_pair(kernel_size, "kernel_size")
            self.strides = check_pair(stride, "stride")
            self.paddings = check_pair(padding, "padding", minimum=0)
        else:
            self.kernel = (check_int(kernel_size, "kernel_size"),)
            self.strides = (check_int(stride, "stride"),)
            self.paddings = (check_int(padding, "padding", minimum=0),)
        self.use_bias = check_bool(bias, "bias")
        self.add_parameter("weight", self._weight_shape())
        if self.use_bias:
            self.add_parameter("bias", (self.out_channels,))
        self.reset_parameters(np.random.default_rng())

    def _weight_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.in_channels) + self.kernel

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias, as PyTorch's conv layers, with PyTorch's
        fan_in: the weight's second axis times the kernel's size."""
        self.fill_uniform(rng, 1.0 / np.sqrt(self._weight_shape()[1] * int(np.prod(self.kernel))))

    def output_shape(self, input_shape):
        expected = "(N, C, H, W)" if self.spatial == 2 else "(N, C, L)"
        if len(input_shape) != self.spatial + 2 or input_shape[1] != self.in_channels:
            raise ValueError(f"{self!r} expects input of shape {expected} with C={self.in_channels}, "
                             f"got {tuple(input_shape)}")
        sizes = []
        for size, k, s, p in zip(input_shape[2:], self.kernel, self.strides, self.paddings):
            if size + 2 * p < k:
                raise ValueError(f"{self!r}: input of spatial size {tuple(input_shape[2:])} is smaller than "
                                 f"the kernel {self.kernel} even with padding {self.paddings}")
            sizes.append((size + 2 * p - k) // s + 1)
        return (input_shape[0], self.out_channels) + tuple(sizes)

    def _workspace_shapes(self, input_shape):
        out = self.output_shape(input_shape)
        pixels = input_shape[0] * int(np.prod(out[2:]))
        return (pixels, self.in_channels * int(np.prod(self.kernel))), (self.out_channels, pixels)

    def _options(self) -> tuple[Const, ...]:
        """The kernels' int options: strides then paddings (h, w for 2-D), plain ints (one compile of the
        large convolution kernels for every stride and padding)."""
        return tuple(Const(v, specialize=False) for v in self.strides + self.paddings)

    def passes(self, input_shape):
        bias, dbias = (param("bias"), grad("bias")) if self.use_bias else (work("no_bias"), work("no_bias"))
        cols_shape, gemm_shape = self._workspace_shapes(input_shape)
        workspaces = {"cols": (cols_shape, None), "gemm": (gemm_shape, None)}
        if not self.use_bias:
            workspaces["no_bias"] = ((0,), None)
        options = self._options()
        return LayerPasses(
            forward=(Call(self.op + "_forward", X, param("weight"), bias, *options, work("cols"), work("gemm"), Y),),
            backward=(Call(self.op + "_backward", X, param("weight"), DY, *options, NEED_DX, FRESH, work("cols"),
                           work("gemm"), DX, grad("weight"), dbias),),
            workspaces=workspaces,
        )


class Conv2D(_Conv):
    """2-D convolution of (N, C, H, W) inputs: ``weight`` (out, in, kh, kw), ``bias`` (out), as ``torch.nn.Conv2d``.

    ``kernel_size``, ``stride`` and ``padding`` take an int or a pair (height, width).
    """

    op = "conv2d"


class Conv1D(_Conv):
    """1-D convolution of (N, C, L) inputs: ``weight`` (out, in, k), ``bias`` (out), as ``torch.nn.Conv1d``."""

    spatial = 1
    op = "conv1d"


class ConvTranspose2D(_Conv):
    """2-D transposed convolution of (N, C, H, W) inputs, as ``torch.nn.ConvTranspose2d``: ``weight``
    (in, out, kh, kw) (PyTorch's layout, not Conv2D's (out, in, kh, kw)), ``bias`` (out).

    The output is ``(H - 1) * stride - 2 * padding + kernel_size + output_padding`` high (and wide
    likewise): the gradient of a Conv2D with the same options with respect to its input, which is
    how the kernels compute it. ``output_padding`` (below ``stride``) picks among the output sizes
    that such a Conv2D maps to H. ``kernel_size``, ``stride``, ``padding`` and ``output_padding``
    take an int or a pair (height, width).
    """

    op = "convtranspose2d"

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 bias: bool = True):
        strides = check_pair(stride, "stride")
        self.output_paddings = check_pair(output_padding, "output_padding", minimum=0)
        if any(op >= s for op, s in zip(self.output_paddings, strides)):
            raise ValueError(f"output_padding must be smaller than stride in each dimension, got output_padding="
                             f"{output_padding!r} with stride={stride!r}: raise the stride or lower output_padding")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias)

    def _weight_shape(self) -> tuple[int, ...]:
        return (self.in_channels, self.out_channels) + self.kernel

    def output_shape(self, input_shape):
        if len(input_shape) != 4 or input_shape[1] != self.in_channels:
            raise ValueError(f"{self!r} expects input of shape (N, C, H, W) with C={self.in_channels}, "
                             f"got {tuple(input_shape)}")
        sizes = tuple((size - 1) * s - 2 * p + k + op for size, k, s, p, op in
                      zip(input_shape[2:], self.kernel, self.strides, self.paddings, self.output_paddings))
        if min(sizes) < 1:
            raise ValueError(f"{self!r}: input of spatial size {tuple(input_shape[2:])} gives an output of size "
                             f"{sizes}; use a larger input or kernel, or less padding")
        return (input_shape[0], self.out_channels) + sizes

    def passes(self, input_shape):
        n, c, h, w = input_shape
        bias, dbias = (param("bias"), grad("bias")) if self.use_bias else (work("no_bias"), work("no_bias"))
        pixels = n * h * w
        workspaces = {"cols": ((pixels, self.out_channels * int(np.prod(self.kernel))), None),
                      "gemm": ((c, pixels), None)}
        if not self.use_bias:
            workspaces["no_bias"] = ((0,), None)
        options = self._options()
        return LayerPasses(
            forward=(Call("convtranspose2d_forward", X, param("weight"), bias, *options, work("cols"), work("gemm"),
                          Y),),
            backward=(Call("convtranspose2d_backward", X, param("weight"), DY, *options, NEED_DX, FRESH,
                           work("cols"), work("gemm"), DX, grad("weight"), dbias),),
            workspaces=workspaces,
        )
