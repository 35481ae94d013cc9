"""The Scheme base class: a way of training a model."""
from __future__ import annotations

from typing import Any


class Scheme:
    """Base class of training schemes (backprop, greedy layer-wise, ADMM, ES, feedback alignment ...).

    The constructor takes the scheme's own options. :meth:`fit` trains a model in place and
    returns a :class:`~nkernels.History` with one value per epoch for each metric. A scheme
    reports progress through a :class:`~nkernels.callbacks.CallbackList`, which also calls the
    plugins' observer hooks.
    """

    def fit(self, model: Any, X: Any, y: Any = None, *, epochs: int = 1, batch_size: int = 32,
            seed: int | None = None, callbacks: Any = None, validation_data: Any = None):
        """Train ``model`` on ``X`` (and ``y``); returns a History."""
        raise NotImplementedError(f"{type(self).__name__} must implement fit()")
