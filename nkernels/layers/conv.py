"""Convolution layers: Conv1D and Conv2D (im2col + one GEMM per layer, zero padding, stride)."""
from __future__ import annotations

import numpy as np

from ..compiled.spec import CompiledOp
from .base import Layer, check_bool, check_positive_int, pair


class _Conv(Layer):
    """Shared by Conv1D and Conv2D: parameters, PyTorch's initialization, the kernels' workspaces."""

    spatial = 2
    supported_devices = ("cpu", "cuda")

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True):
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.kernel: tuple[int, ...]
        self.strides: tuple[int, ...]
        self.paddings: tuple[int, ...]
        if self.spatial == 2:
            self.kernel = pair(kernel_size, "kernel_size")
            self.strides = pair(stride, "stride")
            self.paddings = pair(padding, "padding", minimum=0)
        else:
            self.kernel = (check_positive_int(kernel_size, "kernel_size"),)
            self.strides = (check_positive_int(stride, "stride"),)
            self.paddings = (check_positive_int(padding, "padding", minimum=0),)
        self.use_bias = check_bool(bias, "bias")
        self.params["weight"] = np.empty((self.out_channels, self.in_channels) + self.kernel, np.float32)
        if self.use_bias:
            self.params["bias"] = np.empty(self.out_channels, np.float32)
        self.reset_parameters(np.random.default_rng())

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias, as PyTorch's conv layers."""
        self.fill_uniform(rng, 1.0 / np.sqrt(self.in_channels * int(np.prod(self.kernel))))

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

    def _options(self) -> tuple[int, ...]:
        """The kernels' int options: strides then paddings (h, w for 2-D)."""
        return self.strides + self.paddings

    def _bias(self, table: dict) -> np.ndarray:
        return table["bias"] if self.use_bias else self.empty((0,))

    def forward(self, x, training=False):
        x = self.prepare_input(x)
        out_shape = self.output_shape(x.shape)  # checks the layout with a clear message
        cols_shape, gemm_shape = self._workspace_shapes(x.shape)
        cols, gemm = self.empty(cols_shape, x.dtype), self.empty(gemm_shape, x.dtype)
        out = self.empty(out_shape, x.dtype)
        self.kernel_of(self.op + "_forward")(x, self.params["weight"], self._bias(self.params), *self._options(),
                                     cols, gemm, out)
        if training:
            self.save_for_backward(x=x, cols=cols, gemm=gemm, out_shape=out_shape, cols_ready=True)
        return out

    def backward(self, dy):
        saved = self.saved_for_backward()
        dy = self.prepare_grad_output(dy, saved["out_shape"])
        x = saved["x"]
        dx = self.empty(x.shape, x.dtype)
        self.kernel_of(self.op + "_backward")(x, self.params["weight"], dy, *self._options(), True,
                                      saved["cols_ready"], saved["cols"], saved["gemm"], dx,
                                      self.grads["weight"], self._bias(self.grads))
        saved["cols_ready"] = False  # cols now holds dcols; a second backward rebuilds the im2col
        return dx

    def compiled_op(self, input_shape, dtype):
        options = ", ".join(map(str, self._options()))
        bias = "{p[bias]}" if self.use_bias else "{w[no_bias]}"
        dbias = "{g[bias]}" if self.use_bias else "{w[no_bias]}"
        cols_shape, gemm_shape = self._workspace_shapes(input_shape)
        workspaces = {"cols": (cols_shape, None), "gemm": (gemm_shape, None)}
        if not self.use_bias:
            workspaces["no_bias"] = ((0,), None)
        return CompiledOp(
            forward=f"{self.op}_forward({{x}}, {{p[weight]}}, {bias}, {options}, {{w[cols]}}, {{w[gemm]}}, {{y}})",
            backward=(f"{self.op}_backward({{x}}, {{p[weight]}}, {{dy}}, {options}, {{need_dx}}, True, "
                      f"{{w[cols]}}, {{w[gemm]}}, {{dx}}, {{g[weight]}}, {dbias})"),
            ops=(self.op + "_forward", self.op + "_backward"),
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
