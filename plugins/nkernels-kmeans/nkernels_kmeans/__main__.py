"""``python -m nkernels_kmeans``: fit an extractor on a dataset, train a linear head on it in one model, report.

Example::

    python -m nkernels_kmeans --extractor conv-kmeans --option n_clusters=400 --save conv.safetensors

The model is ``Sequential([Frozen(extractor), Dense(features, classes)])``, trained with
``nk.train`` (softmax cross-entropy: a logistic-regression head) and evaluated on the held-out
split; ``--save`` writes it with ``nk.save`` (``nk.load`` reads it back, extractor included).
The defaults are the settings of the README's digits figures.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

#: extractor -> (its default options, head training defaults)
DEFAULTS = {
    "kmeans": ({"n_clusters": 200, "seed": 0}, {"epochs": 40, "batch_size": 256, "lr": 3e-2}),
    "conv-kmeans": ({"n_clusters": 200, "patch_size": 4, "n_patches": 20_000, "max_iter": 30, "standardize": True,
                     "seed": 0}, {"epochs": 30, "batch_size": 128, "lr": 3e-3}),
    "stacked-kmeans": ({"stages": [{"n_clusters": 64, "patch_size": 3}, {"n_clusters": 128, "patch_size": 2}],
                        "n_patches": 20_000, "max_iter": 30, "standardize": True, "seed": 0},
                       {"epochs": 30, "batch_size": 128, "lr": 3e-3}),
}


def parse_option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE read as JSON (a bare word stays a string)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--option expects KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    import nkernels as nk

    parser = argparse.ArgumentParser(prog="python -m nkernels_kmeans", description=__doc__.split("\n")[0])
    parser.add_argument("--extractor", default="kmeans", choices=sorted(DEFAULTS))
    parser.add_argument("--data", default="digits", help="a registered dataset (default: digits)")
    parser.add_argument("--option", action="append", default=[], type=parse_option, metavar="KEY=VALUE",
                        help="an extractor option (VALUE as JSON), e.g. n_clusters=400; repeatable")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--seed", type=int, default=0, help="the head's seed")
    parser.add_argument("--save", metavar="PATH", help="save the whole model (extractor and head) here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    options, head = DEFAULTS[args.extractor]
    options = {**options, **dict(args.option)}
    head = {"epochs": args.epochs or head["epochs"], "batch_size": args.batch_size or head["batch_size"],
            "lr": args.lr or head["lr"]}
    try:
        extractor = nk.registry.extractors[args.extractor](**options)
        X, y, X_test, y_test = nk.datasets.load(args.data, flat=args.extractor == "kmeans")
        start = time.perf_counter()
        extractor.fit(X)
        fitted = time.perf_counter() - start
        n_features = extractor.transform(X[:1]).shape[1]
        L = nk.layers
        model = nk.Sequential([L.Frozen(extractor), L.Dense(n_features, int(y.max()) + 1)], seed=args.seed)
        start = time.perf_counter()
        nk.train(model, X, y, optimizer=args.optimizer, seed=args.seed, progress=not args.quiet, **head)
        trained = time.perf_counter() - start
        result = nk.evaluate(model, X_test, y_test)
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.extractor} on {args.data}: {n_features} features, fitted in {fitted:.1f} s; head trained in "
          f"{trained:.1f} s; held-out accuracy {result['accuracy']:.4f} (loss {result['loss']:.4f})")
    if args.save:
        nk.save(model, args.save)
        print(f"saved to {args.save}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
