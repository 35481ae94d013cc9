"""A model read as a chain of blocks, each a Dense layer and at most one activation after it."""
from __future__ import annotations

from dataclasses import dataclass

import nkernels as nk

#: activation layer types and their kernel names (``<name>_forward`` / ``<name>_backward``)
ACTIVATIONS = {nk.layers.ReLU: "relu", nk.layers.Sigmoid: "sigmoid", nk.layers.Tanh: "tanh"}


@dataclass
class Block:
    """``dense`` (the layer at ``index``) and the name of the activation after it (None if none)."""

    index: int
    dense: nk.layers.Dense
    activation: str | None = None


def read_chain(model: nk.Sequential, scheme: str) -> list[Block]:
    """The model's blocks; a ValueError naming the first layer ``scheme`` cannot train, and where it is.

    Supported: Dense layers, each followed by at most one ReLU, Sigmoid or Tanh; Flatten anywhere
    (a reshape). The first trained layer must be a Dense.
    """
    blocks: list[Block] = []
    supported = "Dense layers, each followed by at most one ReLU, Sigmoid or Tanh, and Flatten"
    for i, layer in enumerate(model.layers):
        kind = type(layer)
        if kind is nk.layers.Flatten:
            continue
        if kind is nk.layers.Dense:
            blocks.append(Block(i, layer))
        elif kind in ACTIVATIONS:
            if not blocks:
                raise ValueError(f"{scheme} cannot train layer {i} ({kind.__name__}): it comes before the first "
                                 f"Dense layer; {scheme} trains {supported}")
            if blocks[-1].activation is not None:
                raise ValueError(f"{scheme} cannot train layer {i} ({kind.__name__}): it follows another "
                                 f"activation; {scheme} trains {supported}")
            blocks[-1].activation = ACTIVATIONS[kind]
        else:
            raise ValueError(f"{scheme} cannot train layer {i} ({kind.__name__}): {scheme} trains {supported}; "
                             f"train this model with backprop")
    if not blocks:
        raise ValueError(f"{scheme} needs at least one Dense layer; the model has none")
    return blocks
