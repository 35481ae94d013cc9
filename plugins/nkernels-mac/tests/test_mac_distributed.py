"""MAC on Dask: runs on LocalClusters on loopback give the numbers of the same shards in this process."""
import numpy as np
import pytest

import nkernels as nk

dd = pytest.importorskip("dask.distributed")  # the test extras bring it; the plugin works without it

L = nk.layers


def small_mlp():
    return nk.Sequential([L.Dense(64, 16), L.ReLU(), L.Dense(16, 12), L.ReLU(), L.Dense(12, 10)], seed=0)


def digits_slice():
    X, y, _, _ = nk.datasets.load("digits")
    return X[:300], y[:300]


@pytest.fixture(scope="module")
def two_workers():
    """The address of a cluster of 2 worker processes, which the runs below join (one start for them all)."""
    with dd.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=None, death_timeout=30) as cluster:
        yield cluster.scheduler_address


def test_two_workers_give_the_numbers_of_two_shards_here(two_workers):
    X, y = digits_slice()
    here = small_mlp()
    h_here = nk.train(here, X, y, scheme="mac", epochs=3, shards=2, seed=3)
    there = small_mlp()
    h_there = nk.train(there, X, y, scheme="mac", epochs=3, scheduler=two_workers, seed=3)
    for key in here.params:
        np.testing.assert_array_equal(there.params[key], here.params[key])
    assert h_there["violation"] == h_here["violation"] and h_there["loss"] == h_here["loss"]


def test_a_run_on_workers_resumes_bit_identical(tmp_path, two_workers):
    # the coordinates come back from the actors into the checkpoint, and go back to them on resume
    X, y = digits_slice()
    straight = small_mlp()
    h_straight = nk.train(straight, X, y, scheme="mac", epochs=4, shards=2, seed=0)
    on_workers = dict(scheme="mac", scheduler=two_workers, checkpoint_dir=tmp_path, seed=0)
    nk.train(small_mlp(), X, y, epochs=2, **on_workers)
    resumed = small_mlp()
    h_resumed = nk.train(resumed, X, y, epochs=4, resume=True, **on_workers)
    assert h_resumed["violation"] == h_straight["violation"] and h_resumed["mu"] == h_straight["mu"]
    for key in straight.params:
        np.testing.assert_array_equal(resumed.params[key], straight.params[key])


def test_divergence_on_workers_rolls_the_coordinates_back(two_workers):
    from nkernels.callbacks import Callback

    class Poison(Callback):
        def on_epoch_begin(self, epoch):
            if epoch == 2:
                self.context.model.params["2.weight"][0, 0] = np.nan

    X, y = digits_slice()
    with pytest.raises(nk.TrainingDivergedError, match="mac diverged in epoch 3: a weight of the model"):
        nk.train(small_mlp(), X, y, scheme="mac", epochs=4, scheduler=two_workers, callbacks=[Poison()])


def test_cli_on_two_workers_matches_two_shards_here(tmp_path, two_workers):
    # --scheduler joins the module's cluster (--workers N starts one the same way, through the same option)
    from nkernels.cli import main, presets

    path = tmp_path / "mac.safetensors"
    assert main(["train", "--scheme", "mac", "--scheduler", two_workers, "--epochs", "2", "--quiet", "--seed", "0",
                 "--save", str(path)]) == 0
    X, y, _, _ = nk.datasets.load("digits")
    model = presets.build("mlp", (64,), 10, seed=0)  # the CLI's model: the mlp preset, seed 0
    nk.train(model, X, y, scheme="mac", epochs=2, shards=2, seed=0)
    saved = nk.load(path)
    for key in model.params:
        np.testing.assert_array_equal(saved.params[key], model.params[key])
