"""Milliseconds per Lloyd iteration of one side, in a process of its own (issue 24, k-means).

    python -m benchmarks.scripts.kmeans_one_process SIDE CASE [REPEAT]

SIDE is ``nkernels`` or ``sklearn``; CASE one of :data:`benchmarks.bench_kmeans.CASES`. The time per
iteration is :func:`benchmarks.bench_kmeans.seconds_per_iteration` (best-of-REPEAT fits of 6 minus 1
iterations, same data and initial centroids on both sides). With ``KMEANS_CPU_TIME=1`` it counts the
process's CPU time instead of wall time: with one thread on each side (``NUMBA_NUM_THREADS=1
OMP_NUM_THREADS=1``) that is the work itself, which a busy machine disturbs far less than wall time.
Alternate the sides in a shell loop, e.g. for a "before" tree put its plugin first on PYTHONPATH::

    for r in 1 2 3; do for side in nkernels sklearn; do
        python -m benchmarks.scripts.kmeans_one_process $side synthetic100k-k256 3; done; done
"""
import os
import sys
import time

from benchmarks import bench_kmeans as B


def main(argv):
    side, case = argv[0], argv[1]
    repeat = int(argv[2]) if len(argv) > 2 else 3
    if side not in ("nkernels", "sklearn") or case not in B.CASES:
        raise SystemExit(f"usage: SIDE (nkernels or sklearn) CASE ({', '.join(B.CASES)}) [REPEAT]")
    if os.environ.get("KMEANS_CPU_TIME") == "1":
        B.time.perf_counter = time.process_time
    X, init = B.load_case(case)
    fit = B.fit_sklearn if side == "sklearn" else B.fit_nkernels
    fit(X, init, B.LO)  # compile / warm up outside the timing
    print(f"{side} {case} {B.seconds_per_iteration(fit, X, init, repeat=repeat) * 1e3:.3f} ms/iter", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
