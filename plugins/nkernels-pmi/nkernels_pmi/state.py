"""The state protocol of ``nk.layers.Frozen`` for this plugin's extractors, in one place.

``get_config()`` gives the constructor arguments as JSON values and ``from_config`` rebuilds an
unfitted extractor from them; ``state_arrays()`` gives the fitted arrays ``transform`` computes
with (not copies) and ``load_state_arrays(arrays)`` adopts such arrays without copying, so that
``nk.load`` can write a file's values into them in place.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from nkernels.errors import NotFittedError


class FittedState:
    """Base class: the config given at construction and the fitted state as named arrays.

    A subclass sets ``self._config`` (JSON values) in ``__init__``, ends ``fit`` with
    :meth:`_adopt` and lists in :meth:`_state_names` the names a fitted state must have.
    """

    _config: dict[str, Any]
    _state: dict[str, np.ndarray] | None = None

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (JSON values) that rebuild this extractor, unfitted."""
        return _jsonable(self._config)

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        """A new, unfitted extractor from :meth:`get_config`'s output."""
        return cls(**config)

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`load_state_arrays`) has run."""
        return self._state is not None

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The fitted state: the arrays ``transform`` computes with (not copies)."""
        return dict(self._check_fitted())

    def load_state_arrays(self, arrays: dict[str, np.ndarray]):
        """Adopt ``arrays`` (as from :meth:`state_arrays`) as the fitted state, without copying; returns self."""
        expected = set(self._state_names())
        missing, unexpected = sorted(expected - set(arrays)), sorted(set(arrays) - expected)
        if missing or unexpected:
            raise ValueError(f"{type(self).__name__} state arrays do not match its config: missing {missing}, "
                             f"unexpected {unexpected}")
        for name, value in arrays.items():
            if not isinstance(value, np.ndarray):
                raise TypeError(f"state array {name!r} must be a NumPy array, got {type(value).__name__}")
        self._adopt(arrays)
        return self

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """``fit(X, y).transform(X)``."""
        return self.fit(X, y).transform(X)  # type: ignore[attr-defined]

    def _state_names(self) -> list[str]:
        raise NotImplementedError

    def _adopt(self, arrays: dict[str, np.ndarray]) -> None:
        self._state = dict(arrays)

    def _check_fitted(self) -> dict[str, np.ndarray]:
        """The fitted state; NotFittedError before ``fit``."""
        if self._state is None:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) first")
        return self._state

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._config.items())})"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
