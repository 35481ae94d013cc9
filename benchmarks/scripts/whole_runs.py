"""Whole training runs (data handling, epochs and all) of nkernels, PyTorch and JAX, each in its own process.

Run: ``python benchmarks/scripts/whole_runs.py [--rounds 3] [--epochs 20] [--repeat 3] [--cases mlp,lstm-h64-t8]``
(prints a Markdown table).

Each framework trains the same model (by default ``nkernels bench``'s cases whose samples hold 64
numbers, the digits' 8 x 8 pixels: the MLP, the digits CNN, LSTM(8->64) and GRU(8->64) reading 8 steps
of 8 pixels, the transformer and resnet presets; ``--cases`` picks some, or others) on the digits
training split with Adam (lr 1e-3), at the case's batch size (the last, partial batch included), the
samples shuffled every epoch, for ``--epochs`` epochs. A case whose samples are not 64 numbers (LeNet,
the 40-step recurrent cases) trains on ``nkernels bench``'s random numbers instead: ``--random-batches``
batches' worth of samples and a half batch more, so that each epoch ends on a partial batch as the
digits' do (the speed hardly depends on the values). Each framework:

- nkernels: ``nk.train(model, X, y, epochs=..., batch_size=..., seed=...)`` on a new model each run;
- PyTorch eager: a new ``torch.optim.Adam`` each run, batches gathered from tensors by a fresh
  permutation each epoch, ``torch.set_num_threads`` as many as the cores this process may use;
- JAX: the ``jax.jit`` training step of :mod:`nkernels.cli.bench_jax` (the twin of the same model),
  batches gathered on the host by a fresh permutation each epoch, ``block_until_ready`` at the end.

Before the timed runs each child makes one untimed run of one epoch, which compiles (JAX), loads
Numba's on-disk cache (nkernels) or warms up (PyTorch); its time is reported apart ("first run of 1
epoch"). The timed figure is the median of ``--repeat`` whole runs; the rounds interleave frameworks
and cases so that a busy machine slows all alike, and the table gives the median over rounds, and the
range of the ratio taken within each round (a machine's slow periods last minutes, and slow the
two-threaded nkernels more than a peer: the range shows when a round fell into one). On a busy
machine multi-threaded runs stall (a parallel region waits on a descheduled worker): ``--threads 1``
runs every framework on one thread.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

FRAMEWORKS = ("nkernels", "torch", "jax")


def _training_data(case, random_batches: int):
    """The digits training split for a case whose samples hold its 64 pixels; for another case the
    bench's random numbers, ``random_batches`` and a half batches of them."""
    import math

    import numpy as np

    import nkernels as nk

    if math.prod(case.sample_shape) != 64:
        from nkernels.cli.bench import data

        nk.registry.schemes["backprop"]  # the plugins load here, as loading the digits loads them, not in a timed run

        X, y = data(case, random_batches + 1)
        n = random_batches * case.batch_size + case.batch_size // 2
        return np.ascontiguousarray(X[:n]), np.asarray(y[:n], np.int64)
    X, y, _, _ = nk.datasets.load("digits")
    X = np.ascontiguousarray(np.asarray(X, np.float32).reshape((len(X),) + case.sample_shape))
    return X, np.asarray(y, np.int64)


def _digits_cases() -> list[str]:
    """The default cases of ``nkernels bench`` whose samples hold the digits' 64 pixels."""
    import math

    from nkernels.cli.bench import CASES

    return [name for name, case in CASES.items() if case.default and math.prod(case.sample_shape) == 64]


def _nkernels_run(case, X, y, epochs, seed):
    import nkernels as nk

    history = nk.train(case.build(), X, y, epochs=epochs, batch_size=case.batch_size, seed=seed)
    return history["loss"][-1]


def _torch_runner(case):
    import numpy as np
    import torch
    from torch import nn

    torch.set_num_threads(int(os.environ.get("NK_WHOLE_THREADS") or len(os.sched_getaffinity(0))))

    def run(X, y, epochs, seed):
        rng = np.random.default_rng(seed)
        model = case.build_torch(nn)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        for _ in range(epochs):
            order = torch.from_numpy(rng.permutation(len(X)))
            total = 0.0
            for start in range(0, len(X), case.batch_size):
                idx = order[start:start + case.batch_size]
                optimizer.zero_grad()
                loss = loss_fn(model(Xt[idx]), yt[idx])
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(idx)
        return total / len(X)

    return run


def _jax_runner(case):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from nkernels.cli.bench_jax import _train_step

    step = _train_step(case)

    def run(X, y, epochs, seed):
        rng = np.random.default_rng(seed)
        params = {k: jnp.array(v) for k, v in case.build().params.items()}
        state = ({k: jnp.zeros_like(a) for k, a in params.items()}, {k: jnp.zeros_like(a) for k, a in params.items()})
        y32, t = y.astype(np.int32), 0
        for _ in range(epochs):
            order = rng.permutation(len(X))
            losses = []
            for start in range(0, len(X), case.batch_size):
                idx = order[start:start + case.batch_size]
                t += 1
                params, state, loss = step(params, state, t, X[idx], y32[idx])
                losses.append((loss, len(idx)))
        jax.block_until_ready((params, state))
        return sum(float(loss) * n for loss, n in losses) / len(X)

    return run


