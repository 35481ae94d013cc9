"""Where a compiled training step's time goes: each kernel call of the step on its own.

Run: ``python benchmarks/scripts/step_kernel_times.py CASE [--repeat 200] [--rounds 7]`` (CASE: a name of
``nkernels bench``'s cases; prints a Markdown table, slowest first).

The script builds the case's compiled trainer as ``nkernels bench`` does (Adam, random data) but with
whole batches (``split_batches=False``: the split mode's halves run the same calls on half the rows),
runs it once, then reads the generated ``run_batches`` source: each kernel call of its batch loop is compiled
into a small ``@njit`` function of the step's own arguments that repeats the call ``--repeat`` times,
and is timed on the trainer's real arrays (the same shapes, views and workspaces the step uses; the
arrays keep whatever the previous calls left in them), with BLAS on one thread as the trainers run it.
The figure is the median over ``--rounds`` of the time per call. The calls run one at a time here, so
each finds its operands in cache more often than inside the step: the column shows shares, not a sum
equal to the step.
"""
from __future__ import annotations

import argparse
import inspect
import re
import statistics
import sys
import time

import numpy as np
from numba import njit


def _trainer(name: str):
    from nkernels.cli.bench import CASES, data
    from nkernels.losses import SoftmaxCrossEntropy
    from nkernels.optimizers import Adam
    from nkernels.trainers import make_trainer

    case = CASES[name]
    X, y = data(case, 20)
    trainer = make_trainer(case.build(), SoftmaxCrossEntropy(), Adam(lr=1e-3), case.sample_shape, case.batch_size,
                           split_batches=False)  # the step timed below is run_batches, the whole-batch loop
    X2d, order = X.reshape(len(X), -1), np.arange(len(X))
    trainer.run(X2d, y, order, 0, 2, case.batch_size)
    fixed = dict(X=X2d, Y=y, order=order, start0=0, n_batches=1, step0=0, scalars=trainer._scalars(),
                 augment=trainer._augment(), losses=np.zeros(1), correct=np.zeros(1, np.int64))
    return trainer, fixed, trainer._arrays(case.batch_size)


def kernel_times(name: str, repeat: int, rounds: int) -> list[tuple[float, str]]:
    """(µs a call, the call's source) for each kernel call of the case's step, in the step's order."""
    from nkernels.compiled.step import FIXED_ARGS
    from nkernels.runtime.threads import blas_single_threaded

    trainer, fixed, arrays = _trainer(name)
    py_func = trainer.function.py_func
    module = sys.modules[py_func.__module__]
    source = inspect.getsource(py_func)
    params = [*FIXED_ARGS, *trainer.step.arg_names]  # run_batches' arguments, in order
    values = [fixed[p] for p in FIXED_ARGS] + list(arrays)
    body = source.split("for b in range(n_batches):\n")[1].split("\n    return n_batches")[0]
    calls = [line.strip() for line in body.splitlines() if re.match(r"^\s+[a-z_0-9]+\(", line)]
    times = []
    for i, call in enumerate(calls):
        code = (f"def _call_{i}({', '.join(params)}, repeat):\n    bs = a0.shape[0]\n    start = 0\n    step = 1\n"
                f"    slot = 0\n    for _ in range(repeat):\n        {call}\n    return 0\n")
        namespace = dict(module.__dict__)
        exec(code, namespace)  # the step module's own names: its kernels, bool_, int64
        looped = njit(error_model="numpy")(namespace[f"_call_{i}"])
        samples = []
        with blas_single_threaded():  # as the trainers run their steps
            looped(*values, 1)
            for _ in range(rounds):
                start = time.perf_counter()
                looped(*values, repeat)
                samples.append((time.perf_counter() - start) / repeat * 1e6)
        times.append((statistics.median(samples), call))
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("case")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    times = kernel_times(args.case, args.repeat, args.rounds)
    total = sum(t for t, _ in times)
    print(f"| kernel call of the `{args.case}` step | µs | share |")
    print("|---|---:|---:|")
    for t, call in sorted(times, reverse=True):
        shown = call if len(call) <= 90 else call[:87] + "..."
        print(f"| `{shown}` | {t:.1f} | {100 * t / total:.0f}% |")
    print(f"| all calls | {total:.0f} | |")


if __name__ == "__main__":
    main()
