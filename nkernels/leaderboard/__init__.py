"""The scheme leaderboard: ``nk.compare`` and ``nkernels compare``.

:func:`compare` trains one architecture with every installed scheme that yields a classifier (or
those named), each in a process of its own, on one dataset, and returns a :class:`Comparison`:
per scheme the held-out accuracy (last epoch and best), the training time with the compilation
warm-up apart, the time to a target accuracy, the peak memory of its process and the accuracy
curve over time. Schemes that yield an extractor, and registered extractors on request, are
scored by a logistic-regression head on their features. Plugin schemes take part as soon as
they are installed.
"""
from .results import Comparison, ComparisonRow
from .runner import DEFAULT_TARGET, compare, plan

__all__ = ["compare", "plan", "Comparison", "ComparisonRow", "DEFAULT_TARGET"]
