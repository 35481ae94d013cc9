"""PyTorch and nkernels in one process: PyTorch's training step alone and after ``nk.train``, and nkernels' own.

Run: ``python benchmarks/scripts/torch_after_nkernels.py`` (needs torch; prints a Markdown table).

Each measurement runs in a fresh process, and the rounds interleave the cases, so that a busy
machine slows all of them alike; the table gives the median over rounds and the spread (the
fastest and slowest round). The cases, with PyTorch and Numba on 2 threads:

- ``torch alone``: PyTorch's MLP step (64-128-128-10, batch 64, Adam) in a process without nkernels' pool;
- ``torch after nk.train``: the same after ``nk.train`` ran an epoch and torch was imported only then
  (PyTorch then runs on the OpenMP runtime Numba loaded);
- ``nkernels mlp`` and ``nkernels cnn``: nkernels' compiled step (the CNN's kernels run ``prange``
  regions on Numba's OpenMP pool).

``--tree NAME=PATH`` (repeatable) runs every case once per nkernels checkout at PATH (put first
on ``PYTHONPATH``), to compare two versions in the same rounds, e.g. ``--tree before=../main
--tree after=.``. Each process also reports the OpenMP runtimes loaded and, for the calling
thread, OpenMP's nesting setting (``omp_get_max_active_levels``) at the end.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys

CASES = ("torch alone", "torch after nk.train", "nkernels mlp", "nkernels cnn")
THREADS = 2


def _openmp_state() -> list[str]:
    """Each loaded OpenMP runtime with the calling thread's max-active-levels setting."""
    from threadpoolctl import threadpool_info

    rows = []
    for info in threadpool_info():
        if info["user_api"] == "openmp":
            levels = ctypes.CDLL(info["filepath"]).omp_get_max_active_levels()
            rows.append(f"{os.path.basename(info['filepath'])} max_active_levels={levels}")
    return rows


def measure(case: str) -> dict:
    """Seconds per step of ``case`` in this process (see the module docstring)."""
    from nkernels.cli import bench

    mlp = bench.CASES["mlp"]
    if case.startswith("torch"):
        if case == "torch after nk.train":
            import nkernels as nk

            X, y = bench.data(mlp, 10)
            nk.train(mlp.build(), X, y, epochs=1, batch_size=mlp.batch_size, seed=0)
        seconds = bench.torch_step(mlp, threads=THREADS)
    else:
        seconds = bench.nkernels_step(bench.CASES[case.split()[1]])
    return {"case": case, "us": seconds * 1e6, "openmp": _openmp_state()}


def _run_one(case: str, path: str | None) -> dict:
    env = dict(os.environ, NUMBA_NUM_THREADS=str(THREADS))
    if path:
        env["PYTHONPATH"] = os.pathsep.join([os.path.abspath(path)] + env.get("PYTHONPATH", "").split(os.pathsep))
    out = subprocess.run([sys.executable, __file__, "--one", case], env=env, check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="fresh processes per case (default 5)")
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH",
                        help="an nkernels checkout to measure (repeatable); default: the one imported")
    parser.add_argument("--one", choices=CASES, help=argparse.SUPPRESS)  # a child process: one measurement
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one)))
        return 0
    trees = [tuple(tree.split("=", 1)) for tree in args.tree] or [("", None)]
    times: dict[tuple[str, str], list[float]] = {}
    openmp: dict[tuple[str, str], list[str]] = {}
    for _ in range(args.rounds):
        for case in CASES:
            for name, path in trees:
                result = _run_one(case, path)
                times.setdefault((name, case), []).append(result["us"])
                openmp[name, case] = result["openmp"]
    print(f"| case | {'checkout | ' if args.tree else ''}µs per step, median | fastest-slowest | OpenMP at the end |")
    print(f"|---|{'---|' if args.tree else ''}---:|---:|---|")
    for case in CASES:
        for name, _ in trees:
            values = times[name, case]
            cells = [case] + ([name] if args.tree else []) + [
                f"{statistics.median(values):,.0f}", f"{min(values):,.0f}-{max(values):,.0f}",
                "; ".join(openmp[name, case]) or "none loaded"]
            print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
