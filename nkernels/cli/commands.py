"""The ``nkernels`` command: ``train``, ``compare``, ``plugins``, ``info``, ``bench`` and ``cache``."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any, Sequence

import numpy as np
from rich.console import Console
from rich.table import Table

from .._version import __version__


def _build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show full tracebacks on errors")
    parser = argparse.ArgumentParser(prog="nkernels", description="Deep-learning layers on Numba kernels.",
                                     parents=[common])
    parser.add_argument("--version", action="version", version=f"nkernels {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model on a dataset", parents=[common])
    train.add_argument("--data", default="digits", help="a registered dataset (default: digits)")
    train.add_argument("--data-path", metavar="DIR",
                       help="the folder of a dataset read from files (mnist, fashion-mnist: their IDX files)")
    train.add_argument("--model", default="mlp", help="a preset (mlp, cnn, lstm, transformer, resnet; gan with --scheme gan) or a JSON spec file")
    train.add_argument("--scheme", default="backprop", help="a registered training scheme")
    train.add_argument("--epochs", type=int, default=None, help="epochs (the preset's default if unset)")
    train.add_argument("--batch-size", type=int, default=None,
                       help="mini-batch size (default: the scheme's, 32); refused by schemes without "
                            "mini-batches (admm)")
    train.add_argument("--optimizer", default=None, help="adam (default), adamw or sgd")
    train.add_argument("--lr", type=float, default=None, help="learning rate (the preset's default if unset)")
    train.add_argument("--schedule", default=None, help="learning-rate schedule: step, cosine or plateau")
    train.add_argument("--warmup-epochs", type=int, default=None, metavar="N",
                       help="ramp the learning rate up linearly over the first N epochs, then follow --schedule "
                            "(step or cosine; a constant rate without --schedule)")
    train.add_argument("--augment-shift", type=int, default=None, metavar="PIXELS",
                       help="shift training images randomly by up to this many pixels")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="cpu", help="cpu or cuda")
    train.add_argument("--workers", type=int, default=None, metavar="N",
                       help="schemes that scale out (admm, es): start a local Dask cluster of N workers")
    train.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="schemes that scale out: join the Dask cluster at tcp://HOST:PORT")
    train.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="a scheme option, e.g. --option sigma=0.05 (VALUE is read as JSON, else as text); "
                            "repeatable")
    train.add_argument("--save", metavar="PATH", help="save the trained model here")
    train.add_argument("--checkpoint-dir", metavar="DIR", help="save a checkpoint here after every epoch")
    train.add_argument("--resume", action="store_true",
                       help="continue the run checkpointed in --checkpoint-dir (a new run if there is none yet)")
    train.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE",
                       help="end training (in a run of stages: the stage) when the training loss has not "
                            "improved for PATIENCE epochs, keeping the best weights; the test split is never "
                            "used to decide")
    train.add_argument("--plot", metavar="PATH",
                       help="write the loss and accuracy curves to this PNG (with --scheme gan: a grid of samples)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    plugins = sub.add_parser("plugins", help="list the plugins and what they registered", parents=[common])
    plugins.add_argument("--json", action="store_true", help="print JSON instead of a table")

    sub.add_parser("info", help="versions, devices, cache directory and threads", parents=[common])

    bench = sub.add_parser("bench", help="training-step speed against PyTorch: the ratio table",
                           parents=[common])
    bench.add_argument("--models", nargs="+", metavar="NAME", help="benchmark models (default: all)")
    bench.add_argument("--repeat", type=int, default=7, help="repeats per measurement (the median is shown)")
    bench.add_argument("--rounds", type=int, default=1,
                       help="time every framework this many times, taking turns, and show each one's median "
                            "(a shared machine's speed drifts over minutes)")
    bench.add_argument("--data", metavar="NAME",
                       help="time on batches of this registered dataset (mnist1d, mnist ...) instead of random "
                            "numbers; without --models, the models whose input fits it")
    bench.add_argument("--data-path", metavar="DIR",
                       help="the folder of --data's files (mnist, fashion-mnist: their IDX files)")
    bench.add_argument("--json", action="store_true",
                       help="print the rows as JSON: times in µs, {peer}_ratio = nkernels time / peer time "
                            "(lower is better), {peer}_speedup = its inverse")

    from .compare import add_parser as add_compare_parser

    add_compare_parser(sub, common)

    cache = sub.add_parser("cache", help="clear Numba's and nkernels' caches", parents=[common])
    cache_actions = cache.add_subparsers(dest="action", required=True)
    clear = cache_actions.add_parser(
        "clear", parents=[common],
        help="remove the Numba cache files of nkernels and its plugins, the folders pip uninstall left of "
             "plugins, and the generated training steps; all are rebuilt on next use")
    clear.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    return parser


def _build_model(spec: str, input_shape: tuple[int, ...], n_classes: int, seed: int):
    from . import presets
    from ..model import Sequential

    if os.path.isfile(spec):
        with open(spec) as f:
            try:
                config = json.load(f)
            except ValueError as exc:
                raise ValueError(f"model spec {spec} is not valid JSON: {exc}") from None
        model = Sequential.from_config(config)
        model.reset_parameters(seed)
        return model
    return presets.build(spec, input_shape, n_classes, seed=seed)


def _scheme_options(args: argparse.Namespace, defaults: dict[str, Any]) -> dict[str, Any]:
    """The scheme's constructor options from the command line, and the batch size when given.

    Backprop gets every training option (with the preset's defaults: learning rate, and schedule unless a
    custom ``--scheduler`` is given); another scheme only the options given explicitly, so that one it does
    not accept is an error rather than ignored (a scheme without mini-batches refuses a batch size, one
    without a learning rate a schedule).
    """
    given = {"optimizer": args.optimizer, "lr": args.lr, "schedule": args.schedule,
             "augment_shift": args.augment_shift, "checkpoint_dir": args.checkpoint_dir,
             "resume": args.resume or None, "workers": args.workers, "scheduler": args.scheduler,
             "batch_size": args.batch_size}
    options = {k: v for k, v in given.items() if v is not None}
    options.update(_parse_options(args.option))
    if args.scheme == "backprop":
        from .presets import training_options

        options.update(training_options(defaults, options))
    if args.warmup_epochs:
        epochs = args.epochs if args.epochs is not None else defaults.get("epochs") if args.scheme == "backprop" \
            else None
        options["schedule"] = _warmup_schedule(options.get("schedule"), args.warmup_epochs, epochs)
    return options


def _warmup_schedule(schedule: Any, warmup_epochs: int, epochs: int | None) -> Any:
    """The named ``schedule`` (or none: a constant rate) after a linear warm-up of ``warmup_epochs``."""
    from ..schedules import get_schedule

    if schedule is not None and not isinstance(schedule, str):
        raise ValueError("--warmup-epochs takes a named --schedule (step or cosine)")
    if schedule == "step" and epochs is None:
        raise ValueError("--warmup-epochs with --schedule step needs --epochs (the steps divide the run)")
    return get_schedule(schedule or "warmup", epochs or 0, warmup_epochs)


def _parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``--option KEY=VALUE`` pairs as a dict; VALUE is parsed as JSON when it is valid JSON."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"--option takes KEY=VALUE with KEY a Python name, e.g. --option sigma=0.05; "
                             f"got {pair!r}")
        options[key.strip()] = _parse_value(text)
    return options


def _data_path_option(args: argparse.Namespace) -> dict[str, str]:
    """``{"path": DIR}`` for the dataset loader when ``--data-path`` is given (a loader without that
    option refuses it, naming its options)."""
    return {} if args.data_path is None else {"path": args.data_path}


def _parse_value(text: str) -> Any:
    """An option's VALUE: parsed as JSON when it is valid JSON, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _resume_note(checkpoint_dir: str) -> str:
    """One line saying where a resumed run picks up."""
    from ..export.io import read_checkpoint
    from ..schemes.checkpoints import CHECKPOINT_FILE

    path = os.path.join(checkpoint_dir, CHECKPOINT_FILE)
    if not os.path.exists(path):
        return f"no checkpoint in {checkpoint_dir} yet: starting a new run"
    extra = read_checkpoint(path).extra or {}
    epoch = extra.get("position", {}).get("epoch", extra.get("epoch", "?"))
    return f"resuming the run in {checkpoint_dir} after epoch {epoch}"


