"""The ``es`` scheme on the scheme toolkit: conformance, checkpoints (also across Dask workers),
schedules, early stopping, refused options and the command line's mapping of the shared options."""
import contextlib
import functools
import re

import numpy as np
import pytest
from nkernels_es import EvolutionStrategies
from nkernels_es.population import flat_parameters

import nkernels as nk
from nkernels.cli import main
from nkernels.schedules import EarlyStopping
from nkernels.testing import SchemeConformance

L = nk.layers


def small_mlp():
    return nk.Sequential([L.Dense(64, 16), L.ReLU(), L.Dense(16, 10)], seed=0)


class TestEvolutionStrategiesConformance(SchemeConformance):
    """Small populations and few generations: every check of the kit runs in seconds."""

    make_scheme = staticmethod(functools.partial(EvolutionStrategies, population=8, generations_per_epoch=3))

    def make_model(self):
        return small_mlp()


@pytest.fixture(scope="module")
def digits():
    return nk.datasets.load("digits")


def train(model, digits, epochs=3, seed=0, **options):
    X, y = digits[0][:240], digits[1][:240]
    options = {"population": 8, "generations_per_epoch": 3, **options}
    return nk.train(model, X, y, scheme="es", epochs=epochs, seed=seed, **options)


def test_the_checkpoint_holds_the_noise_seed_the_generations_and_the_adam_state(digits, tmp_path):
    from nkernels.export.io import read_checkpoint

    model = small_mlp()
    train(model, digits, epochs=2, checkpoint_dir=tmp_path)
    saved = read_checkpoint(tmp_path / nk.schemes.CHECKPOINT_FILE)
    state = saved.extra["scheme_state"]
    assert state["generation"] == 6 and state["noise_size"] == 2**23
    rng = np.random.default_rng(0)  # the run's generator: the table's seed is its first draw
    assert state["noise_seed"] == int(rng.integers(2**62))
    assert saved.optimizer["type"] == "adam" and saved.optimizer["steps"] == 6
    assert set(saved.optimizer["state"]) == set(model.params)


def test_a_run_checkpointed_on_dask_workers_resumes_in_process_bit_identical(digits, tmp_path):
    pytest.importorskip("dask.distributed")
    straight = small_mlp()
    train(straight, digits, population=14)
    train(small_mlp(), digits, epochs=2, population=14, workers=2, checkpoint_dir=tmp_path)
    resumed = small_mlp()
    history = train(resumed, digits, population=14, checkpoint_dir=tmp_path, resume=True)
    np.testing.assert_array_equal(flat_parameters(resumed)[0], flat_parameters(straight)[0])
    assert history["generation"] == [3, 6, 9]


def test_resuming_with_another_noise_size_is_refused(digits, tmp_path):
    train(small_mlp(), digits, epochs=1, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="noise table of 8388608 numbers.*resume with the same noise_size"):
        train(small_mlp(), digits, noise_size=2**20, checkpoint_dir=tmp_path, resume=True)


def test_a_schedule_changes_the_learning_rate_the_updates_use(digits):
    constant, scheduled = small_mlp(), small_mlp()
    train(constant, digits)
    history = train(scheduled, digits, schedule="cosine")
    assert history["lr"][0] == 0.01 and history["lr"][-1] < history["lr"][1] < 0.01
    assert not np.array_equal(flat_parameters(constant)[0], flat_parameters(scheduled)[0])


def test_early_stopping_ends_the_run_and_restores_the_best_weights(digits):
    X_val, y_val = digits[2][:120], digits[3][:120]
    stopper = EarlyStopping(monitor="val_loss", patience=1)
    model = small_mlp()
    history = train(model, digits, epochs=30, lr=0.5, callbacks=[stopper], validation_data=(X_val, y_val))
    assert stopper.stopped_epoch is not None and len(history["loss"]) < 30
    best = int(np.argmin(history["val_loss"]))
    assert nk.evaluate(model, X_val, y_val)["loss"] == pytest.approx(history["val_loss"][best], rel=1e-6)


def test_augmentation_is_refused_by_name():
    with pytest.raises(ValueError, match="es has no augmentation.*augment_shift would have no effect"):
        EvolutionStrategies(augment_shift=1)
    with pytest.raises(ValueError, match="augment_shift must be at least 0"):
        EvolutionStrategies(augment_shift=-1)


def test_the_dask_cluster_is_closed_when_the_run_fails(digits, monkeypatch):
    pytest.importorskip("dask.distributed")
    from nkernels.runtime import distributed

    opened = []
    connect = distributed.connect

    @contextlib.contextmanager
    def recording(*args, **kwargs):
        with connect(*args, **kwargs) as session:
            opened.append(session)
            yield session
            opened.remove(session)

    monkeypatch.setattr(distributed, "connect", recording)
    X, y = digits[0][:64], digits[1][:64]
    scheme = EvolutionStrategies(population=4, generations_per_epoch=1, sigma=1e38, workers=1)
    with pytest.raises(nk.TrainingDivergedError):
        scheme.fit(small_mlp(), X, y, epochs=1)
    assert opened == [] and not hasattr(scheme, "_run")  # closed, and the scheme keeps no run's state


CLI_OPTIONS = ["--scheme", "es", "--option", "population=8", "--option", "generations_per_epoch=2", "--quiet"]


def test_the_command_line_passes_checkpoints_resume_and_schedules_to_es(tmp_path, capsys):
    straight, resumed, run = tmp_path / "straight.safetensors", tmp_path / "resumed.safetensors", tmp_path / "run"
    assert main(["train", *CLI_OPTIONS, "--epochs", "2", "--schedule", "cosine", "--save", str(straight)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\blr\b", out) and "sigma" in out  # the schedule changed the rate; ES's own metrics
    assert main(["train", *CLI_OPTIONS, "--epochs", "1", "--schedule", "cosine", "--checkpoint-dir", str(run)]) == 0
    assert main(["train", *CLI_OPTIONS, "--epochs", "2", "--schedule", "cosine", "--checkpoint-dir", str(run),
                 "--resume", "--save", str(resumed)]) == 0
    assert "resuming the run in" in capsys.readouterr().out
    a, b = nk.load(straight), nk.load(resumed)
    for key in a.params:
        np.testing.assert_array_equal(a.params[key], b.params[key])


def test_the_command_line_refuses_augmentation_for_es(capsys):
    assert main(["train", *CLI_OPTIONS, "--epochs", "1", "--augment-shift", "1"]) != 0
    assert "augment_shift would have no effect" in capsys.readouterr().err
