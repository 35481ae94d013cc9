"""``nk.compare``: which rows a comparison has, and one process per row."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Callable, Sequence

import numpy as np

from .results import Comparison, ComparisonRow
from .worker import BOOTSTRAP

DEFAULT_TARGET = 0.93


def compare(model: Any = "mlp", data: Any = "digits", schemes: Sequence[str] | None = None, *,
            extractors: Sequence[str] | str | None = None, epochs: int | None = None, seed: int | None = 0,
            target: float = DEFAULT_TARGET, options: dict[str, dict[str, Any]] | None = None,
            timeout: float | None = None, max_samples: int | None = None,
            on_progress: Callable[[str, ComparisonRow | None], None] | None = None) -> Comparison:
    """Train one architecture with every installed classifier scheme, each in its own process; score them.

    ``model``
        a preset name (``"mlp"``, ``"cnn"`` ... of ``nkernels train``), an ``nk.Sequential`` (every
        scheme starts from its weights) or a function ``(input_shape, n_classes) -> Sequential``.
        Each scheme may reshape it through :meth:`~nkernels.schemes.Scheme.adapt_model`;
    ``data``
        a registered dataset's name (loaded in the form the model wants: flat, images or rows as
        sequences) or a tuple ``(X, y, X_test, y_test)``; ``max_samples`` keeps the first
        ``max_samples`` training and test samples (a quick look);
    ``schemes``
        the scheme names; by default every registered scheme whose ``capabilities.yields`` has
        ``"classifier"``, and those that yield only an ``"extractor"`` (scored as
        ``"NAME + head"``: their :meth:`~nkernels.schemes.Scheme.encoder`'s features with a
        scikit-learn logistic-regression head on standardized features);
    ``extractors``
        registered extractors (``nk.registry.extractors``) to score with the same head, or
        ``"all"``; none by default;
    ``epochs``
        for every scheme; by default each scheme's own, and a preset's for backprop (as in
        ``nkernels train``);
    ``target``
        the held-out accuracy whose time is reported (``time_to_target_s``);
    ``options``
        per row name, its options: ``{"es": {"sigma": 0.05}, "kmeans": {"n_clusters": 200}}``
        (a scheme's constructor options and ``batch_size``);
    ``timeout``
        seconds each row may take (warm-up included) before its process is killed;
    ``on_progress``
        called with ``(name, None)`` when a row starts and ``(name, row)`` when it is done.

    Each row runs in a fresh Python process (the OpenMP runtimes of different schemes never share
    one), first a warm-up of one epoch on a few samples, which compiles the kernels and is
    timed apart (``warmup_s``), then the measured run with ``validation_data=(X_test, y_test)``.
    A scheme that raises, crashes or runs out of time becomes a row with its error. Returns a
    :class:`~nkernels.leaderboard.Comparison`.
    """
    from ..validation import check_int, check_number

    target = check_number(target, "target", low=0, high=1)
    epochs = check_int(epochs, "epochs", allow_none=True)
    max_samples = check_int(max_samples, "max_samples", allow_none=True)
    if timeout is not None:
        timeout = check_number(timeout, "timeout", low=0, low_open=True)
    rows = plan(schemes, extractors)
    options = _check_options(options, [name for name, _ in rows])
    X, y, X_test, y_test, common, label = _prepare(model, data, seed, max_samples)
    preset_defaults = _preset_defaults(model)

    results = []
    with tempfile.TemporaryDirectory(prefix="nkernels-compare-") as folder:
        from ..export.io import save

        paths = {"data_path": os.path.join(folder, "data.npz"), "model_path": os.path.join(folder, "model.nkm")}
        np.savez(paths["data_path"], X=X, y=y, X_test=X_test, y_test=y_test)
        save(common, paths["model_path"])
        for index, (name, kind) in enumerate(rows):
            row_options = dict(options.get(name, {}))
            row_epochs = epochs
            if name == "backprop" and kind == "scheme" and preset_defaults:
                from ..cli.presets import training_options

                row_options.update(training_options(preset_defaults, row_options))
                row_epochs = preset_defaults.get("epochs") if epochs is None else epochs
            job = {"name": name, "kind": kind, "options": {k: v for k, v in row_options.items() if v is not None},
                   "epochs": row_epochs, "seed": seed, "target": target, "sys_path": list(sys.path), **paths}
            if on_progress is not None:
                on_progress(_row_name(name, kind), None)
            row = _run_row(job, os.path.join(folder, f"row{index}"), timeout)
            results.append(row)
            if on_progress is not None:
                on_progress(row.name, row)
    return Comparison(model=label, data=data if isinstance(data, str) else "(arrays)", target=target, seed=seed,
                      train_samples=len(X), test_samples=len(X_test), rows=results)


def plan(schemes: Sequence[str] | None = None, extractors: Sequence[str] | str | None = None) -> list[tuple[str, str]]:
    """The rows ``(name, kind)`` of a comparison: the schemes (by default every registered one that
    yields a classifier or an extractor), then the extractors (none by default, ``"all"`` for all)."""
    from .. import registry

    if isinstance(schemes, str):
        schemes = [schemes]
    if schemes is None:
        names = [name for name in registry.schemes if _kind(registry.schemes[name]) is not None]
    else:
        names = list(schemes)
        unknown = [name for name in names if name not in registry.schemes]
        if unknown:
            raise ValueError(f"unknown scheme(s) {unknown}; the installed schemes are "
                             f"{', '.join(sorted(registry.schemes))}")
    rows: list[tuple[str, str]] = []
    for name in dict.fromkeys(names):
        kind = _kind(registry.schemes[name])
        if kind is None:
            yields = ", ".join(registry.schemes[name].capabilities.yields)
            raise ValueError(f"scheme {name!r} yields {yields}: neither a classifier nor an extractor to score; "
                             f"leave it out")
        rows.append((name, kind))
    if extractors == "all":
        extractors = sorted(registry.extractors)
    elif isinstance(extractors, str):
        extractors = [extractors]
    unknown = [name for name in extractors or () if name not in registry.extractors]
    if unknown:
        raise ValueError(f"unknown extractor(s) {unknown}; the installed extractors are "
                         f"{', '.join(sorted(registry.extractors)) or 'none'}")
    rows += [(name, "extractor + head") for name in dict.fromkeys(extractors or ())]
    if not rows:
        raise ValueError("nothing to compare: no scheme or extractor was chosen")
    return rows


def _kind(scheme: Any) -> str | None:
    yields = scheme.capabilities.yields
    return "scheme" if "classifier" in yields else "scheme + head" if "extractor" in yields else None


def _row_name(name: str, kind: str) -> str:
    return name if kind == "scheme" else f"{name} + head"


def _check_options(options: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    if options is None:
        return {}
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise TypeError(f"options must be a dict from a row's name to a dict of its options, got {options!r}")
    unused = sorted(set(options) - set(names))
    if unused:
        raise ValueError(f"options for {unused}, which are not in this comparison (its rows: {', '.join(names)}); "
                         f"they would have no effect")
    from ..training import FIT_ARGUMENTS

    for name, given in options.items():
        fixed = sorted(set(given) & (set(FIT_ARGUMENTS) - {"batch_size"}))
        if fixed:
            raise ValueError(f"options {fixed} for {name!r}: the comparison sets them itself (epochs and seed for "
                             f"every scheme, its own callbacks and validation data); drop them")
    return options


def _prepare(model: Any, data: Any, seed: int | None, max_samples: int | None):
    """The data in the model's input form, the common model, and the model's label."""
    from .. import datasets
    from ..cli import presets
    from ..model import Sequential

    if isinstance(model, str):
        if model not in presets.PRESETS:  # before any data is loaded
            raise ValueError(f"unknown model preset {model!r}; available: {', '.join(sorted(presets.PRESETS))}, "
                             f"an nk.Sequential or a function (input_shape, n_classes) -> Sequential")
        form = presets.input_form(model)
    elif isinstance(model, Sequential):
        form = presets.config_input_form(model.get_config())
    elif callable(model):
        form = "flat"
    else:
        raise TypeError(f"model must be a preset name ({', '.join(sorted(presets.PRESETS))}), an nk.Sequential or "
                        f"a function (input_shape, n_classes) -> Sequential; got {model!r}")
    if isinstance(data, str):
        X, y, X_test, y_test = datasets.load(data, flat=form == "flat")
        X, X_test = presets.prepare_inputs(form, X), presets.prepare_inputs(form, X_test)
    elif isinstance(data, tuple) and len(data) == 4:
        X, y, X_test, y_test = (np.asarray(a) for a in data)
    else:
        raise TypeError("data must be a registered dataset's name or a tuple (X, y, X_test, y_test)")
    if max_samples is not None:
        X, y, X_test, y_test = X[:max_samples], y[:max_samples], X_test[:max_samples], y_test[:max_samples]
    if np.asarray(y).dtype.kind not in "iu":
        raise ValueError("a comparison scores classifiers: y must hold integer class labels")
    n_classes = int(max(y.max(), y_test.max())) + 1
    if isinstance(model, str):
        return X, y, X_test, y_test, presets.build(model, X.shape[1:], n_classes, seed=seed), model
    if isinstance(model, Sequential):
        return X, y, X_test, y_test, model, "(a Sequential)"
    built = model(X.shape[1:], n_classes)
    if not isinstance(built, Sequential):
        raise TypeError(f"the model function must return an nk.Sequential, got {type(built).__name__}")
    return X, y, X_test, y_test, built, getattr(model, "__name__", "(a function)")


def _preset_defaults(model: Any) -> dict[str, Any]:
    """A preset's epochs, learning rate and schedule, which backprop trains with (as ``nkernels train`` does)."""
    from ..cli import presets

    return presets.TRAINING_DEFAULTS.get(model, {}) if isinstance(model, str) else {}


def _run_row(job: dict[str, Any], folder: str, timeout: float | None) -> ComparisonRow:
    """Run one row in a fresh Python process and read its result (an error row if it left none)."""
    os.makedirs(folder)
    job_path = os.path.join(folder, "job.json")
    with open(job_path, "w") as f:
        json.dump(job, f)
    row = ComparisonRow(name=_row_name(job["name"], job["kind"]), kind=job["kind"])
    with open(os.path.join(folder, "output.txt"), "w+") as output:
        process = subprocess.Popen([sys.executable, "-c", BOOTSTRAP, job_path], stdout=output,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            row.status, row.error = "timeout", f"no result within the timeout of {timeout:g} s; the process was killed"
            return row
        output.seek(0)
        last_words = [line for line in output.read().splitlines() if line.strip()][-1:]
    result_path = os.path.join(folder, "result.json")
    if not os.path.exists(result_path):
        row.status = "error"
        row.error = f"the process ended with exit code {code} and no result" + \
            (f": {last_words[0].strip()}" if last_words else "")
        return row
    with open(result_path) as f:
        result = json.load(f)
    for key, value in result.items():
        setattr(row, key, value)
    return row
