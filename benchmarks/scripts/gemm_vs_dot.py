"""Direct BLAS ``gemm`` (nkernels.kernels.cpu.blas) against Numba's ``np.dot`` on the MLP's GEMMs, from @njit code.

    python -m benchmarks.scripts.gemm_vs_dot [--rounds 7] [--reps 2000] [--dtype float32]

The MLP preset (64-128-128-10, batch 64) does, per training step, these products (M x K x N):
the forward ``x @ w.T`` per layer, the backward ``dy.T @ x`` (dweight) per layer and ``dy @ w`` (dx)
for the two upper layers. Each is timed as a loop of ``--reps`` calls inside one @njit function,
``np.dot`` and ``gemm`` alternately, ``--rounds`` times, BLAS on one thread (as in training); the
median per call is printed, with the rate in GFLOP/s and the ratio ``np.dot / gemm``. Then the
step's GEMM FLOPs and the time those GEMMs take at the measured rates.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from numba import njit

from nkernels.kernels.cpu.blas import gemm
from nkernels.runtime.threads import blas_single_threaded

#: (batch, in, out) of the MLP's three Dense layers
LAYERS = [(64, 64, 128), (64, 128, 128), (64, 128, 10)]


@njit
def _dot_loop(kind, x, w, dy, out, reps):
    for _ in range(reps):
        if kind == 0:
            np.dot(x, w.T, out)
        elif kind == 1:
            np.dot(dy.T, x, out)
        else:
            np.dot(dy, w, out)


@njit
def _gemm_loop(kind, x, w, dy, out, reps):
    for _ in range(reps):
        if kind == 0:
            gemm(False, True, 1.0, x, w, 0.0, out)
        elif kind == 1:
            gemm(True, False, 1.0, dy, x, 0.0, out)
        else:
            gemm(False, False, 1.0, dy, w, 0.0, out)


def products(dtype):
    """(label, kind, flops, x, w, dy, out) for every GEMM of one MLP step."""
    rng = np.random.default_rng(0)
    rows = []
    for i, (n, k_in, k_out) in enumerate(LAYERS):
        x = rng.standard_normal((n, k_in)).astype(dtype)
        w = rng.standard_normal((k_out, k_in)).astype(dtype)
        dy = rng.standard_normal((n, k_out)).astype(dtype)
        flops = 2 * n * k_in * k_out
        rows.append((f"fwd x@w.T  {n}x{k_in}x{k_out}", 0, flops, x, w, dy, np.empty((n, k_out), dtype)))
        rows.append((f"dW dy.T@x  {k_out}x{n}x{k_in}", 1, flops, x, w, dy, np.empty((k_out, k_in), dtype)))
        if i > 0:  # the first layer's dx is not needed
            rows.append((f"dx dy@w    {n}x{k_out}x{k_in}", 2, flops, x, w, dy, np.empty((n, k_in), dtype)))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args(argv)
    rows = products(np.dtype(args.dtype))
    step_flops = sum(r[2] for r in rows)
    total = {"dot": 0.0, "gemm": 0.0}
    print(f"{'product':28s} {'np.dot µs':>10s} {'gemm µs':>9s} {'dot GF/s':>9s} {'gemm GF/s':>9s} {'dot/gemm':>9s}")
    with blas_single_threaded():
        for label, kind, flops, x, w, dy, out in rows:
            for loop in (_dot_loop, _gemm_loop):  # compile and warm
                loop(kind, x, w, dy, out, 10)
            times = {"dot": [], "gemm": []}
            for _ in range(args.rounds):
                for name, loop in (("dot", _dot_loop), ("gemm", _gemm_loop)):
                    start = time.perf_counter()
                    loop(kind, x, w, dy, out, args.reps)
                    times[name].append((time.perf_counter() - start) / args.reps)
            dot, mine = float(np.median(times["dot"])), float(np.median(times["gemm"]))
            total["dot"] += dot
            total["gemm"] += mine
            print(f"{label:28s} {dot * 1e6:10.2f} {mine * 1e6:9.2f} {flops / dot / 1e9:9.1f} {flops / mine / 1e9:9.1f} "
                  f"{dot / mine:8.2f}x")
    dot_us, gemm_us = total["dot"] * 1e6, total["gemm"] * 1e6
    print(f"one MLP step: {step_flops / 1e6:.2f} MFLOP in GEMMs; at the measured rates "
          f"np.dot {dot_us:.1f} µs ({step_flops / dot_us / 1e3:.1f} GFLOP/s), "
          f"gemm {gemm_us:.1f} µs ({step_flops / gemm_us / 1e3:.1f} GFLOP/s)")


if __name__ == "__main__":
    main()
