"""MultiHeadAttention: batch-first multi-head self-attention (PyTorch's ``nn.MultiheadAttention``)."""
from __future__ import annotations

import numpy as np

from ..passes import DX, DY, NEED_DX, X, Y, Call, Const, LayerPasses, Scalar, buffer, grad, param, work
from ..runtime import devices
from ..validation import check_bool, check_int, check_number, check_seed
from .base import Layer


class MultiHeadAttention(Layer):
    """Self-attention over the tokens of (N, T, E) inputs with ``num_heads`` heads of E / num_heads
    features each, returning the output (N, T, E) only, as ``torch.nn.MultiheadAttention(embed_dim,
    num_heads, dropout, bias, batch_first=True)`` called on ``(x, x, x)`` with ``need_weights=False``.

    Parameters (PyTorch's names and initialisation): ``in_proj_weight`` (3E, E, Xavier-uniform),
    ``in_proj_bias`` (3E, zeros), ``out_proj_weight`` (E, E, U(-1/sqrt(E), 1/sqrt(E))) and
    ``out_proj_bias`` (E, zeros); ``bias=False`` leaves out both biases. ``causal=True`` lets token
    ``i`` attend to tokens ``0..i`` only (PyTorch's boolean upper-triangular ``attn_mask``).

    In training, ``dropout`` zeroes each attention weight with that probability and scales the others
    by ``1 / (1 - dropout)``; evaluation drops nothing. The masks are counter-based, as
    :class:`~nkernels.layers.Dropout`'s: ``seed`` and ``counter`` are buffers (saved with the model
    and with checkpoints), the same on the CPU and the GPU, and ``seed`` is drawn when the model is
    seeded unless given.
    """

    supported_devices = ("cpu", "cuda")

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True, *,
                 causal: bool = False, seed: int | None = None):
        self.embed_dim = check_int(embed_dim, "embed_dim")
        self.num_heads = check_int(num_heads, "num_heads")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads}): each "
                             f"head takes embed_dim / num_heads features; choose a num_heads that divides it")
        self.dropout = check_number(dropout, "dropout", low=0, high=1)
        self.use_bias = check_bool(bias, "bias")
        self.causal = check_bool(causal, "causal")
        seed = check_seed(seed)
        e = self.embed_dim
        self.add_parameter("in_proj_weight", (3 * e, e))
        if self.use_bias:
            self.add_parameter("in_proj_bias", (3 * e,))
        self.add_parameter("out_proj_weight", (e, e))
        if self.use_bias:
            self.add_parameter("out_proj_bias", (e,))
        drawn = seed if seed is not None else np.random.default_rng().integers(2**62)
        self.add_buffer("seed", np.array([drawn], np.int64))
        self.add_buffer("counter", np.zeros(1, np.int64))
        self.reset_parameters(np.random.default_rng())

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """PyTorch's initialisation (Xavier-uniform in-projection, the default Linear's out-projection
        weight, zero biases); the dropout seed drawn from ``rng`` unless given, the counter restarted."""
        e = self.embed_dim
        shapes = {"in_proj_weight": (np.sqrt(6.0 / (e + 3 * e)), (3 * e, e)),
                  "out_proj_weight": (1.0 / np.sqrt(e), (e, e))}
        for name, (bound, shape) in shapes.items():
            devices.assign(self.params[name], rng.uniform(-bound, bound, shape).astype(self.dtype))
        for name in ("in_proj_bias", "out_proj_bias"):
            if name in self.params:
                devices.assign(self.params[name], np.zeros(self.params[name].shape, self.dtype))
        self.zero_grads()
        if self._init_arguments is None or self._init_arguments.get("seed") is None:
            self.buffers["seed"][0] = rng.integers(2**62)
        self.buffers["counter"][0] = 0

    @property
    def seed(self) -> int:
        """The seed of the dropout masks (a buffer, so saves and checkpoints keep it)."""
        return int(self.buffers["seed"][0])

    def scalars(self):
        return {"p": self.dropout}

    def output_shape(self, input_shape):
        if len(input_shape) != 3 or input_shape[2] != self.embed_dim:
            raise ValueError(f"{self!r} expects input of shape (N, T, {self.embed_dim}) (batch, tokens, "
                             f"embed_dim), got {tuple(input_shape)}")
        return tuple(input_shape)

    def passes(self, input_shape):
        n, t, e = self.output_shape(tuple(input_shape))
        h = self.num_heads
        drops = self.dropout > 0
        if self.use_bias:
            in_bias, out_bias = param("in_proj_bias"), param("out_proj_bias")
            d_in_bias, d_out_bias = grad("in_proj_bias"), grad("out_proj_bias")
        else:
            in_bias = out_bias = d_in_bias = d_out_bias = work("no_bias")
        options = (Const(h, specialize=False), Const(self.causal, specialize=False))
        saved = (work("qkv"), work("attn"), work("mask"), work("ctx"))

        def forward(p, seed, counter):
            return (Call("attention_forward", X, param("in_proj_weight"), in_bias, param("out_proj_weight"), out_bias,
                         *options, p, seed, counter, *saved, Y),)

        # evaluation (and training without dropout) touches no buffer, so such a model keeps no state
        evaluation = forward(Const(0.0), work("no_rng"), work("no_rng"))
        p = Scalar("p") if drops else Const(0.0)
        workspaces = {"qkv": ((n, t, 3 * e), None), "attn": ((n, h, t, t), None),
                      "mask": ((n, h, t, t) if drops else (0, 0, 0, 0), None), "ctx": ((n, t, e), None),
                      "dctx": ((n, t, e), None), "dattn": ((n, h, t, t), None), "dqkv": ((n, t, 3 * e), None),
                      "no_rng": ((1,), np.int64)}
        if not self.use_bias:
            workspaces["no_bias"] = ((0,), None)
        return LayerPasses(
            forward=forward(p, buffer("seed"), buffer("counter")) if drops else evaluation,
            backward=(Call("attention_backward", X, DY, param("in_proj_weight"), param("out_proj_weight"), *options,
                           p, *saved, NEED_DX, work("dctx"), work("dattn"), work("dqkv"), DX, grad("in_proj_weight"),
                           d_in_bias, grad("out_proj_weight"), d_out_bias),),
            inference=evaluation if drops else None,
            workspaces=workspaces,
        )
