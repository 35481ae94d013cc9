"""How long a layer's kernels take to compile from nothing: a new user's first forward and backward.

Run: ``python benchmarks/scripts/layer_compile_time.py [--rounds 2] [--tree before=PATH --tree after=.]
[LAYER ...]`` (LAYER: attention, conv, lstm, layernorm, batchnorm, maxpool; all by default; prints a
Markdown table).

Each measurement is a fresh interpreter with empty caches (``NUMBA_CACHE_DIR`` and
``NKERNELS_CACHE_DIR`` in a new temporary folder) that builds each named layer in turn, float32, and
times its layer-by-layer forward and backward on a tiny batch: almost all of it is Numba compiling
the kernels. Layers share Numba's own helpers (``np.empty``, the BLAS wrapper), so a layer's figure
depends on the ones before it: compare trees in the same order. ``--tree NAME=PATH`` measures each
nkernels checkout at PATH (first on ``PYTHONPATH``), alternating in each round.
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
import nkernels as nk
L = nk.layers
cases = {
    "attention": (lambda: L.MultiHeadAttention(8, 2), (4, 5, 8)),
    "conv": (lambda: L.Conv2D(2, 3, 3, padding=1), (4, 2, 6, 6)),
    "lstm": (lambda: L.LSTM(3, 5), (4, 6, 3)),
    "layernorm": (lambda: L.LayerNorm(8), (4, 8)),
    "batchnorm": (lambda: L.BatchNorm2D(4), (4, 4, 6, 6)),
    "maxpool": (lambda: L.MaxPool2D(2), (4, 4, 6, 6)),
}
rng = np.random.default_rng(0)
seconds = {}
for name in sys.argv[1:]:
    build, shape = cases[name]
    start = time.perf_counter()
    layer = build()
    y = layer.forward(rng.standard_normal(shape).astype(np.float32), training=True)
    layer.backward(np.ones_like(y))
    seconds[name] = time.perf_counter() - start
print(json.dumps(seconds))
"""
LAYERS = ("attention", "conv", "lstm", "layernorm", "batchnorm", "maxpool")


def measure(root: str, layers: list[str]) -> dict:
    """Seconds per layer in one fresh process with empty caches, nkernels from the checkout ``root``."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, PYTHONPATH=os.path.abspath(root), NKERNELS_CACHE_DIR=cache,
                   NUMBA_CACHE_DIR=os.path.join(cache, "numba"))
        done = subprocess.run([sys.executable, "-c", CHILD, *layers], capture_output=True, text=True, env=env,
                              cwd=cache)
    if done.returncode:
        raise RuntimeError(f"{root} failed: {done.stderr[-1000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("layers", nargs="*", default=list(LAYERS), help=f"any of {', '.join(LAYERS)}")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH (repeatable; default: this checkout)")
    args = parser.parse_args()
    unknown = sorted(set(args.layers) - set(LAYERS))
    if unknown:
        parser.error(f"unknown layers {unknown}: expected any of {', '.join(LAYERS)}")
    trees = dict(t.split("=", 1) for t in args.tree) or {"this": "."}
    runs: dict = {name: [] for name in trees}
    for r in range(args.rounds):
        for name, root in list(trees.items()) if r % 2 == 0 else list(reversed(trees.items())):
            runs[name].append(measure(root, args.layers))
    print("| layer | " + " | ".join(f"{name} s (each round)" for name in trees) + " |")
    print("|---|" + "---:|" * len(trees))
    for layer in [*args.layers, "total"]:
        cells = []
        for name in trees:
            values = [sum(run.values()) if layer == "total" else run[layer] for run in runs[name]]
            cells.append(", ".join(f"{v:.1f}" for v in values) + f" (median {statistics.median(values):.1f})")
        print(f"| {layer} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
