"""ADMM on Dask: 1 and 2 workers (LocalClusters on loopback) give the weights of a run in this process."""
import numpy as np
import pytest

import nkernels as nk
from nkernels.cli import presets

dd = pytest.importorskip("dask.distributed")  # the test extras bring it; the plugin works without it

L = nk.layers


def digits_mlp():
    return nk.Sequential([L.Dense(64, 32), L.ReLU(), L.Dense(32, 10)], seed=0, dtype="float64")


def test_one_worker_joined_by_address_matches_this_process():
    X, y, _, _ = nk.datasets.load("digits")
    X, y = X[:400], y[:400]
    local = digits_mlp()
    nk.train(local, X, y, scheme="admm", epochs=4, warm_start=1)
    joined = digits_mlp()
    with dd.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=None, death_timeout=30) as cluster:
        history = nk.train(joined, X, y, scheme="admm", epochs=4, warm_start=1, scheduler=cluster.scheduler_address)
    assert history.epochs == 4
    for key in local.params:
        np.testing.assert_allclose(joined.params[key], local.params[key], rtol=1e-10, atol=1e-12)


def test_cli_with_two_workers_matches_this_process(tmp_path):
    from nkernels.cli import main

    path = tmp_path / "admm.safetensors"
    assert main(["train", "--scheme", "admm", "--workers", "2", "--epochs", "3", "--quiet",
                 "--option", "warm_start=1", "--save", str(path)]) == 0
    two_workers = nk.load(path)

    X, y, _, _ = nk.datasets.load("digits")
    for shards, rtol in [(2, 0.0), (1, 1e-4)]:
        # the CLI's model: the mlp preset, seed 0, float32; 2 workers hold 2 shards
        model = presets.build("mlp", (64,), 10, seed=0)
        nk.train(model, X, y, scheme="admm", epochs=3, warm_start=1, shards=shards)
        for key in model.params:
            if shards == 2:  # the same sums in the same order: the same numbers
                np.testing.assert_array_equal(two_workers.params[key], model.params[key])
            else:  # one shard sums in another order
                np.testing.assert_allclose(two_workers.params[key], model.params[key], rtol=rtol, atol=1e-5)



@pytest.fixture(scope="module")
def two_workers():
    """The address of a cluster of 2 worker processes, which the runs below join (one start for them all)."""
    with dd.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=None, death_timeout=30) as cluster:
        yield cluster.scheduler_address


def test_a_run_on_workers_resumes_bit_identical(tmp_path, two_workers):
    # the shards' variables come back from the actors into the checkpoint, and go back to them on resume
    X, y, _, _ = nk.datasets.load("digits")
    X, y = X[:400], y[:400]
    straight = digits_mlp()
    h_straight = nk.train(straight, X, y, scheme="admm", epochs=5, warm_start=2, shards=2)  # as 2 workers do
    on_workers = dict(scheme="admm", warm_start=2, scheduler=two_workers, checkpoint_dir=tmp_path)
    nk.train(digits_mlp(), X, y, epochs=3, **on_workers)
    resumed = digits_mlp()
    h_resumed = nk.train(resumed, X, y, epochs=5, resume=True, **on_workers)
    assert h_resumed["loss"] == h_straight["loss"] and h_resumed["stage"] == h_straight["stage"]
    for key in straight.params:
        np.testing.assert_array_equal(resumed.params[key], straight.params[key])


def test_divergence_on_workers_restores_the_weights_of_the_iteration_before(two_workers):
    from nkernels.callbacks import Callback

    kept = {}

    class Poison(Callback):
        def on_epoch_begin(self, epoch):
            if epoch == 2:
                kept.update({k: v.copy() for k, v in self.context.model.params.items()})
                self.context.model.params["2.weight"][0, 0] = np.nan

    X, y, _, _ = nk.datasets.load("digits")
    model = digits_mlp()
    with pytest.raises(nk.TrainingDivergedError, match="admm diverged in epoch 3: a weight of the model"):
        nk.train(model, X[:400], y[:400], scheme="admm", epochs=4, scheduler=two_workers, callbacks=[Poison()])
    for key, value in kept.items():
        np.testing.assert_array_equal(model.params[key], value)
