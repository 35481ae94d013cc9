"""One row of a comparison, inside its own process: warm up, train, score, and write the result.

The parent (:mod:`nkernels.leaderboard.runner`) writes the data (``.npz``), the common model
(an ``nk.save`` file) and a ``job.json`` that names them, and starts ``python -c BOOTSTRAP
job.json``; this module then runs with the parent's ``sys.path`` and writes ``result.json``
beside the job.
Each row has a process of its own so that the OpenMP runtimes and threading layers different
schemes load never meet, and a scheme that crashes the interpreter only loses its own row.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any

import numpy as np

#: the samples of the warm-up run, which compiles the kernels before the measured run
WARMUP_SAMPLES = 128
#: the command line's program: puts the parent's sys.path in place, then runs the job
BOOTSTRAP = ("import json, sys; job = json.load(open(sys.argv[1])); sys.path[:] = job['sys_path']; "
             "from nkernels.leaderboard.worker import main; main(sys.argv[1])")


def main(job_path: str) -> None:
    """Run the job in ``job_path`` and write ``result.json`` beside it (an error row if it raises)."""
    with open(job_path) as f:
        job = json.load(f)
    folder = os.path.dirname(job_path)
    try:
        result = run_job(job)
    except BaseException as exc:  # the row reports it; the parent goes on with the next one
        result = {"status": "error", "error": f"{type(exc).__name__}: {' '.join(str(exc).split())}".rstrip(": "),
                  "traceback": traceback.format_exc()}
    result["peak_memory_mib"] = peak_memory_mib()
    with open(os.path.join(folder, "result.json"), "w") as f:
        json.dump(result, f)


def peak_memory_mib() -> float | None:
    """This process's peak resident memory in MiB (``ru_maxrss``), None without the ``resource`` module."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB elsewhere


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Train and score one row; returns its figures as JSON values."""
    from ..export.io import load

    with np.load(job["data_path"]) as data:
        X, y, X_test, y_test = (data[k] for k in ("X", "y", "X_test", "y_test"))
    if job["kind"] == "extractor + head":
        return _extractor_row(job, X, y, X_test, y_test)
    return _scheme_row(job, load(job["model_path"]), X, y, X_test, y_test)


def _scheme_row(job: dict[str, Any], model: Any, X: np.ndarray, y: np.ndarray, X_test: np.ndarray,
                y_test: np.ndarray) -> dict[str, Any]:
    from ..callbacks import Callback
    from ..training import _resolve_scheme

    options = dict(job["options"])
    fit_options = {"batch_size": options.pop("batch_size")} if "batch_size" in options else {}
    n_features, n_classes = int(np.prod(X.shape[1:])), int(max(y.max(), y_test.max())) + 1
    with_head = job["kind"] == "scheme + head"
    scheme = _resolve_scheme(job["name"], options)
    # the features of a scheme + head are learnt without labels unless the scheme needs them
    needs = scheme.capabilities.labels
    labels = None if needs == "none" or (with_head and needs == "optional") else y
    validation = None if with_head else (X_test, y_test)

    m = min(len(X), WARMUP_SAMPLES)
    warm = _resolve_scheme(job["name"], options)
    warm_model = warm.adapt_model(model.copy(), n_features, n_classes)
    started = time.perf_counter()
    warm.fit(warm_model, X[:m], None if labels is None else labels[:m], epochs=1, seed=job["seed"],
             validation_data=None if validation is None else (X_test[:m], y_test[:m]), **fit_options)
    warmup_s = time.perf_counter() - started

    model = scheme.adapt_model(model, n_features, n_classes)
    curve: list[list[float]] = []

    class Clock(Callback):
        """The held-out accuracy and the time since the measured run began, after each epoch."""

        def on_epoch_end(self, epoch, logs):
            if logs.get("val_accuracy") is not None:
                curve.append([time.perf_counter() - started, float(logs["val_accuracy"])])

    started = time.perf_counter()
    history = scheme.fit(model, X, labels, epochs=job["epochs"], seed=job["seed"], callbacks=[Clock()],
                         validation_data=validation, **fit_options)
    if with_head:
        features = scheme.encoder(model)
        accuracy = head_accuracy(features.transform(X), y, features.transform(X_test), y_test, job["seed"])
        curve.append([time.perf_counter() - started, accuracy])
    elif not curve:
        raise ValueError(f"scheme {job['name']!r} reported no val_accuracy with validation_data=(X_test, y_test); "
                         f"a classifier scheme reports it through nk.evaluate or its validation_metrics")
    return _figures(curve, time.perf_counter() - started, warmup_s, history.epochs, job["target"])


def _extractor_row(job: dict[str, Any], X: np.ndarray, y: np.ndarray, X_test: np.ndarray,
                   y_test: np.ndarray) -> dict[str, Any]:
    import inspect

    from .. import registry

    cls = registry.extractors[job["name"]]
    options = dict(job["options"])
    if "seed" in inspect.signature(cls).parameters and "seed" not in options:
        options["seed"] = job["seed"]
    m = min(len(X), WARMUP_SAMPLES)
    started = time.perf_counter()
    cls(**options).fit(X[:m])
    warmup_s = time.perf_counter() - started
    started = time.perf_counter()
    extractor = cls(**options).fit(X)
    accuracy = head_accuracy(extractor.transform(X), y, extractor.transform(X_test), y_test, job["seed"])
    elapsed = time.perf_counter() - started
    return _figures([[elapsed, accuracy]], elapsed, warmup_s, None, job["target"])


def head_accuracy(F: np.ndarray, y: np.ndarray, F_test: np.ndarray, y_test: np.ndarray, seed: int | None) -> float:
    """The held-out accuracy of scikit-learn's LogisticRegression on standardized features ``F``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    F, F_test = np.asarray(F).reshape(len(F), -1), np.asarray(F_test).reshape(len(F_test), -1)
    head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    return float(head.fit(F, y).score(F_test, y_test))


def _figures(curve: list[list[float]], train_s: float, warmup_s: float, epochs: int | None,
             target: float) -> dict[str, Any]:
    accuracies = [accuracy for _, accuracy in curve]
    reached = [seconds for seconds, accuracy in curve if accuracy >= target]
    return {"status": "ok", "accuracy": accuracies[-1], "best_accuracy": max(accuracies), "epochs": epochs,
            "warmup_s": warmup_s, "train_s": train_s, "time_to_target_s": reached[0] if reached else None,
            "curve": curve}
