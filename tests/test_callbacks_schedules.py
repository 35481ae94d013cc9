"""Callbacks, learning-rate schedules, early stopping, CSV logs, plots and image augmentation."""
import csv

import numpy as np
import pytest

import nkernels as nk
from nkernels.callbacks import Callback, CSVLogger
from nkernels.schedules import EarlyStopping, ReduceLROnPlateau, StepLR

L = nk.layers


def small(seed=0):
    return nk.Sequential([L.Dense(64, 16), L.ReLU(), L.Dense(16, 10)], seed=seed)


def test_step_and_cosine_schedules_set_the_rate_per_epoch(digits):
    X, y = digits[0][:64], digits[1][:64]
    history = nk.train(small(), X, y, epochs=5, batch_size=32, lr=0.1, optimizer="sgd", schedule=StepLR(2, 0.5))
    assert history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    history = nk.train(small(), X, y, epochs=4, batch_size=32, lr=0.1, optimizer="sgd", schedule="cosine")
    assert history["lr"] == pytest.approx([0.1 * (1 + np.cos(np.pi * e / 4)) / 2 for e in range(4)])


def test_reduce_on_plateau_divides_by_ten_after_patience():
    class Context:
        optimizer = nk.optimizers.SGD(lr=1.0)

    plateau = ReduceLROnPlateau(monitor="loss", patience=2)
    plateau.context = Context()
    for epoch, loss in enumerate([1.0, 0.9, 0.95, 0.95, 0.8, 0.85, 0.86]):
        plateau.on_epoch_end(epoch, {"loss": loss})
    assert Context.optimizer.lr == pytest.approx(0.01)


def test_early_stopping_stops_and_restores_the_best_weights(digits):
    X, y, Xv, yv = digits[0][:200], digits[1][:200], digits[2][:100], digits[3][:100]
    seen = []

    class Record(Callback):
        def on_epoch_end(self, epoch, logs):
            seen.append((logs["val_loss"], {k: v.copy() for k, v in self.context.model.params.items()}))

    stopper = EarlyStopping(patience=2)
    model = small()
    history = nk.train(model, X, y, epochs=200, batch_size=32, lr=0.05, validation_data=(Xv, yv),
                       callbacks=[stopper, Record()])
    assert len(history["loss"]) < 200 and stopper.stopped_epoch == len(history["loss"]) - 1
    best = int(np.argmin([v for v, _ in seen]))
    assert stopper.best_epoch == best
    for key, value in seen[best][1].items():
        np.testing.assert_array_equal(model.params[key], value)


