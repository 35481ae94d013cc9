"""The ``stacked-pmi`` extractor: PMI-factorization stages, each learning on the features of the one below."""
from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from nkernels.validation import check_bool, check_seed

from .pmi import PMIFactorization
from .state import FittedState

#: the options a stage takes (all of PMIFactorization's but the seed, which the stack hands down)
STAGE_OPTIONS = tuple(p for p in inspect.signature(PMIFactorization.__init__).parameters if p not in ("self", "seed"))


class StackedPMI(FittedState):
    """Stacked matrix factorization over matrices of pairwise mutual information; registered as ``"stacked-pmi"``.

    ``stages`` lists the stages bottom first, each an int (its ``n_components``) or a dict of
    :class:`PMIFactorization` options (``n_components`` and any other but ``seed``); ``options``
    are the options of every stage (a stage's dict overrides them). Stage 0 learns on the inputs,
    stage s on the features of stage s - 1, so each stage below must give non-negative features
    (``nonlinearity="relu-pm"`` or ``"relu"``). Stage s gets the seed ``seed + s``.

    The features are every stage's, concatenated bottom first (``concat=True``, the default), or
    the top stage's alone. Each stage is a standalone extractor (``stages_``); with
    ``concat=False`` the stack computes what ``nk.Sequential([nk.layers.Frozen(stage) for stage in
    stack.stages_])`` computes. The fitted state is every stage's, named ``stage{s}.{name}``.
    """

    def __init__(self, stages: Any = (64, 64), concat: bool = True, seed: int | None = None, **options: Any):
        unknown = sorted(set(options) - set(STAGE_OPTIONS))
        if unknown:
            raise ValueError(f"unknown stage options {unknown}; known: {', '.join(STAGE_OPTIONS)}")
        if not isinstance(stages, (list, tuple)) or not stages:
            raise ValueError(f"stages must be a non-empty list of ints (n_components) or dicts of stage options, "
                             f"got {stages!r}")
        self._config = {"stages": list(stages), "concat": concat, "seed": seed, **options}
        self.concat = check_bool(concat, "concat")
        self.seed = check_seed(seed)
        self.stages_: list[PMIFactorization] = []
        for s, stage in enumerate(stages):
            if isinstance(stage, dict):
                bad = sorted(set(stage) - set(STAGE_OPTIONS))
                if bad:
                    raise ValueError(f"stage {s} has unknown keys {bad}; known: {', '.join(STAGE_OPTIONS)}")
                stage_options = {**options, **stage}
            else:
                stage_options = {**options, "n_components": stage}
            try:
                self.stages_.append(PMIFactorization(**stage_options, seed=None if seed is None else seed + s))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"stage {s}: {exc}") from None
        for s, stage in enumerate(self.stages_[:-1]):
            if stage.nonlinearity == "linear":
                raise ValueError(f"stage {s} has nonlinearity='linear': its features can be negative, and stage "
                                 f"{s + 1} learns co-activations of non-negative features; use 'relu-pm' or 'relu'")

    @property
    def n_features_out(self) -> int:
        """The number of features ``transform`` gives."""
        sizes = [stage.n_features_out for stage in self.stages_]
        return sum(sizes) if self.concat else sizes[-1]

    def fit(self, X: Any, y: Any = None) -> "StackedPMI":
        """Fit the stages bottom up on the rows of non-negative activations ``X`` (n, d); returns self."""
        features = X
        for s, stage in enumerate(self.stages_):
            try:
                stage.fit(features)
            except ValueError as exc:
                raise ValueError(f"stage {s}: {exc}") from None
            if s < len(self.stages_) - 1:
                features = stage.transform(features)
        self._adopt({f"stage{s}.{k}": v for s, stage in enumerate(self.stages_) for k, v in stage.state_arrays().items()})
        return self

    def transform(self, X: Any) -> np.ndarray:
        """The features of the rows of ``X``: every stage's concatenated (``concat``), or the top stage's."""
        self._check_fitted()
        parts, features = [], X
        for stage in self.stages_:
            features = stage.transform(features)
            parts.append(features)
        return np.concatenate(parts, axis=1) if self.concat else parts[-1]

    def _state_names(self) -> list[str]:
        return [f"stage{s}.{k}" for s, stage in enumerate(self.stages_) for k in stage._state_names()]

    def _adopt(self, arrays: dict[str, np.ndarray]) -> None:
        """The stack's state, and each stage's: the same arrays, so that writing into one writes into both."""
        super()._adopt(arrays)
        for s, stage in enumerate(self.stages_):
            prefix = f"stage{s}."
            stage._adopt({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
