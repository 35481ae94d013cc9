"""Held-out accuracy and time to 93% on digits, MLP 64-128-64-10 (seed 0): MAC with its defaults
against nk.train's default backprop, in one process.

Each scheme first trains with validation data to find the first epoch at 93% (and its accuracy
after all its default epochs); then fresh models train exactly that many epochs without validation,
and the median wall time of the repeats (run start included) is reported. A warm-up run first, so
that no compilation is timed.

    python plugins/nkernels-mac/scripts/time_to_accuracy.py [--repeat 5]
"""
import argparse
import time

import numpy as np

import nkernels as nk

L = nk.layers
TARGET = 0.93


def mlp():
    return nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64), L.ReLU(), L.Dense(64, 10)], seed=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    X, y, X_test, y_test = nk.datasets.load("digits")
    print(f"{'scheme':10s} {'epochs':>6s} {'final held-out':>14s} {'epochs to 93%':>13s} {'time to 93% (ms)':>16s}")
    for scheme in ("mac", "backprop"):
        nk.train(mlp(), X, y, scheme=scheme, epochs=1, seed=0)  # warm-up: compile or load every kernel
        history = nk.train(mlp(), X, y, scheme=scheme, seed=0, validation_data=(X_test, y_test))
        curve = history["val_accuracy"]
        reached = next((i + 1 for i, accuracy in enumerate(curve) if accuracy >= TARGET), None)
        times = []
        for _ in range(args.repeat if reached else 0):
            started = time.perf_counter()
            nk.train(mlp(), X, y, scheme=scheme, epochs=reached, seed=0)
            times.append(1e3 * (time.perf_counter() - started))
        to_target = f"{np.median(times):16.1f}" if reached else f"{'never':>16s}"
        print(f"{scheme:10s} {len(curve):6d} {curve[-1]:14.2%} {reached or '-':>13} {to_target}")


if __name__ == "__main__":
    main()
