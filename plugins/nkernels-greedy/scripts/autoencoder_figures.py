"""The figures of the autoencoder scheme: digits features from the first hidden layer of an autoencoder
64-128-64 with a logistic-regression head, and the time of an epoch against backprop.

Held-out accuracy on the 30% stratified split (seed 0) of scikit-learn's LogisticRegression(max_iter=5000)
on: the raw pixels; the untrained layer Dense(64, 128) + ReLU; the same layer after the autoencoder
scheme's defaults (30% of the inputs masked, 30 epochs, Adam at 1e-3, batch 32), without corruption, with
Gaussian noise instead, and with binary cross-entropy.
Model and training seeds 0, 1, 2. Then the median time of an epoch (batch 32, Adam) of the denoising
autoencoder, the plain one and backprop on the classifier 64-128-64-10, interleaved round by round in
this one process, so that only their ratios matter:

    python plugins/nkernels-greedy/scripts/autoencoder_figures.py
"""
import numpy as np
from sklearn.linear_model import LogisticRegression

import nkernels as nk
from figures import mlp  # the greedy figures' classifier 64-128-64-10, this script's neighbour

L = nk.layers


def autoencoder(seed=0):
    """The autoencoder 64-128-64: the hidden layer and its ReLU, and a linear decoder."""
    return nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64)], seed=seed)


def head_accuracy(features, X, y, X_test, y_test):
    """The held-out accuracy of a logistic-regression head on ``features(X)``."""
    head = LogisticRegression(max_iter=5000).fit(features(X), y)
    return head.score(features(X_test), y_test)


def main(rounds: int = 7):
    X, y, X_test, y_test = nk.datasets.load("digits")
    print(f"raw pixels: {100 * head_accuracy(lambda A: A, X, y, X_test, y_test):.2f}%")
    rows = {"untrained Dense(64, 128) + ReLU": None, "autoencoder, the defaults (corruption=0.3)": {},
            "autoencoder, corruption=0": {"corruption": 0.0}, "autoencoder, noise_std=0.1": {"noise_std": 0.1},
            "autoencoder, loss=bce_with_logits": {"loss": "bce_with_logits"}}
    for name, options in rows.items():
        accuracies = []
        for seed in range(3):
            model = autoencoder(seed)
            scheme = nk.registry.schemes["autoencoder"](**(options or {}))
            if options is not None:
                nk.train(model, X, scheme=scheme, seed=seed)
            accuracies.append(head_accuracy(scheme.encoder(model).predict, X, y, X_test, y_test))
        print(f"  {name:45s} " + "  ".join(f"{100 * a:.2f}%" for a in accuracies))
    runs = {"backprop (64-128-64-10)": ("backprop", (X, y), {}), "denoising autoencoder": ("autoencoder", (X,), {}),
            "plain autoencoder": ("autoencoder", (X,), {"corruption": 0.0})}
    times: dict[str, list] = {name: [] for name in runs}
    for round_ in range(rounds + 1):  # round 0 compiles
        for name, (scheme, data, options) in runs.items():
            model = mlp() if scheme == "backprop" else autoencoder()
            history = nk.train(model, *data, scheme=scheme, epochs=3, batch_size=32, seed=0, **options)
            if round_:
                times[name] += history["time"]
    base = np.median(times["backprop (64-128-64-10)"])
    print("time per epoch (median):")
    for name, values in times.items():
        print(f"  {name:30s} {1e3 * np.median(values):6.2f} ms  {np.median(values) / base:.2f} x backprop")


if __name__ == "__main__":
    main()