def cmd_train(args: argparse.Namespace, console: Console) -> int:
    """Train, show progress, and end with a table of the epochs."""
    from .. import datasets, registry
    from . import presets
    from ..export.io import save
    from ..training import evaluate, train

    presets.check_spec(args.model)
    defaults = presets.TRAINING_DEFAULTS.get(args.model, presets.SPEC_TRAINING_DEFAULTS)
    options = _scheme_options(args, defaults)
    if args.model in presets.PAIR_PRESETS or args.scheme in presets.PAIR_PRESETS:
        return _train_pair(args, console, options)
    form = presets.input_form(args.model)
    X, y, X_test, y_test = datasets.load(args.data, flat=form == "flat", **_data_path_option(args))
    X, X_test = presets.prepare_inputs(form, X), presets.prepare_inputs(form, X_test)
    n_classes = int(max(y.max(), y_test.max())) + 1
    model = _build_model(args.model, X.shape[1:], n_classes, args.seed).to(args.device)
    # a preset's epochs are backprop's; another scheme trains for its own default unless told
    epochs = args.epochs if args.epochs is not None else defaults["epochs"] if args.scheme == "backprop" else None
    callbacks = _before_training(args, console)
    scheme = registry.schemes[args.scheme]
    if scheme.capabilities.labels == "none":
        # a scheme that learns from X alone (an autoencoder) trains the chain it makes of the preset,
        # as `nkernels compare` hands it one, and is scored on the test inputs alone
        model = scheme().adapt_model(model, int(np.prod(X.shape[1:])), n_classes)
        history = train(model, X, scheme=args.scheme, epochs=epochs, seed=args.seed, validation_data=X_test,
                        callbacks=callbacks, **options)
        final = {"loss": history["val_loss"][-1]}
    else:
        history = train(model, X, y, scheme=args.scheme, epochs=epochs, seed=args.seed,
                        validation_data=(X_test, y_test), callbacks=callbacks, **options)
        final = evaluate(model, X_test, y_test)
    console.print(_history_table(history, f"{args.model} on {args.data}, {args.scheme}"))
    elapsed = float(sum(t or 0.0 for t in history["time"])) if "time" in history else 0.0
    summary = f"test loss {final['loss']:.4f}"
    if "accuracy" in final:
        summary += f", test accuracy {100 * final['accuracy']:.2f}%"
    console.print(summary + f", {elapsed:.2f} s of training")
    if args.save:
        save(model, args.save)
        console.print(f"saved to {args.save}", highlight=False, soft_wrap=True, markup=False)
    if args.plot:
        from .plotting import plot_history

        plot_history(history, args.plot)
        console.print(f"curves written to {args.plot}", highlight=False, soft_wrap=True, markup=False)
    return 0


