"""The figures of the greedy plugin: held-out accuracy on digits and time per epoch against backprop.

MLP 64-128-64-10, the 30% stratified held-out split (seed 0), Adam, batch 32. All timings come from
this one process, interleaved round by round, so that only their ratios matter:

    python plugins/nkernels-greedy/scripts/figures.py
"""
import numpy as np

import nkernels as nk

L = nk.layers
EPOCHS = 10
RUNS = {
    "backprop (20 epochs)": ("backprop", {"lr": 3e-3}, 20),
    "greedy autoencoder + fine-tuning": ("greedy", {"lr": 3e-3, "finetune_epochs": 10}, EPOCHS),
    "greedy denoising, untied + fine-tuning": ("greedy", {"lr": 3e-3, "finetune_epochs": 10, "corruption": 0.2,
                                                          "tied": False}, EPOCHS),
    "greedy rbm (CD-1) + fine-tuning": ("greedy", {"lr": 3e-3, "finetune_epochs": 10, "pretrain": "rbm"}, EPOCHS),
    "greedy supervised": ("greedy", {"lr": 3e-3, "mode": "supervised"}, EPOCHS),
}


def mlp(seed=0):
    return nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64), L.ReLU(), L.Dense(64, 10)], seed=seed)


def main(rounds: int = 7):
    X, y, X_test, y_test = nk.datasets.load("digits")
    print("held-out accuracy (seeds 0, 1, 2):")
    for name, (scheme, options, epochs) in RUNS.items():
        accuracies = []
        for seed in range(3):
            model = mlp(seed)
            nk.train(model, X, y, scheme=scheme, epochs=epochs, batch_size=32, seed=seed, **options)
            accuracies.append(nk.evaluate(model, X_test, y_test)["accuracy"])
        print(f"  {name:40s} " + "  ".join(f"{100 * a:.2f}%" for a in accuracies))
    # per-epoch times of each stage kind, against a backprop epoch of the whole net
    times: dict[str, list] = {}
    kinds = {"backprop epoch": ("backprop", {}), "autoencoder": ("greedy", {"finetune_epochs": 6}),
             "denoising untied autoencoder": ("greedy", {"corruption": 0.2, "tied": False}),
             "rbm": ("greedy", {"pretrain": "rbm"}), "with its head": ("greedy", {"mode": "supervised"})}
    for _ in range(rounds):
        for label, (scheme, options) in kinds.items():
            history = nk.train(mlp(), X, y, scheme=scheme, epochs=6, batch_size=32, seed=0, **options)
            stages = history["stage"] if "stage" in history else [label] * history.epochs
            for stage in dict.fromkeys(stages):
                epochs = [t for t, s in zip(history["time"], stages) if s == stage][1:]
                key = label if scheme == "backprop" else f"{label}: {stage.split(': ', 1)[1]}"
                times.setdefault(key, []).extend(epochs)
    # the fastest epoch is the figure least disturbed by other processes; the median is shown too
    base = np.min(times["backprop epoch"])
    print("time per epoch, fastest (median) of every epoch but the first of each stage:")
    for key, values in times.items():
        print(f"  {key:58s} {1e3 * np.min(values):6.2f} ms ({1e3 * np.median(values):6.2f})  "
              f"{np.min(values) / base:.2f} x backprop")


if __name__ == "__main__":
    main()
