"""The figures of the gan plugin: digits from the gan preset trained with the scheme's defaults.

For seeds 0 and 1: the gan preset (generator 16-128-64 with a Sigmoid, discriminator 64-128-1),
300 epochs of batches of 64, Adam (lr 1e-3, betas 0.5 and 0.999); 1,000 samples judged by
nkernels_gan.quality (a logistic regression trained on the real training pixels). Then the time
of one epoch against one backprop epoch of the discriminator on labelled real/fake data:

    python plugins/nkernels-gan/scripts/figures.py
"""
import numpy as np

import nkernels as nk
from nkernels_gan import quality


def main(rounds: int = 5):
    X, y, X_test, y_test = nk.datasets.load("digits")
    data_range = (float(X.min()), float(X.max()))
    print("1,000 samples, seeds 0 and 1: classes (of 10), mean top-class probability, diversity, novelty")
    for seed in (0, 1):
        G, D = nk.presets.gan(X.shape[1:], data_range=data_range, seed=seed)
        history = nk.train(D, X, scheme="gan", generator=G, seed=seed)
        q = quality(nk.sample(G, 1000, seed=seed), X, y, X_test, y_test)
        print(f"  seed {seed}: {q['classes']}/{q['n_classes']} classes, confidence {q['confidence']:.3f} "
              f"(real test digits {q['real_confidence']:.3f}), diversity {q['diversity']:.2f}, "
              f"novelty {q['novelty']:.2f}; {np.median(history['time']) * 1e3:.1f} ms per epoch")
    times: dict[str, list[float]] = {"gan": [], "backprop": []}
    labels = np.arange(len(X)) % 2  # the discriminator's shape of task: one logit per sample
    for _ in range(rounds):
        G, D = nk.presets.gan(X.shape[1:], data_range=data_range, seed=0)
        times["gan"] += nk.train(D, X, scheme="gan", generator=G, epochs=6, seed=0)["time"][1:]
        _, D = nk.presets.gan(X.shape[1:], data_range=data_range, seed=0)
        times["backprop"] += nk.train(D, X, labels, epochs=6, batch_size=64, seed=0,
                                      loss="bce_with_logits")["time"][1:]
    base = np.median(times["backprop"])
    print("time per epoch (batches of 64), median of every epoch but the first of each run:")
    for name, values in times.items():
        print(f"  {name:9s} {1e3 * np.median(values):7.2f} ms  {np.median(values) / base:.2f} x backprop")


if __name__ == "__main__":
    main()
