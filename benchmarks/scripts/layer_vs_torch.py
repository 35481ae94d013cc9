"""Forward+backward time of nkernels layers against torch.nn, same shapes, both on 2 threads, one process.

Run: ``python benchmarks/layer_vs_torch.py`` (prints a Markdown table; needs torch).
Each figure is the median of many repetitions after a warm-up (compilation excluded).
"""
from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "2")
import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import nkernels as nk  # noqa: E402
from nkernels.cli.bench import median_seconds  # noqa: E402
from nkernels.runtime.threads import blas_single_threaded  # noqa: E402

L = nk.layers
THREADS = 2

#: (name, nkernels layer factory, torch module factory, input shape, output picker)
CASES = [
    ("Conv2D 1->16 3x3 pad1, digits (64,1,8,8)", lambda: L.Conv2D(1, 16, 3, padding=1),
     lambda nn: nn.Conv2d(1, 16, 3, padding=1), (64, 1, 8, 8)),
    ("Conv2D 1->32 5x5, MNIST (128,1,28,28)", lambda: L.Conv2D(1, 32, 5),
     lambda nn: nn.Conv2d(1, 32, 5), (128, 1, 28, 28)),
    ("Conv2D 32->64 5x5, MNIST (128,32,12,12)", lambda: L.Conv2D(32, 64, 5),
     lambda nn: nn.Conv2d(32, 64, 5), (128, 32, 12, 12)),
    ("MaxPool2D 2, digits (64,16,8,8)", lambda: L.MaxPool2D(2), lambda nn: nn.MaxPool2d(2), (64, 16, 8, 8)),
    ("MaxPool2D 2, MNIST (128,32,24,24)", lambda: L.MaxPool2D(2), lambda nn: nn.MaxPool2d(2), (128, 32, 24, 24)),
    ("LSTM 8->64, digits rows (64,8,8)", lambda: L.LSTM(8, 64), lambda nn: nn.LSTM(8, 64, batch_first=True),
     (64, 8, 8)),
    ("LSTM 28->128, MNIST rows (128,28,28)", lambda: L.LSTM(28, 128),
     lambda nn: nn.LSTM(28, 128, batch_first=True), (128, 28, 28)),
]


def measure(repeat: int) -> list[tuple[str, float, float]]:
    """All PyTorch timings first, then all nkernels ones (see nkernels.cli.bench.speedups for why)."""
    import torch
    from torch import nn

    torch.set_num_threads(THREADS)
    rng = np.random.default_rng(0)
    inputs = []
    for name, make, make_torch, shape in CASES:
        layer = make()
        x = rng.standard_normal(shape).astype(np.float32)
        inputs.append((layer, x, rng.standard_normal(layer.output_shape(shape)).astype(np.float32)))
    theirs = []
    for (name, make, make_torch, shape), (layer, x, dy) in zip(CASES, inputs):
        module = make_torch(nn)
        tx, tdy = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dy)
        pick = (lambda out: out[0][:, -1]) if isinstance(module, nn.LSTM) else (lambda out: out)
        theirs.append(median_seconds(lambda: pick(module(tx)).backward(tdy), repeat))
    ours = []
    with blas_single_threaded():
        for layer, x, dy in inputs:
            ours.append(median_seconds(lambda: (layer.forward(x, training=True), layer.backward(dy)), repeat))
    return [(case[0], a, b) for case, a, b in zip(CASES, ours, theirs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    rows = measure(args.repeat)
    print(f"# layer forward+backward, {THREADS} threads, {platform.processor() or platform.machine()}, "
          f"{time.strftime('%Y-%m-%d')}")
    print("| layer and shape | nkernels (µs) | PyTorch (µs) | PyTorch / nkernels |")
    print("|---|---:|---:|---:|")
    for name, ours, theirs in rows:
        print(f"| {name} | {ours * 1e6:,.0f} | {theirs * 1e6:,.0f} | {theirs / ours:.2f}x |")


if __name__ == "__main__":
    main()
