"""The figures of the ff plugin: held-out accuracy on digits and time per epoch against backprop.

The 30% stratified held-out split (seed 0); ff with its defaults (Adam, lr 3e-3, 40 epochs, batch 64,
threshold 2, hardest negatives; random negatives on the second line of each model) on two models:
the reference's two 500-unit layers, and the hidden layers of the MLP 64-128-64-10 that ``nkernels
compare`` uses. All timings come from this one process, interleaved round by round, with the same
data and batch size, so that only their ratios matter:

    python plugins/nkernels-ff/scripts/figures.py
"""
import numpy as np

import nkernels as nk
from nkernels_ff import ForwardForward, ff_model

L = nk.layers
MODELS = {"2 x 500": (500, 500), "128-64": (128, 64)}


def mlp(seed=0):
    return nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64), L.ReLU(), L.Dense(64, 10)], seed=seed)


def accuracies():
    """Held-out accuracy of every model and kind of negatives, seeds 0, 1, 2."""
    X, y, X_test, y_test = nk.datasets.load("digits")
    print("held-out accuracy of ff with its defaults, seeds 0, 1, 2 (and the epochs to reach 95%, seed 0):")
    for label, widths in MODELS.items():
        for negatives in ("hardest", "random"):
            accuracies, reached = [], None
            for seed in range(3):
                history = nk.train(ff_model(64, 10, widths, seed=seed), X, y, scheme="ff", seed=seed,
                                   negatives=negatives, validation_data=(X_test, y_test))
                accuracies.append(history["val_accuracy"][-1])
                if seed == 0:
                    reached = next((i + 1 for i, a in enumerate(history["val_accuracy"]) if a >= 0.95), None)
            print(f"  {label:8s} {negatives:8s} " + "  ".join(f"{100 * a:.2f}%" for a in accuracies)
                  + f"   95% after {reached} epochs")


def times(rounds: int = 5):
    """Time per epoch of ff (both kinds of negatives) and backprop, interleaved round by round."""
    X, y, _, _ = nk.datasets.load("digits")
    runs = {"backprop": lambda: nk.train(mlp(), X, y, epochs=6, batch_size=64, seed=0),
            **{f"ff {n}": (lambda n=n: nk.train(ForwardForward().adapt_model(mlp(), 64, 10), X, y, scheme="ff",
                                                 negatives=n, epochs=6, batch_size=64, seed=0))
               for n in ("hardest", "random")}}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            seconds[name] += run()["time"][1:]
    base = np.median(seconds["backprop"])
    print("time per epoch on the MLP 64-128-64-10 (ff: its hidden layers), batch 64, median (fastest) of every "
          "epoch but the first of each run:")
    for name, values in seconds.items():
        print(f"  {name:11s} {1e3 * np.median(values):6.2f} ms ({1e3 * np.min(values):6.2f})  "
              f"{np.median(values) / base:.2f} x backprop")


if __name__ == "__main__":
    accuracies()
    times()
