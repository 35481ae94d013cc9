"""History: what ``fit`` returns, a mapping from metric name to one value per epoch."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


class History(Mapping):
    """Per-epoch metrics: ``history["loss"]`` is a list with one value per epoch.

    Schemes call :meth:`append` once per epoch with that epoch's metrics.
    """

    def __init__(self, metrics: Mapping[str, list] | None = None):
        self._metrics: dict[str, list] = {k: list(v) for k, v in (metrics or {}).items()}
        self.epochs = max((len(v) for v in self._metrics.values()), default=0)

    def append(self, logs: Mapping[str, Any] | None = None, **metrics: Any) -> None:
        """Record one epoch's metrics; a metric missing from earlier epochs is padded with None."""
        values = dict(logs or {}, **metrics)
        for key, value in values.items():
            self._metrics.setdefault(key, [None] * self.epochs).append(value)
        self.epochs += 1
        for series in self._metrics.values():
            if len(series) < self.epochs:
                series.append(None)

    def last(self) -> dict[str, Any]:
        """The metrics of the latest epoch."""
        return {k: v[-1] for k, v in self._metrics.items() if v}

    def __getitem__(self, key: str) -> list:
        return self._metrics[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._metrics)

    def __len__(self) -> int:
        return len(self._metrics)

    def as_dict(self) -> dict[str, list]:
        """A plain ``dict`` copy."""
        return {k: list(v) for k, v in self._metrics.items()}

    def __repr__(self) -> str:
        return f"History({self.as_dict()!r})"
