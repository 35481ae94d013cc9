"""Training-step times with ``OPENBLAS_CORETYPE`` unset and set, every measurement in its own process.

Run: ``python benchmarks/scripts/openblas_coretype.py [--coretype Haswell] [--rounds 5] [--cases mlp,cnn]``
(prints a Markdown table). Some environments set ``OPENBLAS_CORETYPE`` for old OpenBLAS builds; it
makes OpenBLAS use that core's kernels (``Haswell``: AVX2) instead of the ones it detects (here
SkylakeX, AVX-512), which slows every BLAS user in the process. nkernels' steps do their GEMMs
through OpenBLAS (NumPy's and SciPy's); PyTorch uses oneDNN/MKL and JAX XLA's own, so the
setting reaches their steps little or not at all. Never set it in tests or CI: this script sets
it only in the children it starts.

Each child is ``nkernels bench``'s own per-process step timer (``nkernels.cli.bench._child``); the
rounds interleave settings, frameworks and cases so that a busy machine slows all alike; the
table gives medians over rounds. Each child also reports the OpenBLAS core type it ran with
(``threadpoolctl``'s ``architecture``). On a busy machine, ``--cpu-time`` runs every child on one
thread and times CPU seconds instead (a ``prange`` region waiting on a descheduled worker makes
wall-clock times of multi-threaded steps meaningless there).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = """
import json, os, sys, time, types
import nkernels.cli.bench as bench
from nkernels.cli.bench import step_seconds
framework, case, n_steps, repeat = sys.argv[1:]
if os.environ.get("NK_CORETYPE_CPU_TIME"):  # this process's CPU seconds instead of wall-clock ones
    bench.time = types.SimpleNamespace(perf_counter=time.process_time)
seconds = step_seconds(framework, case, int(n_steps), int(repeat))
from threadpoolctl import threadpool_info
cores = sorted({i.get("architecture") or "?" for i in threadpool_info() if i.get("internal_api") == "openblas"})
print(json.dumps({"seconds": seconds, "openblas": cores}))
"""


def run_child(framework: str, case: str, coretype: str | None, n_steps: int, repeat: int,
              cpu_time: bool = False) -> dict:
    """One timing in a fresh interpreter with ``OPENBLAS_CORETYPE`` unset (``None``) or set; with
    ``cpu_time``, on one thread (Numba, OpenMP, OpenBLAS) and timed in the process's CPU seconds."""
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    if cpu_time:
        env.update(NK_CORETYPE_CPU_TIME="1", NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    if coretype is not None:
        env["OPENBLAS_CORETYPE"] = coretype
    done = subprocess.run([sys.executable, "-c", CHILD, framework, case, str(n_steps), str(repeat)],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--coretype", default="Haswell", help="the setting compared with unset (default Haswell)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cases", default="mlp,cnn")
    parser.add_argument("--frameworks", default="nkernels,torch,jax")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--cpu-time", action="store_true",
                        help="one thread everywhere, timed in CPU seconds: steadier on a busy machine")
    args = parser.parse_args(argv)
    cases, frameworks = args.cases.split(","), args.frameworks.split(",")
    settings = [None, args.coretype]
    times: dict[tuple, list[float]] = {}
    cores: dict[tuple, set] = {}
    errors: dict[tuple, str] = {}
    for round_ in range(args.rounds):
        order = settings if round_ % 2 == 0 else settings[::-1]
        for case in cases:
            for framework in frameworks:
                for setting in order:
                    key = (case, framework, setting)
                    result = run_child(framework, case, setting, args.steps, args.repeat, args.cpu_time)
                    if "error" in result:
                        errors[key] = result["error"]
                        continue
                    times.setdefault(key, []).append(result["seconds"])
                    cores.setdefault(key, set()).update(result["openblas"])
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    label = f"OPENBLAS_CORETYPE={args.coretype}"
    print(f"| case | framework | unset µs | {label} µs | set / unset | OpenBLAS core (unset; set) |")
    print("|---|---|---:|---:|---:|---|")
    for case in cases:
        for framework in frameworks:
            unset, setv = times.get((case, framework, None)), times.get((case, framework, args.coretype))
            if not unset or not setv:
                print(f"| {case} | {framework} | {errors.get((case, framework, None), '-')} | "
                      f"{errors.get((case, framework, args.coretype), '-')} | | |")
                continue
            a, b = statistics.median(unset) * 1e6, statistics.median(setv) * 1e6
            core = "; ".join(",".join(sorted(cores.get((case, framework, s), ()))) or "none" for s in settings)
            print(f"| {case} | {framework} | {a:,.0f} | {b:,.0f} | {b / a:.2f}x | {core} |")
    for case in cases:
        nk = [times.get((case, "nkernels", s)) for s in settings]
        for peer in frameworks:
            if peer == "nkernels" or not all(nk):
                continue
            for s in settings:
                p = times.get((case, peer, s))
                if p:
                    print(f"{case}: {peer} / nkernels with {s or 'unset'}: "
                          f"{statistics.median(p) / statistics.median(times[(case, 'nkernels', s)]):.2f}x")


if __name__ == "__main__":
    main()