def _before_training(args: argparse.Namespace, console: Console) -> list[Any]:
    """What a run checks before it trains (the --save and --plot paths, --resume's directory), so
    that a mistake costs no training; returns the run's callbacks (progress bar, early stopping)."""
    from ..callbacks import ProgressBar
    from ..export.io import check_writable
    from ..schedules import EarlyStopping

    if args.save:
        try:
            check_writable(args.save)  # before training: an unwritable path must not cost a run
        except OSError as exc:
            raise type(exc)(f"--save: {exc}; choose another path") from None
    if args.resume and not args.checkpoint_dir:
        raise ValueError("--resume continues the run in --checkpoint-dir DIR; give that directory")
    if args.plot:
        from .plotting import check_plot_path

        check_plot_path(args.plot)  # before training: a missing matplotlib must not cost a run
    if args.resume:
        console.print(_resume_note(args.checkpoint_dir), highlight=False, soft_wrap=True, markup=False)
    callbacks: list[Any] = [] if args.quiet else [ProgressBar(f"{args.scheme} on {args.data}")]
    if args.early_stopping is not None:
        callbacks.append(EarlyStopping(monitor="loss", patience=args.early_stopping, restore_best_weights=True))
    return callbacks


#: samples in the grid that ``--plot`` writes for a generator
SAMPLE_GRID = 100


