"""The digits figures of the README: held-out accuracy of a logistic-regression head on PMI features, on raw
pixels, and on random projections of the same width (``python -m nkernels_pmi`` prints them)."""
from __future__ import annotations

from typing import Any

import numpy as np

#: the seeds of the random-projection baselines
BASELINE_SEEDS = (0, 1, 2)


def head_accuracy(features: np.ndarray, y: np.ndarray, test_features: np.ndarray, y_test: np.ndarray) -> float:
    """Held-out accuracy of scikit-learn's LogisticRegression (its defaults, up to 5,000 iterations) on ``features``."""
    from sklearn.linear_model import LogisticRegression

    return float(LogisticRegression(max_iter=5000).fit(features, y).score(test_features, y_test))


def extractor_accuracy(extractor: Any, data: tuple) -> float:
    """Fit ``extractor`` on the training rows of ``data`` (X, y, X_test, y_test) and score the head on its features."""
    X, y, X_test, y_test = data
    extractor.fit(X)
    return head_accuracy(extractor.transform(X), y, extractor.transform(X_test), y_test)


def digits_figures(options: dict | None = None, seeds: tuple[int, ...] = BASELINE_SEEDS) -> dict[str, Any]:
    """The figures, for ``StackedPMI(**options)`` (its defaults when None):

    ``pmi`` (the stack's features), ``raw`` (the 64 pixels), ``random_stack`` (the same stack with
    ``factorization="random"``, one accuracy per seed) and ``random_single`` (one stage of random
    directions with as many features as the stack, one per seed), plus ``width`` and ``fit_seconds``.
    """
    import time

    import nkernels as nk

    from .pmi import PMIFactorization
    from .stacked import StackedPMI

    data = nk.datasets.load("digits")
    options = dict(options or {})
    stack = StackedPMI(**options)
    start = time.perf_counter()
    stack.fit(data[0])
    fit_seconds = time.perf_counter() - start
    pmi = head_accuracy(stack.transform(data[0]), data[1], stack.transform(data[2]), data[3])
    width = stack.n_features_out
    random_stack = [extractor_accuracy(StackedPMI(**{**options, "factorization": "random", "seed": s}), data)
                    for s in seeds]
    random_single = [extractor_accuracy(PMIFactorization(width // 2, factorization="random", seed=s), data)
                     for s in seeds]
    raw = head_accuracy(data[0], data[1], data[2], data[3])
    return {"pmi": pmi, "raw": raw, "random_stack": random_stack, "random_single": random_single, "width": width,
            "fit_seconds": fit_seconds}
