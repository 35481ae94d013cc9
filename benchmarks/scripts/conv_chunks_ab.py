"""Conv2D CPU kernels of two revisions alternated in one process: forward + backward at the LeNet and
digits-CNN shapes (issue 24).

Run from the repository root (the "after" side is the working tree's ``nkernels.kernels.cpu.conv``)::

    python benchmarks/scripts/conv_chunks_ab.py [--before ac0dbe3] [--threads 1] [--clock thread]

The "before" side is ``nkernels/kernels/cpu/conv.py`` at ``--before``, written to a temporary folder and
imported as a module of its own (its kernels compile there once). Each round times both sides back to
back; the figure is the median over rounds of the milliseconds per forward + backward (``cols_ready``,
as the layers call it; ``need_dx`` as in the model: not for a first layer). ``--threads 1`` is the
setting of the compiled trainer's split mode (LeNet), ``2`` that of a whole-batch step (the digits CNN).
``--clock thread`` (the default) counts the CPU time of the calling thread, which a busy machine
disturbs far less than the wall clock; it only fits ``--threads 1`` (other threads' work is not
counted), so ``--threads 2`` uses the wall clock.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

#: (N, C, H, O, K, pad, need_dx) of the timed layers
CASES = {"LeNet conv1 (half batch)": (64, 1, 28, 32, 5, 0, False),
         "LeNet conv2 (half batch)": (64, 32, 12, 64, 5, 0, True),
         "digits CNN conv": (64, 1, 8, 16, 3, 1, False)}


def load_before(revision: str, folder: str):
    """``nkernels/kernels/cpu/conv.py`` at ``revision``, imported from ``folder`` as ``conv_before``."""
    source = subprocess.run(["git", "show", f"{revision}:nkernels/kernels/cpu/conv.py"], check=True,
                            capture_output=True, text=True).stdout
    # the module's relative import of the BLAS wrapper (present after the change) goes to the package
    source = source.replace("from .blas import", "from nkernels.kernels.cpu.blas import")
    path = os.path.join(folder, "conv_before.py")
    with open(path, "w") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location("conv_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def arrays(conv, case, rng):
    n, c, h, o, k, pad, _ = case
    x = rng.standard_normal((n, c, h, h)).astype(np.float32)
    w = rng.standard_normal((o, c, k, k)).astype(np.float32)
    b = np.zeros(o, np.float32)
    cols_shape, gemm_shape = conv.conv2d_workspace_shapes(x.shape, w.shape, 1, 1, pad, pad)
    out = np.zeros(conv.conv2d_output_shape(x.shape, w.shape, 1, 1, pad, pad), np.float32)
    return (x, w, b, np.zeros(cols_shape, np.float32), np.zeros(gemm_shape, np.float32), out, np.zeros_like(x),
            np.zeros_like(w), np.zeros_like(b))


def step(conv, a, pad, need_dx):
    x, w, b, cols, gemm, out, dx, dw, db = a
    conv.conv2d_forward(x, w, b, 1, 1, pad, pad, cols, gemm, out)
    conv.conv2d_backward(x, w, out, 1, 1, pad, pad, need_dx, True, cols, gemm, dx, dw, db)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="ac0dbe3", help="the revision of the 'before' kernels")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=["thread", "wall"], default="thread")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    import numba

    from nkernels.kernels.cpu import conv as after
    from nkernels.runtime.threads import blas_single_threaded

    clock = time.thread_time if args.clock == "thread" and args.threads == 1 else time.perf_counter
    numba.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder, blas_single_threaded():
        before = load_before(args.before, folder)
        for name, case in CASES.items():
            pad, need_dx = case[5], case[6]
            a = arrays(after, case, rng)
            for conv in (before, after):
                step(conv, a, pad, need_dx)  # compile
            calls = 200 if case[2] <= 8 else 5
            times: dict = {before: [], after: []}
            for _ in range(args.rounds):
                for conv in (before, after):
                    start = clock()
                    for _ in range(calls):
                        step(conv, a, pad, need_dx)
                    times[conv].append((clock() - start) / calls)
            t0, t1 = np.median(times[before]) * 1e3, np.median(times[after]) * 1e3
            print(f"{name}, {args.threads} thread(s), {clock.__name__}: before {t0:.3f} ms, after {t1:.3f} ms, "
                  f"before/after {t0 / t1:.2f}x", flush=True)


if __name__ == "__main__":
    sys.exit(main())
