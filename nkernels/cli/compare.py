"""``nkernels compare``: the scheme leaderboard as a table, a JSON file and a plot of accuracy against time."""
from __future__ import annotations

import argparse
import contextlib
from typing import Any, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``compare`` subcommand's arguments."""
    from ..leaderboard import DEFAULT_TARGET

    compare = sub.add_parser(
        "compare", parents=[common],
        help="train one model with every installed scheme, each in its own process, and rank them")
    compare.add_argument("--data", default="digits", help="a registered dataset (default: digits)")
    compare.add_argument("--model", default="mlp",
                         help="a preset (mlp, cnn, lstm, transformer, resnet) or a JSON spec file (default: mlp)")
    compare.add_argument("--schemes", metavar="NAME,NAME", type=_names,
                         help="the schemes to compare (default: every installed scheme that yields a classifier, "
                              "and those that yield only an extractor, scored with a logistic-regression head)")
    compare.add_argument("--extractors", metavar="NAME,NAME|all", type=_names,
                         help="also score these registered extractors (or all) with the logistic-regression head "
                              "(default: none)")
    compare.add_argument("--epochs", type=int, default=None,
                         help="epochs for every scheme (default: each scheme's own; the preset's for backprop)")
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--target", type=float, default=DEFAULT_TARGET,
                         help=f"the held-out accuracy whose time is reported (default: {DEFAULT_TARGET})")
    compare.add_argument("--option", action="append", default=[], metavar="NAME.KEY=VALUE",
                         help="an option of one scheme or extractor, e.g. --option es.sigma=0.05 or "
                              "--option kmeans.n_clusters=200 (VALUE is read as JSON, else as text); repeatable")
    compare.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                         help="kill a scheme's process after this long (it becomes an error row)")
    compare.add_argument("--max-samples", type=int, default=None, metavar="N",
                         help="use the first N training and N test samples only (a quick look)")
    compare.add_argument("--json", metavar="PATH", help="write the table (and each scheme's curve) to this JSON file")
    compare.add_argument("--plot", metavar="PATH", help="draw held-out accuracy against time for every scheme "
                                                        "in this PNG")
    compare.add_argument("--quiet", action="store_true", help="no progress lines, only the table")


def _names(text: str) -> list[str] | str:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give one or more names separated by commas")
    return "all" if names == ["all"] else names


def parse_row_options(pairs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``--option NAME.KEY=VALUE`` pairs as ``{NAME: {KEY: VALUE}}`` (VALUE parsed as JSON when it is JSON)."""
    from .commands import _parse_value

    options: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        name, dot, option = key.strip().rpartition(".")
        if not sep or not dot or not name or not option.isidentifier():
            raise ValueError(f"--option takes NAME.KEY=VALUE, the scheme or extractor and its option, e.g. "
                             f"--option es.sigma=0.05; got {pair!r}")
        options.setdefault(name, {})[option] = _parse_value(text)
    return options


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    """Run the comparison, print the ranked table, and write the JSON and the plot when asked."""
    import os

    from ..export.io import check_writable
    from ..leaderboard import compare
    from . import presets
    from .commands import _build_model

    presets.check_spec(args.model)
    options = parse_row_options(args.option)
    if args.plot:
        from .plotting import check_plot_path

        check_plot_path(args.plot)  # before training: a missing matplotlib must not cost a run
    if args.json:
        try:
            check_writable(args.json)
        except OSError as exc:
            raise type(exc)(f"--json: {exc}; choose another path") from None
    # a JSON spec file is built here (its layers carry their shapes); a preset is built for the data
    model = _build_model(args.model, (), 0, args.seed) if os.path.isfile(args.model) else args.model
    with contextlib.nullcontext() if args.quiet else console.status("starting") as status:
        def progress(name: str, row: Any) -> None:
            if status is None:
                return
            if row is None:
                status.update(f"training {escape(name)} in its own process")
            else:
                console.print(f"{escape(name)}: {_row_summary(row, args.target)}", highlight=False)

        result = compare(model, args.data, args.schemes, extractors=args.extractors, epochs=args.epochs,
                         seed=args.seed, target=args.target, options=options, timeout=args.timeout,
                         max_samples=args.max_samples, on_progress=progress)
    result.model = args.model
    console.print(comparison_table(result))
    if getattr(args, "debug", False):
        for row in result.rows:
            if row.traceback:
                console.print(f"{row.name}:\n{row.traceback}", highlight=False, markup=False)
    if args.json:
        result.save_json(args.json)
        console.print(f"table written to {args.json}", highlight=False, soft_wrap=True, markup=False)
    if args.plot:
        from .plotting import plot_comparison

        plot_comparison(result, args.plot)
        console.print(f"accuracy against time drawn in {args.plot}", highlight=False, soft_wrap=True, markup=False)
    return 0


def _row_summary(row: Any, target: float) -> str:
    if not row.ok:
        return f"[red]{row.status}[/]: {escape(row.error or '')}"
    return f"{_percent(row.accuracy)} held-out after {_seconds(row.train_s)}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def comparison_table(result: Any) -> Table:
    """The rows of a :class:`~nkernels.leaderboard.Comparison`, best held-out accuracy (last epoch) first."""
    table = Table(title=f"{result.model} on {result.data} ({result.train_samples} training, "
                        f"{result.test_samples} held-out samples, seed {result.seed})")
    columns = ["scheme", "test acc", "best", "epochs", "warm-up s", "train s", f"to {100 * result.target:g}% s",
               "peak MiB"]
    for column in columns:
        table.add_column(column, justify="left" if column == "scheme" else "right", no_wrap=column == "scheme")
    failed = any(not row.ok for row in result.rows)
    if failed:
        table.add_column("error")
    for row in result.ranked():
        reached = "not reached" if row.ok and row.time_to_target_s is None else f"{row.time_to_target_s:.2f}" \
            if row.time_to_target_s is not None else "-"
        cells = [escape(row.name), _percent(row.accuracy), _percent(row.best_accuracy),
                 "-" if row.epochs is None else str(row.epochs),
                 "-" if row.warmup_s is None else f"{row.warmup_s:.2f}",
                 "-" if row.train_s is None else f"{row.train_s:.2f}", reached,
                 "-" if row.peak_memory_mib is None else f"{row.peak_memory_mib:.0f}"]
        if failed:
            cells.append("" if row.ok else f"[red]{row.status}:[/] {escape(row.error or '')}")
        table.add_row(*cells)
    return table
