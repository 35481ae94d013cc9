"""A model read as the chain MAC trains: Dense layers, each followed by at most one activation."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import nkernels as nk

from . import kernels

#: the activation layers MAC trains, by their kernel code
ACTIVATIONS = {nk.layers.ReLU: kernels.RELU, nk.layers.Sigmoid: kernels.SIGMOID, nk.layers.Tanh: kernels.TANH}
SUPPORTED = "Dense layers, each followed by at most one ReLU, Sigmoid or Tanh (Flatten allowed anywhere)"


@dataclass(frozen=True)
class Chain:
    """The trainable layers: ``dense`` (the Dense layers in order), ``dims`` (``d_0 .. d_K``) and
    ``acts`` (each Dense layer's activation code; IDENTITY when none follows it)."""

    dense: tuple
    dims: np.ndarray
    acts: np.ndarray

    @property
    def hidden_columns(self) -> np.ndarray:
        """The column offsets of each hidden layer's coordinates in ``Z`` (``z_off``, K entries)."""
        return np.concatenate([[0], np.cumsum(self.dims[1:-1])]).astype(np.int64)


def read_chain(model) -> Chain:
    """The model's chain, or a ValueError naming the first layer MAC cannot train and where it is.

    The last Dense layer must end the model: the loss acts on its outputs.
    """
    dense, acts = [], []
    for i, layer in enumerate(model.layers):
        kind = type(layer)
        where = f"layer {i} ({kind.__name__})"
        if kind is nk.layers.Flatten:
            continue
        if kind is nk.layers.Dense:
            dense.append(layer)
            acts.append(kernels.IDENTITY)
        elif kind in ACTIVATIONS:
            if not dense or acts[-1] != kernels.IDENTITY:
                raise ValueError(f"mac cannot train {where}: an activation must follow a Dense layer directly; "
                                 f"mac trains {SUPPORTED}")
            acts[-1] = ACTIVATIONS[kind]
        else:
            raise ValueError(f"mac cannot train {where}: mac trains {SUPPORTED}; train this model with "
                             f"another scheme, such as backprop")
    if len(dense) < 2:
        raise ValueError(f"mac needs at least two Dense layers (a hidden layer whose outputs get auxiliary "
                         f"coordinates); the model has {len(dense)}. Train it with backprop")
    if acts[-1] != kernels.IDENTITY:
        raise ValueError(f"mac cannot train the {type(model.layers[-1]).__name__} after the last Dense layer: the "
                         f"loss acts on the last Dense layer's outputs; drop the activation (the loss applies "
                         f"its own, such as the softmax of cross-entropy)")
    dims = np.array([dense[0].in_features] + [d.out_features for d in dense], np.int64)
    return Chain(tuple(dense), dims, np.array(acts, np.int64))
