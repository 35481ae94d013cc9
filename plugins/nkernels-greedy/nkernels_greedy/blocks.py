"""A model read as blocks: each trainable layer with the parameter-free layers after it."""
from __future__ import annotations

from dataclasses import dataclass

import nkernels as nk

#: activation layer types an autoencoder or RBM block may end with, by extractor activation name
ACTIVATION_NAMES = {nk.layers.ReLU: "relu", nk.layers.Sigmoid: "sigmoid", nk.layers.Tanh: "tanh"}


@dataclass
class Block:
    """Layers ``start`` to ``stop`` (exclusive) of the model; ``core`` is the index of its trainable layer.

    The first block also holds any parameter-free layers before the first trainable one (a
    Flatten, say); every block holds the parameter-free layers after its trainable layer.
    """

    start: int
    core: int
    stop: int

    def layers(self, model: nk.Sequential) -> list:
        """The block's layers (shared with the model)."""
        return model.layers[self.start:self.stop]


def split_blocks(model: nk.Sequential) -> list[Block]:
    """The model's blocks, in order; a ValueError if no layer has parameters."""
    cores = [i for i, layer in enumerate(model.layers) if layer.params]
    if not cores:
        raise ValueError("greedy training needs at least one layer with parameters; the model has none")
    starts = [0] + cores[1:]
    stops = cores[1:] + [len(model.layers)]
    return [Block(s, c, e) for s, c, e in zip(starts, cores, stops)]


def extractor_form(model: nk.Sequential, block: Block, pretrain: str) -> tuple[nk.layers.Dense, str]:
    """The Dense layer and activation name an extractor of kind ``pretrain`` learns for ``block``.

    The block must be a Dense layer, optionally after parameter-free layers (they are applied as
    part of the frozen input) and followed by at most one ReLU, Sigmoid or Tanh (an RBM takes
    Sigmoid or ReLU). Anything else is a ValueError naming the layer and its position.
    """
    dense = model.layers[block.core]
    if type(dense) is not nk.layers.Dense:
        raise ValueError(f"{pretrain} pretraining cannot train layer {block.core} ({type(dense).__name__}): it "
                         f"pretrains Dense layers; use mode='supervised' for this model")
    after = model.layers[block.core + 1:block.stop]
    allowed = ("sigmoid", "relu") if pretrain == "rbm" else ("relu", "sigmoid", "tanh")
    for j, layer in enumerate(after):
        name = ACTIVATION_NAMES.get(type(layer))
        if j > 0 or name not in allowed:
            wanted = " or ".join(n.capitalize() if n != "relu" else "ReLU" for n in allowed)
            raise ValueError(f"{pretrain} pretraining cannot train layer {block.core + 1 + j} "
                             f"({type(layer).__name__}) after the Dense at layer {block.core}: a pretrained "
                             f"Dense may be followed by one {wanted} only; use mode='supervised' for this model")
    if not after and pretrain == "rbm":
        raise ValueError(f"rbm pretraining cannot train the Dense at layer {block.core}: an RBM needs a Sigmoid "
                         f"or ReLU after it (its hidden units); use pretrain='autoencoder' for linear layers")
    return dense, ACTIVATION_NAMES[type(after[0])] if after else "identity"