def child(framework: str, case_name: str, epochs: int, repeat: int, random_batches: int = 10) -> dict:
    """One framework on one case in this process: the first (compiling) run of one epoch, then the
    median of ``repeat`` whole runs of ``epochs`` epochs."""
    if framework == "torch":
        import torch  # noqa: F401  (first: its OpenMP runtime before any other)
    from nkernels.cli.bench import CASES

    case = CASES[case_name]
    X, y = _training_data(case, random_batches)
    run = {"nkernels": lambda: lambda X, y, e, s: _nkernels_run(case, X, y, e, s),
           "torch": lambda: _torch_runner(case), "jax": lambda: _jax_runner(case)}[framework]()
    start = time.perf_counter()
    run(X, y, 1, 0)
    first = time.perf_counter() - start
    times, cpu, loss = [], [], None
    for r in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        loss = run(X, y, epochs, r + 1)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    from nkernels.kernels.cpu.blas import openblas_cores

    blas = sorted(set(openblas_cores()))
    return {"first": first, "run": statistics.median(times), "cpu": statistics.median(cpu), "loss": float(loss),
            "n": len(X), "openblas": blas}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cases", default=None, help="comma-separated case names (default: every default case "
                        "of nkernels bench whose samples are the digits' 64 pixels)")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--random-batches", type=int, default=10,
                        help="for a case whose samples are not the digits' 64 pixels: how many batches of random "
                             "numbers (and a half batch more) an epoch trains on")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every framework (Numba, OpenMP, OpenBLAS, torch; 1 also makes XLA's CPU "
                             "client single-threaded); default: as many as the cores")
    parser.add_argument("--child", nargs=2, metavar=("FRAMEWORK", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.epochs, args.repeat, args.random_batches)))
        return
    cases, frameworks = (args.cases.split(",") if args.cases else _digits_cases()), args.frameworks.split(",")
    env = dict(os.environ)
    if args.threads:
        n = str(args.threads)
        env.update(NK_WHOLE_THREADS=n, NUMBA_NUM_THREADS=n, OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n)
        if args.threads == 1:
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                                "intra_op_parallelism_threads=1").strip()
    results: dict[tuple[str, str], list[dict]] = {}
    errors: dict[tuple[str, str], str] = {}
    for round_ in range(args.rounds):
        for case in cases:
            for framework in (frameworks if round_ % 2 == 0 else frameworks[::-1]):
                done = subprocess.run([sys.executable, __file__, "--child", framework, case, "--epochs",
                                       str(args.epochs), "--repeat", str(args.repeat), "--random-batches",
                                       str(args.random_batches)], capture_output=True, text=True, env=env)
                if done.returncode != 0:
                    errors[case, framework] = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
                    continue
                result = json.loads(done.stdout.strip().splitlines()[-1])
                results.setdefault((case, framework), []).append({**result, "round": round_})
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    print(f"| case | framework | whole run of {args.epochs} epochs, s (CPU s) | first run of 1 epoch (compile/cache "
          f"load), s | final epoch's loss | peer / nkernels |")
    print("|---|---|---:|---:|---:|---:|")
    for case in cases:
        nk = results.get((case, "nkernels"))
        nk_run = statistics.median(r["run"] for r in nk) if nk else None
        for framework in frameworks:
            rows = results.get((case, framework))
            if not rows:
                print(f"| {case} | {framework} | {errors.get((case, framework), '-')} | | | |")
                continue
            run = statistics.median(r["run"] for r in rows)
            first = statistics.median(r["first"] for r in rows)
            loss = statistics.median(r["loss"] for r in rows)
            cpu = statistics.median(r["cpu"] for r in rows)
            ratio = ""
            if nk_run and framework != "nkernels":
                nk_by_round = {n["round"]: n["run"] for n in nk}  # the two minutes apart, in one round
                by_round = [r["run"] / nk_by_round[r["round"]] for r in rows if r["round"] in nk_by_round]
                ratio = f"{run / nk_run:.2f}x" + (f" ({min(by_round):.2f}-{max(by_round):.2f}x by round)" if by_round else "")
            print(f"| {case} | {framework} | {run:.3f} ({cpu:.3f}) | {first:.3f} | {loss:.3f} | {ratio} |")
    kernels = sorted({core for (_, framework), rows in results.items() if framework == "nkernels"
                      for r in rows for core in r.get("openblas", [])})
    print(f"\nnkernels' OpenBLAS kernels: {', '.join(kernels) or 'none loaded'} (OPENBLAS_CORETYPE="
          f"{env.get('OPENBLAS_CORETYPE', 'unset')}; nkernels info says whether they use the CPU's AVX-512)")


if __name__ == "__main__":
    main()
