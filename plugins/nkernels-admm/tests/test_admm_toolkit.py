"""ADMM on the scheme toolkit: conformance, bit-identical resumes with the auxiliary variables, refused options."""
import functools

import numpy as np
import pytest

import nkernels as nk
from nkernels.callbacks import Callback
from nkernels.testing import SchemeConformance
from nkernels_admm import ADMM
from nkernels_admm.shards import ShardState

L = nk.layers


def two_hidden_layers(dtype="float32"):
    return nk.Sequential([L.Dense(64, 16), L.ReLU(), L.Dense(16, 12), L.ReLU(), L.Dense(12, 10)], seed=0,
                         dtype=dtype)


class TestADMMConformance(SchemeConformance):
    """The multiplier moves from the second iteration on, so resumes carry it too."""

    make_scheme = staticmethod(functools.partial(ADMM, warm_start=1))

    def make_model(self):
        return two_hidden_layers()


class TestShardedADMMConformance(TestADMMConformance):
    """Three shards in this process: the checkpoint's variables are split back across them."""

    make_scheme = staticmethod(functools.partial(ADMM, warm_start=1, shards=3))


def digits_slice():
    X, y, _, _ = nk.datasets.load("digits")
    return X[:300], y[:300]


@pytest.mark.parametrize("shards", [1, 3])
def test_a_resumed_run_continues_the_auxiliary_variables_and_the_warm_start(tmp_path, shards):
    # interrupted after the first multiplier update: the resumed run must know that 3 iterations are done (the
    # next ones update the multiplier too) and continue from the shards' pre-activations and multiplier (the
    # multiplier of iteration k moves the outputs of k + 1, which the weights of k + 2 fit)
    X, y = digits_slice()
    options = dict(warm_start=2, shards=shards)
    straight = two_hidden_layers()
    h_straight = nk.train(straight, X, y, scheme="admm", epochs=6, **options)
    nk.train(two_hidden_layers(), X, y, scheme="admm", epochs=3, checkpoint_dir=tmp_path, **options)
    resumed = two_hidden_layers()
    h_resumed = nk.train(resumed, X, y, scheme="admm", epochs=6, checkpoint_dir=tmp_path, resume=True, **options)
    for key in straight.params:
        np.testing.assert_array_equal(resumed.params[key], straight.params[key])
    for metric in ("loss", "accuracy", "residual", "stage"):
        assert h_resumed[metric] == h_straight[metric], metric
    assert h_straight["stage"] == ["warm start"] * 2 + ["multiplier"] * 4


def test_a_checkpoint_holds_the_float64_state_and_the_shards_variables(tmp_path):
    from nkernels.export.io import read_checkpoint
    from nkernels.schemes import CHECKPOINT_FILE

    X, y = digits_slice()
    nk.train(two_hidden_layers(), X, y, scheme="admm", epochs=2, warm_start=1, shards=2, checkpoint_dir=tmp_path)
    checkpoint = read_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert checkpoint.extra["scheme_state"] == {"iterations": 2, "shards": "gathered"}
    arrays = {k.removeprefix("scheme."): v for k, v in checkpoint.arrays.items() if k.startswith("scheme.")}
    # activations of the two hidden layers, pre-activations of all three, the multiplier: every sample, in order
    assert {k: v.shape for k, v in arrays.items() if not k.startswith(("weight", "bias", "first"))} == {
        "activations.0": (300, 16), "activations.1": (300, 12), "preactivations.0": (300, 16),
        "preactivations.1": (300, 12), "preactivations.2": (300, 10), "multiplier": (300, 10)}
    assert arrays["weight.0"].dtype == np.float64 and np.abs(arrays["multiplier"]).sum() > 0


def test_a_checkpoint_of_other_data_is_refused(tmp_path):
    X, y = digits_slice()
    nk.train(two_hidden_layers(), X, y, scheme="admm", epochs=1, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="ADMM state is for 300 samples and this run has 200: resume with the same"):
        nk.train(two_hidden_layers(), X[:200], y[:200], scheme="admm", epochs=2, checkpoint_dir=tmp_path,
                 resume=True)


def test_the_float64_weights_do_not_pass_through_a_float32_model():
    # the driver keeps its float64 weights between iterations: a float32 model ends with the float64 run's
    # weights rounded once, not with the rounding of every iteration
    X, y = digits_slice()
    single, double = two_hidden_layers("float32"), two_hidden_layers("float64")
    double.set_params({key: value.astype(np.float64) for key, value in single.params.items()})  # the same weights
    nk.train(single, X, y, scheme="admm", epochs=4, warm_start=1)
    nk.train(double, X, y, scheme="admm", epochs=4, warm_start=1)
    for key in single.params:
        np.testing.assert_array_equal(single.params[key], double.params[key].astype(np.float32))


