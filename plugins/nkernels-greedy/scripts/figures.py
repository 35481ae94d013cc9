"""The figures of the greedy plugin: held-out accuracy on digits and time per epoch against backprop.

MLP 64-128-64-10, the 30% stratified held-out split (seed 0), the schemes' defaults (greedy: Adam at
3e-3, batch 32, 10 epochs per stage). All timings come from this one process, interleaved round by
round, so that only their ratios matter. An epoch's time runs from the end of the epoch before to its
own end (everything the epoch costs: the toolkit's divergence snapshot, training, logs); the first
epoch of each stage is left out (it builds the stage):

    python plugins/nkernels-greedy/scripts/figures.py
"""
import time

import numpy as np

import nkernels as nk

L = nk.layers
RUNS = {
    "backprop (20 epochs, lr 3e-3)": ("backprop", {"lr": 3e-3, "epochs": 20}),
    "greedy, the defaults (autoencoders, fine-tuning)": ("greedy", {}),
    "greedy denoising, untied": ("greedy", {"corruption": 0.2, "tied": False}),
    "greedy rbm (CD-1)": ("greedy", {"pretrain": "rbm"}),
    "greedy supervised": ("greedy", {"mode": "supervised"}),
    "greedy supervised, head=32": ("greedy", {"mode": "supervised", "head": 32}),
}


def mlp(seed=0):
    return nk.Sequential([L.Dense(64, 128), L.ReLU(), L.Dense(128, 64), L.ReLU(), L.Dense(64, 10)], seed=seed)


class EpochClock(nk.callbacks.Callback):
    """The time and stage of every epoch's end."""

    def __init__(self):
        self.ends = []

    def on_epoch_end(self, epoch, logs):
        self.ends.append((time.perf_counter(), logs.get("stage", "backprop epoch")))


def main(rounds: int = 7):
    X, y, X_test, y_test = nk.datasets.load("digits")
    print("held-out accuracy (training seeds 0, 1, 2):")
    for name, (scheme, options) in RUNS.items():
        accuracies = []
        for seed in range(3):
            model = mlp()
            nk.train(model, X, y, scheme=scheme, seed=seed, **options)
            accuracies.append(nk.evaluate(model, X_test, y_test)["accuracy"])
        print(f"  {name:50s} " + "  ".join(f"{100 * a:.2f}%" for a in accuracies))
    # per-epoch times of each stage kind, against a backprop epoch of the whole net (round 0 compiles)
    times: dict[str, list] = {}
    kinds = {"backprop": ("backprop", {}), "autoencoder": ("greedy", {"finetune_epochs": 6}),
             "denoising untied autoencoder": ("greedy", {"corruption": 0.2, "tied": False, "finetune_epochs": 0}),
             "rbm": ("greedy", {"pretrain": "rbm", "finetune_epochs": 0}),
             "supervised": ("greedy", {"mode": "supervised"})}
    for round_ in range(rounds + 1):
        for label, (scheme, options) in kinds.items():
            clock = EpochClock()
            nk.train(mlp(), X, y, scheme=scheme, epochs=6, batch_size=32, seed=0, callbacks=[clock], **options)
            for (previous_end, before), (end, stage) in zip(clock.ends, clock.ends[1:]):
                if round_ and stage == before:
                    key = stage if scheme == "backprop" else f"{label}: {stage.split(': ', 1)[1]}"
                    times.setdefault(key, []).append(end - previous_end)
    base = np.median(times["backprop epoch"])
    print("time per epoch, median of every epoch but the first of each stage:")
    for key, values in times.items():
        print(f"  {key:58s} {1e3 * np.median(values):6.2f} ms  {np.median(values) / base:.2f} x backprop")


if __name__ == "__main__":
    main()
