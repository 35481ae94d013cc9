"""``python -m nkernels_pmi``: the README's digits figures (stacked PMI features, raw pixels, random projections).

Example::

    python -m nkernels_pmi --option stages=[64,128] --option activation=soft

Each extractor is fitted on the digits training split, and scikit-learn's LogisticRegression
is trained on its features and scored on the held-out split. ``--option KEY=VALUE`` (VALUE as
JSON) sets an option of the ``stacked-pmi`` extractor.
"""
from __future__ import annotations

import argparse
import json
import sys


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
    from .figures import digits_figures

    parser = argparse.ArgumentParser(prog="python -m nkernels_pmi", description=__doc__.split("\n")[0])
    parser.add_argument("--option", action="append", default=[], type=parse_option, metavar="KEY=VALUE",
                        help="a stacked-pmi option (VALUE as JSON), e.g. stages=[64,128]; repeatable")
    args = parser.parse_args(argv)
    try:
        figures = digits_figures(dict(args.option))
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    width = figures["width"]
    print(f"stacked-pmi features ({width}, fitted in {figures['fit_seconds']:.2f} s): held-out accuracy "
          f"{figures['pmi']:.4f}")
    print(f"raw pixels (64): held-out accuracy {figures['raw']:.4f}")
    for name, label in (("random_stack", "the same stack, random factors"),
                        ("random_single", "one stage of random projections")):
        values = ", ".join(f"{v:.4f}" for v in figures[name])
        print(f"{label} ({width}), seeds 0-{len(figures[name]) - 1}: held-out accuracy {values}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
