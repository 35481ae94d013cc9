"""How good a generator's samples are, measured against real data with a classifier trained on it."""
from __future__ import annotations

from typing import Any

import numpy as np

from nkernels.validation import check_features, check_same_length


def quality(samples: Any, X_train: Any, y_train: Any, X_test: Any, y_test: Any) -> dict[str, Any]:
    """Class coverage, confidence and diversity of ``samples`` (one per row, or images flattened).

    A scikit-learn ``LogisticRegression`` trained on the real training pixels (``X_train``,
    ``y_train``) names each sample's class. Returns:

    ``classes``
        how many classes the samples are predicted as (of ``n_classes``);
    ``confidence``
        the mean top-class probability of the samples (``real_confidence``: of ``X_test``);
    ``diversity``
        the smallest, over the predicted classes with two samples or more, of the ratio
        between the mean pairwise distance of the samples of that class and that of the real
        test samples of the class (``class_diversity``: each class's ratio). Few modes give
        a small ratio;
    ``novelty``
        the median distance from a sample to its nearest training row, over the same figure
        for the real test rows. Copies of training rows give a small ratio.

    Distances are Euclidean, on the rows as given.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import pairwise_distances

    samples = _rows(samples, "samples")
    X_train, X_test = _rows(X_train, "X_train"), _rows(X_test, "X_test")
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    check_same_length(X_train, y_train)
    check_same_length(X_test, y_test)
    if not samples.shape[1] == X_train.shape[1] == X_test.shape[1]:
        raise ValueError(f"samples, X_train and X_test must have the same number of features, got "
                         f"{samples.shape[1]}, {X_train.shape[1]} and {X_test.shape[1]}")
    classifier = LogisticRegression(max_iter=5000).fit(X_train, y_train)
    probabilities = classifier.predict_proba(samples)
    predicted = classifier.classes_[probabilities.argmax(axis=1)]

    def mean_pairwise(rows: np.ndarray) -> float:
        distances = pairwise_distances(rows)
        return float(distances[np.triu_indices(len(rows), 1)].mean())

    class_diversity = {}
    for label in np.unique(predicted):
        mine, real = samples[predicted == label], X_test[y_test == label]
        if len(mine) >= 2 and len(real) >= 2:
            class_diversity[label.item()] = mean_pairwise(mine) / mean_pairwise(real)

    def median_nearest(rows: np.ndarray) -> float:
        return float(np.median(pairwise_distances(rows, X_train).min(axis=1)))

    return {
        "classes": int(len(np.unique(predicted))),
        "n_classes": int(len(classifier.classes_)),
        "class_counts": {label.item(): int((predicted == label).sum()) for label in classifier.classes_},
        "confidence": float(probabilities.max(axis=1).mean()),
        "real_confidence": float(classifier.predict_proba(X_test).max(axis=1).mean()),
        "diversity": min(class_diversity.values()) if class_diversity else 0.0,
        "class_diversity": class_diversity,
        "novelty": median_nearest(samples) / median_nearest(X_test),
    }


def _rows(X: Any, name: str) -> np.ndarray:
    X = check_features(X, name, dtype=np.float64)
    return X.reshape(len(X), -1)
