"""Time to 93% held-out accuracy on digits, MLP 64-128-64-10: ADMM against backprop, in one process.

For each scheme, a run with validation finds the first epoch (iteration) at 93%; then fresh
models train exactly that many epochs without validation, and the median time of the repeats
is reported (after a warm-up run, so that no compilation is timed).

    python plugins/nkernels-admm/scripts/time_to_accuracy.py [--repeat 5]
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
    schemes = {"admm (beta 1, gamma 10, hinge)": dict(scheme="admm"),
               "backprop (adam, lr 1e-3, batch 32)": dict(scheme="backprop", optimizer="adam", lr=1e-3,
                                                          batch_size=32, seed=0),
               "backprop (adam, lr 3e-3, batch 32)": dict(scheme="backprop", optimizer="adam", lr=3e-3,
                                                          batch_size=32, seed=0)}
    print(f"{'scheme':38s} {'epochs':>6s} {'held-out':>9s} {'time (ms)':>10s}")
    for name, options in schemes.items():
        nk.train(mlp(), X, y, epochs=1, **options)  # warm-up: compile or load every kernel
        history = nk.train(mlp(), X, y, epochs=60, validation_data=(X_test, y_test), **options)
        reached = [i for i, acc in enumerate(history["val_accuracy"]) if acc >= TARGET]
        if not reached:
            print(f"{name:38s} never reached {TARGET:.0%} in 60 epochs")
            continue
        epochs = reached[0] + 1
        times = []
        for _ in range(args.repeat):
            model = mlp()
            started = time.perf_counter()
            nk.train(model, X, y, epochs=epochs, **options)
            times.append(time.perf_counter() - started)
        accuracy = nk.evaluate(model, X_test, y_test)["accuracy"]
        print(f"{name:38s} {epochs:6d} {accuracy:9.2%} {1e3 * np.median(times):10.1f}")


if __name__ == "__main__":
    main()