def _train_pair(args: argparse.Namespace, console: Console, options: dict[str, Any]) -> int:
    """``--scheme gan --model gan``: train a preset's generator and discriminator on the data alone.

    ``--plot`` writes a grid of the generator's samples, ``--save`` saves the generator (the
    model that makes samples: ``nk.sample(nk.load(PATH), n)``).
    """
    from .. import datasets
    from . import presets
    from ..export.io import save
    from ..sampling import sample
    from ..training import train

    if args.model != args.scheme:
        pair, other = (args.model, args.scheme) if args.model in presets.PAIR_PRESETS else (args.scheme, args.model)
        raise ValueError(f"--model {pair} and --scheme {pair} go together: the {pair} scheme trains a generator "
                         f"and a discriminator, the {pair} preset builds them; {other!r} does not pair with it")
    if args.device != "cpu":
        raise ValueError(f"the {args.scheme} scheme runs on the CPU; drop --device {args.device}")
    X, _, _, _ = datasets.load(args.data, flat=False, **_data_path_option(args))
    image_shape = X.shape[1:]
    X = X.reshape(len(X), -1)
    generator, discriminator = presets.PAIR_PRESETS[args.model](X.shape[1:], data_range=(X.min(), X.max()),
                                                                 seed=args.seed)
    callbacks = _before_training(args, console)
    history = train(discriminator, X, scheme=args.scheme, generator=generator, epochs=args.epochs, seed=args.seed,
                    callbacks=callbacks, **options)
    console.print(_history_table(history, f"{args.model} on {args.data}, {args.scheme}"))
    elapsed = float(sum(t or 0.0 for t in history["time"]))
    console.print(f"{elapsed:.2f} s of training")
    if args.save:
        save(generator, args.save)
        console.print(f"generator saved to {args.save}", highlight=False, soft_wrap=True, markup=False)
    if args.plot:
        from .plotting import plot_samples

        plot_samples(sample(generator, SAMPLE_GRID, seed=args.seed), args.plot, image_shape)
        console.print(f"{SAMPLE_GRID} samples written to {args.plot}", highlight=False, soft_wrap=True,
                      markup=False)
    return 0


#: the columns every training table starts with, and their headers
_MAIN_COLUMNS = {"stage": "stage", "loss": "loss", "accuracy": "train acc", "val_accuracy": "test acc"}
#: metrics left out of the table (the time is shown summed; the validation loss beside the accuracy is noise)
_HIDDEN_COLUMNS = {"time", "lr", "val_loss"}


def _history_table(history: Any, title: str) -> Table:
    """The epochs of ``history`` as a table: stage, loss and accuracies first, then the scheme's own
    metrics (ES's generation and fitness, ADMM's residual ...), the learning rate when a schedule
    changed it, and the training time so far."""
    table = Table(title=title)
    table.add_column("epoch", justify="right")
    columns = [key for key in _MAIN_COLUMNS if key in history]
    if "val_loss" in history and "val_accuracy" not in history:  # a scheme without labels: its test figure
        columns.append("val_loss")
    columns += [key for key in history if key not in _MAIN_COLUMNS and key not in _HIDDEN_COLUMNS]
    if "lr" in history and len(set(history["lr"])) > 1:  # a schedule changed it
        columns.append("lr")
    for key in columns:
        table.add_column(_MAIN_COLUMNS.get(key, "test loss" if key == "val_loss" else key),
                         justify="left" if key == "stage" else "right")
    table.add_column("time (s)", justify="right")
    elapsed = 0.0
    for epoch in range(history.epochs):
        row = [str(epoch + 1)] + [_cell(key, history[key][epoch]) for key in columns]
        elapsed += (history["time"][epoch] or 0.0) if "time" in history else 0.0
        row.append(f"{elapsed:.2f}")
        table.add_row(*row)
    return table


def _cell(key: str, value: Any) -> str:
    """One metric as the table shows it: accuracies in percent, losses to 4 places, counts as integers."""
    if value is None:  # a metric some epochs lack
        return "-"
    if isinstance(value, str):
        return value
    if key.endswith("accuracy"):
        return f"{100 * value:.2f}%"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    return f"{value:.4f}" if key.endswith("loss") else f"{value:.4g}"


