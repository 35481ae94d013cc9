"""The figures of the feedback plugin: held-out accuracy on digits and time per epoch against backprop.

MLP 64-128-64-10, the 30% stratified held-out split (seed 0), each scheme with its defaults (dfa
and fa: Adam, lr 1e-3, 30 epochs, batch 32). All timings come from this one process, interleaved
round by round, with the same model, data and batch size, so that only their ratios matter:

    python plugins/nkernels-feedback/scripts/figures.py
"""
import numpy as np

import nkernels as nk

L = nk.layers
SCHEMES = ("backprop", "dfa", "fa")


def mlp(seed=0):
    return nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64), L.ReLU(), L.Dense(64, 10)], seed=seed)


def main(rounds: int = 7):
    X, y, X_test, y_test = nk.datasets.load("digits")
    print("held-out accuracy with each scheme's defaults (seeds 0, 1, 2):")
    for scheme in SCHEMES:
        accuracies = []
        for seed in range(3):
            model = mlp(seed)
            nk.train(model, X, y, scheme=scheme, seed=seed)
            accuracies.append(nk.evaluate(model, X_test, y_test)["accuracy"])
        print(f"  {scheme:9s} " + "  ".join(f"{100 * a:.2f}%" for a in accuracies))
    times: dict[str, list[float]] = {scheme: [] for scheme in SCHEMES}
    for _ in range(rounds):
        for scheme in SCHEMES:
            history = nk.train(mlp(), X, y, scheme=scheme, epochs=6, batch_size=32, seed=0)
            times[scheme] += history["time"][1:]
    # the median is the figure; the fastest epoch, the one least disturbed by other processes, is shown too
    base = np.median(times["backprop"])
    print("time per epoch, median (fastest) of every epoch but the first of each run:")
    for scheme, values in times.items():
        print(f"  {scheme:9s} {1e3 * np.median(values):6.2f} ms ({1e3 * np.min(values):6.2f})  "
              f"{np.median(values) / base:.2f} x backprop")


if __name__ == "__main__":
    main()
