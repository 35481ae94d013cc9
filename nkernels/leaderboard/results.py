"""What a comparison returns: one :class:`ComparisonRow` per scheme or extractor, in a :class:`Comparison`."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

#: a row's ``kind``: a scheme's classifier, a scheme's features with a head, a registered extractor with a head
KINDS = ("scheme", "scheme + head", "extractor + head")
#: a row's ``status``
STATUSES = ("ok", "error", "timeout")


@dataclass
class ComparisonRow:
    """One line of the leaderboard.

    ``name``
        the scheme (``"backprop"``), or the features and their head (``"kmeans + head"``);
    ``kind``
        ``"scheme"`` (the trained classifier is scored), ``"scheme + head"`` (a scheme that
        yields an extractor: its encoder's features with a logistic-regression head) or
        ``"extractor + head"`` (a registered extractor, ``fit(X)``/``transform(X)``, with the head);
    ``status``, ``error``, ``traceback``
        ``"ok"``, or ``"error"``/``"timeout"`` with the message (the process's last words when it
        died without one), and the traceback of an exception the scheme raised;
    ``accuracy``, ``best_accuracy``
        the held-out accuracy after the last epoch, and the best over the epochs;
    ``epochs``
        the epochs trained (None for an extractor);
    ``warmup_s``
        the wall time of the warm-up run (one epoch on a few samples, which compiles the kernels);
    ``train_s``
        the wall time of the measured run, after the warm-up (validation after each epoch included);
    ``time_to_target_s``
        the time from the start of the measured run to the first epoch whose held-out accuracy
        reached the target, or None when none did;
    ``peak_memory_mib``
        the peak resident memory of the row's process (``ru_maxrss``: the interpreter, the
        compiled code and the data included; None where the platform has no ``resource`` module);
    ``curve``
        ``[seconds, held-out accuracy]`` at the end of each epoch that reported an accuracy.
    """

    name: str
    kind: str
    status: str = "ok"
    error: str | None = None
    accuracy: float | None = None
    best_accuracy: float | None = None
    epochs: int | None = None
    warmup_s: float | None = None
    train_s: float | None = None
    time_to_target_s: float | None = None
    peak_memory_mib: float | None = None
    curve: list[list[float]] = field(default_factory=list)
    traceback: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the row trained and was scored."""
        return self.status == "ok"


@dataclass
class Comparison:
    """The result of :func:`nkernels.compare`: the settings and one row per scheme or extractor, in
    the order they ran. ``as_dict()`` (and ``save_json``) write it as JSON."""

    model: str
    data: str
    target: float
    seed: int | None
    train_samples: int
    test_samples: int
    rows: list[ComparisonRow]

    def __getitem__(self, name: str) -> ComparisonRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no row {name!r}; the rows are {[row.name for row in self.rows]}")

    def names(self) -> list[str]:
        """The rows' names, in order."""
        return [row.name for row in self.rows]

    def ranked(self) -> list[ComparisonRow]:
        """The rows by held-out accuracy after the last epoch, best first; failed rows last."""
        return sorted(self.rows, key=lambda row: (not row.ok, -(row.accuracy or 0.0)))

    def as_dict(self) -> dict[str, Any]:
        """The comparison as JSON values."""
        return asdict(self)

    def save_json(self, path: str | os.PathLike) -> None:
        """Write :meth:`as_dict` to ``path`` (parent folders are created)."""
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            json.dump(self.as_dict(), f, indent=2)
            f.write("\n")
