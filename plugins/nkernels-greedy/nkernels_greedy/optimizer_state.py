"""An optimizer's state as named arrays, for the checkpoints of a greedy stage, and back in place.

A stage's optimizer also updates parameters the model does not have (an auxiliary head, an
autoencoder's decoder), under names of the stage's own, so the scheme saves its state itself
rather than as the model file's optimizer state (which must name the model's parameters).
"""
from __future__ import annotations

from typing import Any

import numpy as np


def optimizer_arrays(optimizer: Any) -> dict[str, np.ndarray]:
    """An optimizer's state arrays as ``optimizer.<param>.<state>`` (not copied)."""
    return {f"optimizer.{key}.{name}": array for key, named in optimizer.state.items()
            for name, array in named.items()}


def load_optimizer(optimizer: Any, params: dict[str, np.ndarray], steps: int, arrays: dict[str, Any]) -> None:
    """Put back the step count and what :func:`optimizer_arrays` gave for ``params``, in place
    (trainers hold the arrays); state it did not hold starts at zero, as a fresh optimizer's does."""
    optimizer.steps = int(steps)
    for key, param in params.items():
        for name, array in optimizer.state_for(key, param).items():
            saved = arrays.get(f"optimizer.{key}.{name}")
            array[...] = 0 if saved is None else saved