def test_csv_logger_writes_a_row_per_epoch(tmp_path, digits):
    path = tmp_path / "log.csv"
    nk.train(small(), digits[0][:64], digits[1][:64], epochs=3, batch_size=32, callbacks=[CSVLogger(path)])
    rows = list(csv.DictReader(path.open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert {"loss", "accuracy", "lr", "time"} <= set(rows[0])
    nk.train(small(), digits[0][:64], digits[1][:64], epochs=1, batch_size=32, callbacks=[CSVLogger(path)])
    assert len(list(csv.DictReader(path.open()))) == 1  # a new run starts a new file


def test_plot_writes_a_png(tmp_path, digits):
    pytest.importorskip("matplotlib")
    from nkernels.cli.plotting import plot_history

    history = nk.train(small(), digits[0][:64], digits[1][:64], epochs=3, batch_size=32,
                       validation_data=(digits[2][:50], digits[3][:50]))
    path = tmp_path / "curves.png"
    plot_history(history, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(path) as image:
        assert image.size[0] > 400 and image.size[1] > 200


def test_augmentation_shifts_images_and_both_paths_agree(digits):
    X, y = nk.datasets.load("digits", flat=False)[:2]
    runs = []
    for shift in (0, 2):
        for path_compiled in (True, False):
            model = nk.Sequential([L.Conv2D(1, 4, 3, padding=1), L.ReLU(), L.Flatten(), L.Dense(256, 10)], seed=0)
            history = nk.train(model, X[:96], y[:96], epochs=2, batch_size=32, seed=5, augment_shift=shift,
                               compiled=path_compiled)
            runs.append(history["loss"])
    assert runs[0] == runs[1] and runs[2] == runs[3]  # the same numbers on both paths
    assert runs[0] != runs[2]  # and the shifts change training
    with pytest.raises(ValueError, match="need image inputs"):
        nk.train(small(), digits[0][:64], digits[1][:64], epochs=1, augment_shift=1)


def test_unknown_schedule_is_a_clear_error(digits):
    with pytest.raises(ValueError, match="unknown schedule 'linear'; available: cosine, plateau, step"):
        nk.train(small(), digits[0][:64], digits[1][:64], epochs=1, schedule="linear")


def test_progress_bar_shows_the_stage_a_scheme_reports(capsys):
    from nkernels.callbacks import CallbackList, ProgressBar

    model = nk.Sequential([nk.layers.Dense(2, 2)])
    events = CallbackList([ProgressBar("greedy")], model, None)
    events.on_train_begin(model, {"epochs": 2})
    events.on_epoch_end(0, {"stage": "layer 1/2: autoencoder", "loss": 0.5})
    events.on_epoch_end(1, {"stage": "layer 2/2: autoencoder", "loss": 0.25})
    events.on_train_end(None)
    out = capsys.readouterr().out
    assert "greedy (layer 2/2: autoencoder)" in out and "loss 0.2500" in out


def test_progress_metrics_show_counts_as_integers():
    from nkernels.callbacks import ProgressBar

    shown = ProgressBar.format_metrics({"generation": 120, "best_fitness": -0.25, "val_accuracy": 0.5})
    assert shown == "generation 120  best_fitness -0.2500  val_acc 50.0%"


def test_the_old_epoch_loop_still_runs_with_a_deprecation_warning():
    model = nk.Sequential([nk.layers.Dense(2, 2)], seed=0)
    events = nk.callbacks.CallbackList([], model, "old-scheme", history=nk.History())
    with pytest.warns(DeprecationWarning, match="subclass nkernels.schemes.Scheme"):
        events.run_epochs(model, {}, 2, lambda epoch: {"loss": float(epoch)})
    assert events.context.history["loss"] == [0.0, 1.0]


def test_a_linear_warm_up_comes_before_the_decay(digits):
    from nkernels.schedules import CosineLR, LinearWarmup

    X, y = digits[0][:64], digits[1][:64]

    def rates(schedule, epochs):
        return nk.train(small(), X, y, epochs=epochs, batch_size=32, lr=0.1, optimizer="sgd", schedule=schedule)["lr"]

    cosine = [0.1 * (1 + np.cos(np.pi * e / 4)) / 2 for e in range(4)]  # the decay over the 4 epochs after warm-up
    assert rates(CosineLR(warmup_epochs=2), 6) == pytest.approx([0.1 / 3, 0.2 / 3] + cosine)
    assert rates(StepLR(2, 0.5, warmup_epochs=1), 4) == pytest.approx([0.05, 0.1, 0.1, 0.05])
    assert rates(LinearWarmup(3), 5) == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1])
    assert rates(nk.schedules.get_schedule("cosine", 6, warmup_epochs=2), 6) == pytest.approx([0.1 / 3, 0.2 / 3]
                                                                                                + cosine)


def test_warm_up_options_that_cannot_work_are_refused(digits):
    from nkernels.schedules import CosineLR, LinearWarmup, get_schedule

    with pytest.raises(ValueError, match="leaves none of total_epochs=3"):
        CosineLR(total_epochs=3, warmup_epochs=3)
    with pytest.raises(ValueError, match="leaves none of this 3-epoch run"):
        nk.train(small(), digits[0][:64], digits[1][:64], epochs=3, schedule=CosineLR(warmup_epochs=3))
    with pytest.raises(ValueError, match="warmup_epochs must be at least 0"):
        CosineLR(warmup_epochs=-1)
    with pytest.raises(TypeError, match="warmup_epochs must be an integer"):
        StepLR(2, warmup_epochs=1.5)
    with pytest.raises(ValueError, match="warmup_epochs must be at least 1"):
        LinearWarmup(0)
    with pytest.raises(ValueError, match="'plateau' schedule has no warm-up"):
        get_schedule("plateau", 10, warmup_epochs=2)
    with pytest.raises(ValueError, match="'warmup' schedule needs warmup_epochs"):
        get_schedule("warmup", 10)


def test_the_command_line_warms_up_before_the_named_schedule():
    from nkernels.cli.commands import _build_parser, _scheme_options
    from nkernels.schedules import CosineLR, LinearWarmup

    def schedule(*argv):
        return _scheme_options(_build_parser().parse_args(["train", *argv]), {"epochs": 10}).get("schedule")

    cosine = schedule("--schedule", "cosine", "--warmup-epochs", "2")
    assert isinstance(cosine, CosineLR) and cosine.warmup_epochs == 2
    alone = schedule("--warmup-epochs", "3")
    assert isinstance(alone, LinearWarmup) and alone.warmup_epochs == 3
    assert schedule("--schedule", "step", "--warmup-epochs", "1").step_size == 3
    with pytest.raises(ValueError, match="has no warm-up"):
        schedule("--schedule", "plateau", "--warmup-epochs", "2")
