"""How long a new compiled step takes to compile when its kernels are already cached (or, with
``--cold``, when nothing is: a new user's first run).

Run: ``python benchmarks/scripts/step_compile_time.py [--rounds 3] [--cold] [--tree before=PATH --tree after=.]
CASE ...`` (CASE: the names of ``nkernels bench``'s cases; prints a Markdown table).

Each measurement is a fresh interpreter with an empty step cache (``NKERNELS_CACHE_DIR`` in a new
temporary folder) that builds the case's trainer and times its first run of one batch (typing,
optimizing and compiling the generated step; the kernels load from Numba's cache) and then a second
run (the step itself). A warm-up process per tree and case fills the kernels' caches first.
With ``--cold`` Numba's cache is a new temporary folder too (``NUMBA_CACHE_DIR``) and there is no
warm-up: the first run compiles every kernel of the case as well. ``--tree NAME=PATH`` measures each
nkernels checkout at PATH (first on ``PYTHONPATH`` with its ``plugins/*`` folders), alternating in
each round.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
import numpy as np
from nkernels.cli import bench
from nkernels.losses import MSE, SoftmaxCrossEntropy
from nkernels.optimizers import Adam
from nkernels.trainers import make_trainer
case = bench.CASES[sys.argv[1]]
X, y = bench.data(case, 2)
loss = SoftmaxCrossEntropy()
trainer = make_trainer(case.build(), loss, Adam(lr=1e-3), case.sample_shape, case.batch_size, split_batches=False)
X = X.reshape(len(X), -1)
times = []
for _ in range(2):
    start = time.perf_counter()
    trainer.run(X, y, np.arange(len(X)), 0, 1, case.batch_size)
    times.append(time.perf_counter() - start)
print(json.dumps({"first": times[0], "second": times[1]}))
"""


def tree_path(root: str) -> str:
    """PYTHONPATH putting the checkout ``root`` and each of its plugin folders first."""
    plugins = os.path.join(root, "plugins")
    return os.pathsep.join([root] + [os.path.join(plugins, d) for d in sorted(os.listdir(plugins))
                                     if os.path.isdir(os.path.join(plugins, d))])


def measure(root: str, case: str, cold: bool = False) -> dict:
    """One fresh process's first and second run of ``case`` with an empty step cache (and with ``cold``,
    an empty kernel cache)."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, PYTHONPATH=tree_path(root), NKERNELS_CACHE_DIR=cache)
        if cold:
            env["NUMBA_CACHE_DIR"] = os.path.join(cache, "numba")
        done = subprocess.run([sys.executable, "-c", CHILD, case], capture_output=True, text=True, env=env,
                              cwd=os.path.dirname(os.path.abspath(root)))
    if done.returncode:
        raise RuntimeError(f"{case} in {root} failed: {done.stderr[-1000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="+")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="empty kernel caches too, and no warm-up")
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH (repeatable; default: this checkout)")
    args = parser.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree) or {"this": "."}
    for root in trees.values() if not args.cold else ():
        for case in args.cases:
            measure(root, case)  # warm the kernels' caches
    results: dict = {(name, case): [] for name in trees for case in args.cases}
    for r in range(args.rounds):
        order = list(trees.items()) if r % 2 == 0 else list(reversed(trees.items()))
        for case in args.cases:
            for name, root in order:
                results[(name, case)].append(measure(root, case, args.cold))
    print("| case | " + " | ".join(f"{n} first run s | {n} step ms" for n in trees) + " |")
    print("|---|" + "---:|---:|" * len(trees))
    for case in args.cases:
        cells = []
        for name in trees:
            runs = results[(name, case)]
            cells += [f"{statistics.median(r['first'] for r in runs):.2f}",
                      f"{1e3 * statistics.median(r['second'] for r in runs):.2f}"]
        print(f"| {case} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