def cmd_plugins(args: argparse.Namespace, console: Console) -> int:
    """List every plugin with distribution, version, status and registrations, and any name it
    claims in vain: one another plugin registered too (a conflict) or one a built-in owns (refused)."""
    import warnings

    from rich.markup import escape

    from .. import plugins

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # failures, conflicts and refusals show in the table instead
        infos = plugins.plugin_infos(load=True)  # a deferred registration that fails to import shows as failed
    if args.json:
        print(json.dumps([info.as_dict() for info in infos], indent=2))
        return 0
    table = Table(title="nkernels plugins")
    for column in ("plugin", "distribution", "version", "status", "registered"):
        table.add_column(column)
    for info in infos:
        registered = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in info.registered.items()
                               if kind != "kernels")
        if "kernels" in info.registered:
            registered += ("; " if registered else "") + f"kernels: {len(info.registered['kernels'])}"
        if info.error:
            registered = info.error
        notes = [f"[yellow]conflict:[/] {escape(c)}" for c in info.conflicts]
        notes += [f"[yellow]refused (a built-in name):[/] {escape(r)}" for r in info.refused]
        style = {"failed": "red", "disabled": "yellow"}.get(info.status, "")
        table.add_row(escape(info.name), escape(info.distribution), escape(info.version),
                      f"[{style}]{info.status}[/]" if style else info.status,
                      "\n".join(line for line in [escape(registered)] + notes if line))
    console.print(table)
    return 0