def test_weights_a_callback_changes_are_the_ones_the_next_iteration_uses():
    class ScaleLastLayer(Callback):
        def on_epoch_begin(self, epoch):
            if epoch == 2:
                self.context.model.params["4.weight"][...] *= 0.5

    X, y = digits_slice()
    plain, changed = two_hidden_layers("float64"), two_hidden_layers("float64")
    nk.train(plain, X, y, scheme="admm", epochs=3)
    nk.train(changed, X, y, scheme="admm", epochs=3, callbacks=[ScaleLastLayer()])
    # the last layer's weights enter the update of the activations below it, which its next weights fit
    assert not np.array_equal(plain.params["4.weight"], changed.params["4.weight"])


def test_the_divergence_guard_keeps_the_shards_variables_where_they_live():
    seen, scheme = [], ADMM(shards=2)

    class Look(Callback):
        def on_epoch_end(self, epoch, logs):
            seen.append(scheme.checkpoint_state(None))

    X, y = digits_slice()
    scheme.fit(two_hidden_layers(), X, y, epochs=2, callbacks=[Look()])
    assert len(seen) == 2
    for state, arrays in seen:
        assert state["shards"] == "kept"
        assert all(len(v) != len(X) for v in arrays.values())  # nothing per sample


def test_a_shard_rolls_back_to_the_variables_it_kept():
    rng = np.random.default_rng(0)
    X, labels = rng.normal(size=(20, 4)), rng.integers(0, 3, 20)
    weights = [(rng.normal(size=(5, 4)), rng.normal(size=5)), (rng.normal(size=(3, 5)), rng.normal(size=3))]
    shard = ShardState(X, np.eye(3)[labels], labels, weights, "hinge", 1.0, 10.0)
    before = {k: [np.copy(a) for a in v] if isinstance(v, list) else np.copy(v) for k, v in shard.state().items()}
    shard.hidden_step(0, weights[0], weights[1], keep=True)
    shard.output_step(weights, True)
    assert not np.array_equal(shard.state()["multiplier"], before["multiplier"])
    shard.rollback()
    after = shard.state()
    np.testing.assert_array_equal(after["multiplier"], before["multiplier"])
    for name in ("activations", "preactivations"):
        for a, b in zip(after[name], before[name]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("options, message", [
    ({"schedule": "cosine"}, "admm has no learning rate, so a schedule would have no effect"),
    ({"augment_shift": 1}, "admm does not train on mini-batches, so augment_shift"),
    ({"batch_size": 64}, "admm trains on the whole training set each epoch, so batch_size has no effect"),
])
def test_options_without_an_effect_are_refused_with_the_scheme_named(options, message):
    X, y = digits_slice()
    model = two_hidden_layers()
    before = model.params["0.weight"].copy()
    with pytest.raises(ValueError, match=message):
        nk.train(model, X, y, scheme="admm", epochs=1, **options)
    np.testing.assert_array_equal(model.params["0.weight"], before)


def test_capabilities():
    caps = ADMM.capabilities
    assert (caps.learning_rate, caps.batches, caps.distributed) == (False, False, True)
    assert ADMM.default_epochs == 10


def test_cli_maps_checkpoints_resume_and_refuses_a_schedule(tmp_path, capsys):
    from nkernels.cli import main

    run, straight, resumed = tmp_path / "run", tmp_path / "straight.safetensors", tmp_path / "resumed.safetensors"
    common = ["train", "--scheme", "admm", "--quiet", "--option", "warm_start=1"]
    assert main(common + ["--epochs", "2", "--save", str(straight)]) == 0
    assert main(common + ["--epochs", "1", "--checkpoint-dir", str(run)]) == 0
    assert main(common + ["--epochs", "2", "--checkpoint-dir", str(run), "--resume", "--save", str(resumed)]) == 0
    assert "resuming the run in" in capsys.readouterr().out
    a, b = nk.load(straight), nk.load(resumed)
    for key in a.params:
        np.testing.assert_array_equal(a.params[key], b.params[key])
    assert main(common + ["--epochs", "1", "--schedule", "cosine"]) == 2
    assert "admm has no learning rate" in capsys.readouterr().err
    assert main(common + ["--epochs", "1", "--augment-shift", "1"]) == 2
    assert "admm does not train on mini-batches" in capsys.readouterr().err


def test_early_stopping_ends_the_run_with_the_best_iteration_weights():
    from nkernels.schedules import EarlyStopping

    X, y = digits_slice()
    _, _, X_test, y_test = nk.datasets.load("digits")
    X_val, y_val = X_test[:200], y_test[:200]
    stopper = EarlyStopping(patience=2)  # on val_loss, ADMM's loss of the held-out outputs
    stopped = two_hidden_layers()
    history = nk.train(stopped, X, y, scheme="admm", epochs=30, warm_start=2, validation_data=(X_val, y_val),
                       callbacks=[stopper])
    assert history.epochs < 30 and history["val_loss"][stopper.best_epoch] == min(history["val_loss"])
    best = two_hidden_layers()  # the run up to the best iteration, and no further
    nk.train(best, X, y, scheme="admm", epochs=stopper.best_epoch + 1, warm_start=2)
    for key in best.params:
        np.testing.assert_array_equal(stopped.params[key], best.params[key])
