"""The figures of the sg plugin: held-out accuracy on digits and time per epoch against backprop.

MLP 64-128-64-10 on the digits split of ``nk.datasets.load("digits")``; sg with its defaults (Adam,
lr 1e-3 for the blocks and the predictors, 60 epochs, batch 32), conditioned and not, and the
unconditioned variant with ``predictor_lr=1e-2``; backprop with the same epochs and batch size.
All timings come from this one process, interleaved round by round, with the same model, data and
batch size, so that only their ratios matter:

    python plugins/nkernels-sg/scripts/figures.py
"""
import numpy as np

import nkernels as nk

L = nk.layers
#: row name -> (scheme, options)
RUNS = {"backprop": ("backprop", {}),
        "sg": ("sg", {}),
        "sg conditioned=False": ("sg", {"conditioned": False}),
        "sg conditioned=False predictor_lr=1e-2": ("sg", {"conditioned": False, "predictor_lr": 1e-2})}


def mlp(seed=0):
    return nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64), L.ReLU(), L.Dense(64, 10)], seed=seed)


def make(scheme, options):
    return nk.registry.schemes[scheme](**options)


def main(rounds: int = 7):
    X, y, X_test, y_test = nk.datasets.load("digits")
    print("held-out accuracy after 60 epochs (seeds 0, 1, 2):")
    for name, (scheme, options) in RUNS.items():
        accuracies = []
        for seed in range(3):
            model = mlp(seed)
            nk.train(model, X, y, scheme=make(scheme, options), epochs=60, batch_size=32, seed=seed)
            accuracies.append(nk.evaluate(model, X_test, y_test)["accuracy"])
        print(f"  {name:40s} " + "  ".join(f"{100 * a:.2f}%" for a in accuracies))
    times: dict[str, list[float]] = {name: [] for name in RUNS}
    for _ in range(rounds):
        for name, (scheme, options) in RUNS.items():
            history = nk.train(mlp(), X, y, scheme=make(scheme, options), epochs=6, batch_size=32, seed=0)
            times[name] += history["time"][1:]
    # the median is the figure; the fastest epoch, the one least disturbed by other processes, is shown too
    base = np.median(times["backprop"])
    print("time per epoch, median (fastest) of every epoch but the first of each run:")
    for name, values in times.items():
        print(f"  {name:40s} {1e3 * np.median(values):6.2f} ms ({1e3 * np.min(values):6.2f})  "
              f"{np.median(values) / base:.2f} x backprop")


if __name__ == "__main__":
    main()