def _version_of(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _threading_layer_in_use() -> str:
    """The threading layer Numba's pool runs on (the pool is started to learn it), with the configured choice."""
    import numba

    from ..runtime.threads import THREAD_SAFE_LAYERS, threading_layer

    configured = f"NUMBA_THREADING_LAYER={numba.config.THREADING_LAYER}"
    try:
        layer = threading_layer()
    except ValueError as exc:  # the configured layer is not installed
        return f"no threading layer could start ({configured}): {_one_line(exc)}"
    note = "" if layer in THREAD_SAFE_LAYERS else "; not thread-safe: the split mode runs only steps without parallel kernels"
    return f"threading layer {layer} in use ({configured}){note}"


def cmd_info(args: argparse.Namespace, console: Console) -> int:
    """Versions, the CUDA status, the cache directories and the thread count."""
    import numba

    from ..runtime.cache import cache_dir, numba_cache_dir

    from ..runtime.devices import cuda_status

    usable, detail = cuda_status()
    rows = [("nkernels", __version__), ("python", sys.version.split()[0])]
    rows += [(dist, _version_of(dist)) for dist in ("numba", "llvmlite", "numpy", "numba-cuda")]
    rows += [("cuda", ("usable: " if usable else "not usable: ") + detail),
             ("numba cache", numba_cache_dir()), ("nkernels cache", cache_dir()),
             ("threads", f"{numba.config.NUMBA_NUM_THREADS} (numba), {_threading_layer_in_use()}")]
    import scipy.linalg.cython_blas  # noqa: F401  (the BLAS Numba calls)

    from ..runtime.threads import blas_kernels_note, blas_libraries

    from ..kernels.cpu.avx512 import tiles_in_use

    rows += [("blas", "\n".join(blas_libraries()) or "none loaded"),
             ("OPENBLAS_CORETYPE", os.environ.get("OPENBLAS_CORETYPE", "unset (OpenBLAS detects the CPU)")),
             ("products", "nkernels' AVX-512 tiles for a training step's, BLAS for larger ones" if tiles_in_use()
              else "BLAS (nkernels' AVX-512 tiles need a CPU with AVX-512, as Numba compiles for it)")]
    if note := blas_kernels_note():
        rows.append(("blas note", note))
    table = Table(title="nkernels info", show_header=False)
    table.add_column("key")
    table.add_column("value")
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    return 0


def cmd_bench(args: argparse.Namespace, console: Console) -> int:
    """Measure training steps of the benchmark models against PyTorch and JAX and print the ratio table."""
    from . import bench

    unknown = sorted(set(args.models or []) - set(bench.CASES))
    if unknown:
        raise ValueError(f"unknown benchmark model(s) {unknown}; available: {', '.join(bench.CASES)}")
    source = _bench_data(args, bench)
    import numba

    peers = {"torch": "PyTorch", "jax": "JAX"}
    turns = f", {args.rounds} rounds" if args.rounds > 1 else ""
    with console.status(f"measuring (PyTorch, then JAX, then nkernels{turns})...") if not args.json \
            else contextlib.nullcontext():
        rows = bench.speedups(args.models, repeat=args.repeat, peers=tuple(peers), source=source, rounds=args.rounds)
    from ..runtime.threads import blas_kernels_note

    note = blas_kernels_note()
    if args.json:
        print(json.dumps(rows, indent=2))
        if note:
            print(f"note: {note}", file=sys.stderr)
        return 0
    on = f", {source.name} batches" if source else ""
    table = Table(title=f"training step, Adam, {numba.config.NUMBA_NUM_THREADS} threads, µs per step{on}")
    table.add_column("model")
    table.add_column("nkernels", justify="right")
    for label in peers.values():
        table.add_column(label, justify="right")
        table.add_column(f"{label} / nkernels", justify="right")
    for row in rows:
        cells = [row["description"], f"{row['nkernels_us']:,.0f}"]
        for peer in peers:
            peer_us, ratio = row[f"{peer}_us"], row[f"{peer}_speedup"]
            missing = "no JAX twin" if peer == "jax" and not bench.CASES[row["case"]].jax else "not installed"
            cells += [missing if peer_us is None else f"{peer_us:,.0f}",
                      "" if ratio is None else f"{ratio:.2f}x"]
        table.add_row(*cells)
    console.print(table)
    if note:
        console.print(f"note: {note}")
    return 0


def _bench_data(args: argparse.Namespace, bench: Any) -> Any:
    """The ``BenchData`` of ``--data`` (None without it), loaded and checked against ``--models``."""
    if args.data is None:
        if args.data_path is not None:
            raise ValueError("--data-path DIR is the folder of --data's files; name the dataset too, e.g. "
                             "--data mnist --data-path DIR")
        return None
    source = bench.BenchData(args.data, args.data_path)
    fitting = bench.cases_for(source)  # loads it: a missing file or package is reported before any timing
    misfits = [name for name in args.models or [] if name not in fitting]
    if not fitting or misfits:
        X, _ = source.arrays()
        raise ValueError(f"{'benchmark model(s) ' + ', '.join(misfits) if misfits else 'no benchmark model'} "
                         f"cannot take {args.data}'s samples ({X.shape[1]} values each); models for it: "
                         f"{', '.join(fitting) or 'none'}")
    return source


def cmd_cache(args: argparse.Namespace, console: Console) -> int:
    """``cache clear``: remove the Numba cache files of nkernels and its plugins, the leftovers of
    uninstalled plugins and the generated modules, and list what went."""
    from ..runtime.cache import clear

    removals = clear(dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for removal in removals:
        what = "the folder" if removal.kind == "leftover package folder" else f"{removal.files} files of"
        console.print(f"{verb} {what} {removal.path} ({removal.kind})", highlight=False, soft_wrap=True,
                      markup=False)
    console.print(f"{verb} {sum(r.files for r in removals)} files in {len(removals)} places"
                  if removals else "nothing to remove", highlight=False)
    return 0


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    """Train one model with every installed scheme, each in its own process, and print the ranked table."""
    from .compare import cmd_compare as run

    return run(args, console)


COMMANDS = {"train": cmd_train, "plugins": cmd_plugins, "info": cmd_info, "bench": cmd_bench, "cache": cmd_cache,
            "compare": cmd_compare}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nkernels`` console script."""
    args = _build_parser().parse_args(argv)
    console = Console()
    errors = Console(stderr=True, soft_wrap=True)  # one line, however wide the terminal
    try:
        return COMMANDS[args.command](args, console)
    except KeyboardInterrupt:
        if getattr(args, "debug", False):
            raise
        hint = ""
        if getattr(args, "checkpoint_dir", None):
            hint = f"; continue with --checkpoint-dir {args.checkpoint_dir} --resume"
        errors.print(f"interrupted{hint}", highlight=False, markup=False)
        return 130
    except (ValueError, TypeError, LookupError, OSError, ImportError) as exc:
        if getattr(args, "debug", False):
            raise
        errors.print(f"[red]error:[/] {_one_line(exc)}", highlight=False)
        return 2
    except Exception as exc:  # a bug, not bad input: still one line, the traceback with --debug
        if getattr(args, "debug", False):
            raise
        errors.print(f"[red]error:[/] {type(exc).__name__}: {_one_line(exc)} (run again with --debug for "
                     f"the traceback)", highlight=False)
        return 2


def _one_line(exc: BaseException) -> str:
    """The message on one line, with rich markup escaped (so ``nkernels[plot]`` prints as it is)."""
    from rich.markup import escape

    return escape(" ".join(str(exc).split()) or type(exc).__name__)


if __name__ == "__main__":
    sys.exit(main())
