"""Built-in model presets for the command line: ``mlp`` (and more as layer types land)."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import layers as L
from .model import Sequential


def mlp(input_shape: tuple[int, ...], n_classes: int, hidden: tuple[int, ...] = (128, 128),
        seed: int | None = 0) -> Sequential:
    """A ReLU MLP on flattened inputs: ``in - hidden... - n_classes``."""
    features = int(np.prod(input_shape))
    layers: list = [L.Flatten()] if len(input_shape) > 1 else []
    for width in hidden:
        layers += [L.Dense(features, width), L.ReLU()]
        features = width
    layers.append(L.Dense(features, n_classes))
    return Sequential(layers, seed=seed)


PRESETS: dict[str, Callable[..., Sequential]] = {"mlp": mlp}
#: whether each preset wants flat vectors (True) or images/sequences (False) from the dataset
PRESET_FLAT = {"mlp": True}


def build(name: str, input_shape: tuple[int, ...], n_classes: int, seed: int | None = 0, **options: Any) -> Sequential:
    """A preset model by name for samples of ``input_shape`` (without the batch axis)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; available: {', '.join(sorted(PRESETS))}, "
                         f"or a JSON spec file")
    return PRESETS[name](tuple(input_shape), n_classes, seed=seed, **options)
