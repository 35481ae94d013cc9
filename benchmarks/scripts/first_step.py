"""A new process's start-up: ``import nkernels`` and the first training step with a warm cache, by phase.

Run: ``python benchmarks/scripts/first_step.py [--rounds 5] [--tree before=PATH --tree after=.]``
(prints a Markdown table). Each measurement is a fresh interpreter running what a user's first
script runs (``bench_startup.FIRST_STEP``: load digits, build the MLP preset, ``nk.train`` one epoch
of 64 samples), timed by phase in wall-clock and CPU seconds (the CPU figure is the steadier one on
a busy machine). Run it once beforehand so that Numba's on-disk cache and the bytecode caches are
warm: without ``.pyc`` files (``PYTHONDONTWRITEBYTECODE=1`` on a checkout that never wrote them)
every module compiles from source on every start, which costs more than the plugins do.

``--tree NAME=PATH`` (repeatable) measures each nkernels checkout at PATH (put first on
``PYTHONPATH`` with its ``plugins/*`` folders) in the same interleaved rounds.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time
marks = [("start", time.perf_counter(), time.process_time())]
def mark(name):
    marks.append((name, time.perf_counter(), time.process_time()))
import nkernels as nk
mark("import nkernels")
nk.registry.schemes["backprop"]
mark("registries (plugins)")
X, y, _, _ = nk.datasets.load("digits")
model = nk.presets.build("mlp", (64,), 10)
mark("data + model")
nk.train(model, X[:64], y[:64], epochs=1, batch_size=32, seed=0)
mark("first nk.train")
phases = {b[0]: [b[1] - a[1], b[2] - a[2]] for a, b in zip(marks, marks[1:])}
phases["total"] = [marks[-1][1] - marks[0][1], marks[-1][2] - marks[0][2]]
plugin_modules = sorted(m for m in sys.modules if m.startswith("nkernels_") and "." in m)
print(json.dumps({"phases": phases, "plugin_submodules": len(plugin_modules)}))
"""

IMPORT_ONLY = "import sys, time; t = time.perf_counter(); import nkernels; print(time.perf_counter() - t, 'numba' in sys.modules)"


def tree_env(path: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if path is not None:
        root = Path(path).resolve()
        env["PYTHONPATH"] = os.pathsep.join([str(root)] + [str(p) for p in sorted(root.joinpath("plugins").glob("*/"))
                                                           if p.is_dir()])
    return env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH")
    args = parser.parse_args(argv)
    trees = [tuple(t.split("=", 1)) for t in args.tree] or [("this", None)]
    runs: dict[str, list[dict]] = {name: [] for name, _ in trees}
    imports: dict[str, list[float]] = {name: [] for name, _ in trees}
    for round_ in range(args.rounds):
        for name, path in (trees if round_ % 2 == 0 else trees[::-1]):
            env = tree_env(path)
            done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, check=True)
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            done = subprocess.run([sys.executable, "-c", IMPORT_ONLY], capture_output=True, text=True, env=env,
                                  check=True)
            seconds, numba_loaded = done.stdout.split()
            assert numba_loaded == "False", "import nkernels imported numba"
            imports[name].append(float(seconds))
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    phases = list(runs[trees[0][0]][0]["phases"])
    print("| tree | `import nkernels` s | " + " | ".join(f"{p} s wall (CPU)" for p in phases)
          + " | plugin submodules imported |")
    print("|---|---:|" + "---:|" * len(phases) + "---:|")
    for name, _ in trees:
        cells = []
        for p in phases:
            wall = statistics.median(r["phases"][p][0] for r in runs[name])
            cpu = statistics.median(r["phases"][p][1] for r in runs[name])
            cells.append(f"{wall:.3f} ({cpu:.3f})")
        print(f"| {name} | {statistics.median(imports[name]):.3f} | " + " | ".join(cells)
              + f" | {runs[name][-1]['plugin_submodules']} |")


if __name__ == "__main__":
    main()
