"""A model read as the blocks synthetic gradients decouple: a Dense layer and the activation after it."""
from __future__ import annotations

from dataclasses import dataclass

import nkernels as nk

#: the activations a block may end with, by layer type
ACTIVATIONS = {nk.layers.ReLU: "relu", nk.layers.Sigmoid: "sigmoid", nk.layers.Tanh: "tanh"}
SUPPORTED = "Dense layers, each followed by at most one ReLU, Sigmoid or Tanh, and Flatten"


@dataclass
class Block:
    """One block: ``dense`` (the Dense layer at ``index`` of the model) and the name of the
    activation right after it (``"relu"``, ``"sigmoid"``, ``"tanh"``, or None)."""

    index: int
    dense: nk.layers.Dense
    activation: str | None = None

    @property
    def width(self) -> int:
        """The block's output width (its Dense layer's ``out_features``)."""
        return self.dense.out_features


def read_blocks(model: nk.Sequential) -> list[Block]:
    """The model's blocks, in order; the last is the output block, the others are hidden blocks.

    A block runs from a Dense layer up to and including the activation right after it. A
    ValueError names the first layer sg cannot train and its position, or says that the model
    has no hidden block (then there is no gradient to synthesise: train it with backprop).
    """
    blocks: list[Block] = []
    for i, layer in enumerate(model.layers):
        kind = type(layer)
        if kind is nk.layers.Flatten:  # a reshape: rows stay rows
            continue
        if kind is nk.layers.Dense:
            blocks.append(Block(i, layer))
        elif kind in ACTIVATIONS and blocks and blocks[-1].activation is None:
            blocks[-1].activation = ACTIVATIONS[kind]
        elif kind in ACTIVATIONS:
            where = "follows another activation" if blocks else "comes before the first Dense layer"
            raise ValueError(f"sg cannot train layer {i} ({kind.__name__}): it {where}; sg trains {SUPPORTED}")
        else:
            raise ValueError(f"sg cannot train layer {i} ({kind.__name__}): sg trains {SUPPORTED}; "
                             f"train this model with backprop")
    if len(blocks) < 2:
        raise ValueError(f"sg needs at least two Dense layers (a hidden block whose gradient it synthesises, then "
                         f"the output layer); the model has {len(blocks)}. Train it with backprop")
    return blocks
