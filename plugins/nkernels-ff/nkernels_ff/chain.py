"""The model forward-forward trains: LabelInput, then Dense layers each followed by a ReLU."""
from __future__ import annotations

from dataclasses import dataclass

import nkernels as nk
from nkernels.validation import check_int

from .layers import LabelInput

L = nk.layers

EXPECTED = ("ff trains LabelInput(n_classes) followed by Dense + ReLU pairs, the first Dense taking "
            "n_features + n_classes inputs (the label joined to the features); build one with "
            "nkernels_ff.ff_model(n_features, n_classes, widths) or ForwardForward().adapt_model(model, "
            "n_features, n_classes)")


@dataclass(frozen=True)
class Chain:
    """The model read as forward-forward sees it: its number of classes and features, and its Dense layers."""

    n_classes: int
    n_features: int
    denses: tuple[nk.layers.Dense, ...]

    @property
    def widths(self) -> tuple[int, ...]:
        """The number of units of each layer."""
        return tuple(d.out_features for d in self.denses)


def read_chain(model: nk.Sequential) -> Chain:
    """The forward-forward chain of ``model``; a ValueError naming the first layer that does not fit, and
    what fits, otherwise."""
    layers = list(model.layers)
    if not layers or type(layers[0]) is not LabelInput:
        first = type(layers[0]).__name__ if layers else "nothing"
        raise ValueError(f"the model starts with {first}, not LabelInput; {EXPECTED}")
    n_classes = layers[0].n_classes
    rest = layers[1:]
    if not rest:
        raise ValueError(f"the model has no Dense layer after its LabelInput; {EXPECTED}")
    denses: list[nk.layers.Dense] = []
    for i in range(0, len(rest), 2):
        dense, activation = rest[i], rest[i + 1] if i + 1 < len(rest) else None
        if type(dense) is not L.Dense:
            raise ValueError(f"layer {i + 1} is {type(dense).__name__} where a Dense belongs; {EXPECTED}")
        if type(activation) is not L.ReLU:
            found = type(activation).__name__ if activation is not None else "the end of the model"
            raise ValueError(f"layer {i + 2} is {found} where the ReLU after a Dense belongs; {EXPECTED}")
        if denses and dense.in_features != denses[-1].out_features:
            raise ValueError(f"layer {i + 1} takes {dense.in_features} inputs but the layer before gives "
                             f"{denses[-1].out_features}")
        denses.append(dense)
    n_features = denses[0].in_features - n_classes
    if n_features < 1:
        raise ValueError(f"the first Dense takes {denses[0].in_features} inputs, which leaves no room for the "
                         f"features beside the {n_classes} label columns; {EXPECTED}")
    return Chain(n_classes, n_features, tuple(denses))


def ff_model(n_features: int, n_classes: int, widths=(500, 500), seed: int | None = 0,
             dtype=None) -> nk.Sequential:
    """A forward-forward model: ``LabelInput(n_classes)``, then ``Dense(n_features + n_classes,
    widths[0])``, ReLU, ``Dense(widths[0], widths[1])``, ReLU ... (weights drawn from ``seed``)."""
    n_features = check_int(n_features, "n_features")
    n_classes = check_int(n_classes, "n_classes", minimum=2)
    widths = tuple(check_int(w, "each width") for w in widths)
    if not widths:
        raise ValueError("widths must name at least one layer width")
    layers: list = [LabelInput(n_classes)]
    inputs = n_features + n_classes
    for width in widths:
        layers += [L.Dense(inputs, width), L.ReLU()]
        inputs = width
    return nk.Sequential(layers, seed=seed, dtype=dtype)


#: the layers a classifier chain may hold besides its Dense layers, for :func:`hidden_widths`
PASSIVE = (L.Flatten, L.ReLU, L.Sigmoid, L.Tanh, L.SiLU, L.GELU, L.Dropout)


def hidden_widths(model: nk.Sequential) -> tuple[int, ...]:
    """The widths of a classifier chain's hidden Dense layers (all but the last Dense); a ValueError for
    a model that is not a chain of Dense layers and activations, or that has no hidden layer."""
    denses = []
    for i, layer in enumerate(model.layers):
        if type(layer) is L.Dense:
            denses.append(layer)
        elif type(layer) not in PASSIVE:
            raise ValueError(f"ff adapts chains of Dense layers and activations; layer {i} is "
                             f"{type(layer).__name__}")
    if len(denses) < 2:
        raise ValueError(f"ff needs a classifier with at least one hidden Dense layer to take its widths from; "
                         f"the model has {len(denses)} Dense layer(s)")
    return tuple(d.out_features for d in denses[:-1])
