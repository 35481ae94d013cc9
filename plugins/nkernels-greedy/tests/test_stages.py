"""Runs of several greedy stages on the scheme toolkit: a resume inside any stage ends as the uninterrupted run,
the divergence guard in a later stage, and the learning rate callbacks set reaching the stage's optimizer."""
import shutil

import numpy as np
import pytest

import nkernels as nk
from nkernels.callbacks import Callback

L = nk.layers

#: runs of several stages (two epochs each): pretraining (autoencoder, RBM) or heads, the output block, fine-tuning
RUNS = {
    "autoencoder": {"corruption": 0.1, "tied": False, "finetune_epochs": 2, "schedule": "cosine"},
    "rbm": {"pretrain": "rbm", "finetune_epochs": 2},
    "supervised": {"mode": "supervised", "head": 8, "finetune_epochs": 2},
}


def mlp():
    return nk.Sequential([L.Dense(64, 16), L.ReLU(), L.Dense(16, 12), L.ReLU(), L.Dense(12, 10)], seed=0)


def same_weights(a, b):
    for key, value in a.params.items():
        np.testing.assert_array_equal(value, b.params[key], err_msg=key)


class KeepCheckpoints(Callback):
    """A copy of the run's checkpoint at the start of every epoch but the first (the state after the epoch before)."""

    def __init__(self, run_dir, copies_dir):
        self.run_dir, self.copies_dir, self.copies = run_dir, copies_dir, []

    def on_epoch_begin(self, epoch):
        if epoch:
            self.copies.append(shutil.copytree(self.run_dir, self.copies_dir / f"after-epoch-{epoch}"))


@pytest.mark.parametrize("name", RUNS)
def test_a_run_resumed_inside_any_stage_ends_as_the_uninterrupted_run(digits, tmp_path, name):
    """Without a seed, with validation data and early stopping: resumed after any epoch (inside a stage or
    between two), the run ends with the uninterrupted run's weights and history."""
    X, y, X_val, y_val = digits[0][:240], digits[1][:240], digits[2][:120], digits[3][:120]

    def fit(model, **options):
        stopper = nk.schedules.EarlyStopping(monitor="loss", patience=1, min_delta=0.05)
        return nk.train(model, X, y, scheme="greedy", epochs=2, batch_size=64, seed=None, validation_data=(X_val, y_val),
                        callbacks=[stopper, *options.pop("callbacks", [])], **RUNS[name], **options)

    keep = KeepCheckpoints(tmp_path / "run", tmp_path)
    straight = mlp()
    history = fit(straight, checkpoint_dir=tmp_path / "run", callbacks=[keep])
    assert len(set(history["stage"])) == (4 if name != "supervised" else 3)
    for saved in keep.copies:
        resumed = mlp()
        again = fit(resumed, checkpoint_dir=saved, resume=True)
        same_weights(straight, resumed)
        for metric in ("stage", "loss", "val_loss", "lr"):
            assert again[metric] == history[metric], (saved.name, metric)


@pytest.mark.parametrize("name, epoch", [("autoencoder", 3), ("supervised", 3), ("supervised", 5)])
def test_divergence_in_a_later_stage_restores_the_weights_of_the_epoch_before(digits, name, epoch):
    kept = {}

    class Poison(Callback):
        def on_epoch_begin(self, at):
            if at == epoch:
                kept.update({k: v.copy() for k, v in self.context.model.params.items()})
                self.context.model.params["2.weight"][0, 0] = np.nan

    model = mlp()
    with pytest.raises(nk.TrainingDivergedError, match=f"epoch {epoch + 1}: a weight became NaN or infinite.*lr is"):
        nk.train(model, digits[0][:240], digits[1][:240], scheme="greedy", epochs=2, seed=0, callbacks=[Poison()],
                 **{k: v for k, v in RUNS[name].items() if k != "schedule"})
    for key, value in model.params.items():
        np.testing.assert_array_equal(value, kept[key], err_msg=key)


@pytest.mark.parametrize("name", RUNS)
def test_the_learning_rate_a_callback_sets_is_the_one_each_stage_trains_with(digits, name):
    """A callback zeroing the learning rate in the second stage: that stage changes nothing, the others do."""
    class Freeze(Callback):
        def on_epoch_begin(self, epoch):
            if epoch in (2, 3):
                self.context.optimizer.lr = 0.0

    class Weights(Callback):
        def __init__(self):
            self.seen = []

        def on_epoch_end(self, epoch, logs):
            self.seen.append({k: v.copy() for k, v in self.context.model.params.items()})

    weights = Weights()
    options = {k: v for k, v in RUNS[name].items() if k != "schedule"}
    history = nk.train(mlp(), digits[0][:240], digits[1][:240], scheme="greedy", epochs=2, seed=0,
                       callbacks=[Freeze(), weights], **options)
    assert history["lr"][2:4] == [0.0, 0.0] and history["lr"][4] > 0
    layer = "4" if name == "supervised" else "2"  # the second stage's layer
    np.testing.assert_array_equal(weights.seen[1][f"{layer}.weight"], weights.seen[3][f"{layer}.weight"])
    assert not np.array_equal(weights.seen[3][f"{layer}.weight"], weights.seen[-1][f"{layer}.weight"])
