"""nk.train, nk.evaluate and the backprop scheme on both paths."""
import numpy as np
import pytest

import nkernels as nk
from nkernels.errors import TrainingDivergedError

L = nk.layers


def small_mlp(seed=0, hidden=32):
    return nk.Sequential([L.Dense(64, hidden), L.ReLU(), L.Dense(hidden, 10)], seed=seed)


@pytest.mark.parametrize("optimizer, options", [
    ("adam", {"lr": 1e-2}),
    ("adamw", {"lr": 1e-2, "weight_decay": 0.1}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
    ("sgd", {"lr": 0.05}),
])
def test_compiled_and_layerwise_paths_give_the_same_numbers(digits, optimizer, options):
    X, y = digits[0][:200], digits[1][:200]
    runs = []
    for compiled in (True, False):
        model = small_mlp()
        history = nk.train(model, X, y, epochs=2, batch_size=48, optimizer=optimizer, seed=3,
                           compiled=compiled, **options)
        runs.append((history, model))
    (h1, m1), (h2, m2) = runs
    assert h1["loss"] == h2["loss"] and h1["accuracy"] == h2["accuracy"]
    for key in m1.params:
        np.testing.assert_array_equal(m1.params[key], m2.params[key])


def test_compiled_path_is_used_for_builtin_layers(digits):
    from nkernels.trainers import CompiledTrainer
    from nkernels.trainers import make_trainer

    model = small_mlp()
    trainer = make_trainer(model, nk.losses.SoftmaxCrossEntropy(), nk.optimizers.Adam(), (64,), 32)
    assert isinstance(trainer, CompiledTrainer)


def test_plugin_layer_falls_back_to_the_layerwise_path_with_the_same_numbers(digits):
    class Double(L.Layer):
        def forward(self, x, training=False):
            return self.prepare_input(x) * 2

        def backward(self, dy):
            return dy * 2

    X, y = digits[0][:96], digits[1][:96]
    a = nk.Sequential([L.Dense(64, 16), Double(), L.ReLU(), L.Dense(16, 10)], seed=0)
    b = nk.Sequential([L.Dense(64, 16), Double(), L.ReLU(), L.Dense(16, 10)], seed=0)
    ha = nk.train(a, X, y, epochs=2, batch_size=32, seed=0)
    hb = nk.train(b, X, y, epochs=2, batch_size=32, seed=0, compiled=False)
    assert ha["loss"] == hb["loss"]


def test_training_is_deterministic_given_the_seed(digits):
    X, y = digits[0][:300], digits[1][:300]
    weights = []
    for _ in range(2):
        model = small_mlp(seed=5)
        nk.train(model, X, y, epochs=3, batch_size=32, seed=11)
        weights.append(model.params)
    for key in weights[0]:
        np.testing.assert_array_equal(weights[0][key], weights[1][key])


def test_mlp_learns_digits(digits):
    X, y, X_test, y_test = digits
    model = nk.presets.build("mlp", X.shape[1:], 10, seed=0)
    history = nk.train(model, X, y, epochs=15, batch_size=32, lr=1e-3, seed=0,
                       validation_data=(X_test, y_test))
    assert history["loss"][-1] < history["loss"][0] / 5
    assert history["val_accuracy"][-1] >= 0.95
    scores = nk.evaluate(model, X_test, y_test)
    assert scores["accuracy"] == history["val_accuracy"][-1]
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"}


def test_regression_with_mse():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 3)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5]) + 0.3)[:, None].astype(np.float32)
    model = nk.Sequential([L.Dense(3, 1)], seed=0)
    history = nk.train(model, X, y, epochs=60, batch_size=32, lr=0.05, seed=0)
    assert "accuracy" not in history
    assert history["loss"][-1] < 1e-3
    np.testing.assert_allclose(model.params["0.weight"], [[1.0, -2.0, 0.5]], atol=0.05)


@pytest.mark.parametrize("compiled", [True, False])
def test_regression_targets_with_several_axes(compiled):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 2, 3)).astype(np.float32)
    model = nk.Sequential([L.Tanh()])
    history = nk.train(model, X, np.tanh(X), epochs=1, batch_size=16, compiled=compiled)
    assert history["loss"][0] == pytest.approx(0.0, abs=1e-12)


def test_partial_last_batch_and_batch_larger_than_data(digits):
    X, y = digits[0][:50], digits[1][:50]
    assert len(nk.train(small_mlp(), X, y, epochs=1, batch_size=32)["loss"]) == 1
    assert len(nk.train(small_mlp(), X, y, epochs=1, batch_size=500)["loss"]) == 1


@pytest.mark.parametrize("kwargs, error, message", [
    ({"epochs": 0}, ValueError, "epochs must be at least 1"),
    ({"batch_size": -4}, ValueError, "batch_size must be at least 1"),
    ({"epochs": 1.5}, TypeError, "epochs must be an integer"),
    ({"scheme": "nope"}, ValueError, "unknown scheme 'nope'; available: .*backprop"),
    ({"optimizer": "adagrad"}, ValueError, "unknown optimizer 'adagrad'; available: adam, adamw, sgd"),
    ({"lr": -1.0}, ValueError, "lr must be a finite number above 0"),
    ({"sigma": 3}, TypeError, r"optimizer .adam. does not accept the option\(s\) \[.sigma.\]"),
])
def test_bad_training_options(digits, kwargs, error, message):
    with pytest.raises(error, match=message):
        nk.train(small_mlp(), digits[0][:40], digits[1][:40], **kwargs)


def test_bad_data_is_rejected_before_any_kernel(digits):
    X, y = digits[0][:40].copy(), digits[1][:40]
    model = small_mlp()
    with pytest.raises(ValueError, match="40 samples but y has 39"):
        nk.train(model, X, y[:39])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\]"):
        nk.train(model, X, y + 1)
    with pytest.raises(ValueError, match="does not fit the model"):
        nk.train(model, X[:, :10], y)
    with pytest.raises(ValueError, match="empty"):
        nk.train(model, X[:0], y[:0])
    with pytest.raises(TypeError, match="must hold numbers"):
        nk.train(model, X.astype(str), y)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\]"):
        nk.train(model, X, y - 1)
    with pytest.raises(ValueError, match="for classification pass integer class labels"):
        nk.train(model, X, y + 0.5)
    with pytest.raises(ValueError, match="whole numbers"):
        nk.train(model, X, y + 0.5, loss="cross_entropy")
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'; available: digits, fashion-mnist, mnist"):
        nk.datasets.load("imagenet")
    X[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        nk.train(model, X, y)
    X[3, 5] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        nk.train(model, X, y)
    with pytest.raises(ValueError, match="targets contain NaN"):
        nk.train(nk.Sequential([L.Dense(64, 1)]), digits[0][:40], np.full((40, 1), np.nan))


def test_noncontiguous_float64_training_data_simply_works(digits):
    X = np.asfortranarray(np.repeat(digits[0][:64], 2, axis=1).astype(np.float64))[:, ::2]
    assert not X.flags.c_contiguous and X.dtype == np.float64
    history = nk.train(small_mlp(), X, digits[1][:64].astype(np.int32), epochs=1, batch_size=32)
    assert np.isfinite(history["loss"][0])


@pytest.mark.parametrize("compiled", [True, False])
def test_divergence_stops_and_keeps_finite_weights(compiled):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 8)).astype(np.float32)
    y = X.sum(1, keepdims=True)
    model = nk.Sequential([L.Dense(8, 8), L.Tanh(), L.Dense(8, 1)], seed=0)
    with pytest.raises(TrainingDivergedError, match=r"epoch \d+.*smaller learning rate") as info:
        nk.train(model, X, y, epochs=50, batch_size=32, optimizer="sgd", lr=50.0, seed=0, compiled=compiled)
    assert isinstance(info.value, ValueError)
    assert all(np.isfinite(v).all() for v in model.params.values())


def test_evaluate_reports_loss_and_accuracy(digits):
    model = small_mlp()
    scores = nk.evaluate(model, digits[2], digits[3])
    assert set(scores) == {"loss", "accuracy"} and 0 <= scores["accuracy"] <= 1
    assert scores["loss"] == pytest.approx(np.log(10), rel=0.2)


def test_scheme_instance_and_history_mapping(digits):
    scheme = nk.schemes.Backprop(optimizer="sgd", lr=0.1)
    history = nk.train(small_mlp(), digits[0][:64], digits[1][:64], scheme=scheme, epochs=3, batch_size=32)
    assert isinstance(history, nk.History) and len(history["loss"]) == 3 and history.epochs == 3
    with pytest.raises(ValueError, match="scheme instance"):
        nk.train(small_mlp(), digits[0][:64], digits[1][:64], scheme=scheme, lr=0.1)


def test_determinism_holds_with_augmentation_schedules_and_constraints():
    X, y = nk.datasets.load("digits", flat=False)[:2]
    weights = []
    for _ in range(2):
        model = nk.Sequential([L.Conv2D(1, 4, 3, padding=1), L.ReLU(), L.Flatten(), L.Dropout(0.25),
                               L.Dense(256, 10)], seed=2)
        nk.train(model, X[:96], y[:96], epochs=3, batch_size=32, seed=7, augment_shift=2, schedule="cosine",
                 clip_norm=1.0, max_norm=2.0)
        weights.append(model.params)
    for key in weights[0]:
        np.testing.assert_array_equal(weights[0][key], weights[1][key])


class RecordEvents(nk.callbacks.Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, model, params):
        self.events.append("train_begin")

    def on_epoch_begin(self, epoch):
        self.events.append("epoch_begin")

    def on_train_end(self, history):
        self.events.append("train_end")

    def on_exception(self, error):
        self.events.append(type(error).__name__)


@pytest.mark.parametrize("validation, error, message", [
    (lambda Xv, yv: Xv, TypeError, r"validation_data must be a pair \(X_val, y_val\), got ndarray"),
    (lambda Xv, yv: (Xv, yv, yv), ValueError, r"validation_data must be a pair \(X_val, y_val\), got a tuple of 3"),
    (lambda Xv, yv: (Xv[:, :10], yv), ValueError, r"X_val of shape \(20, 10\) does not fit the model"),
    (lambda Xv, yv: (Xv, yv[:5]), ValueError, "X_val has 20 samples but y_val has 5"),
    (lambda Xv, yv: (np.where(Xv > 0.5, np.nan, Xv), yv), ValueError, "X_val contains .* NaN or infinite"),
    (lambda Xv, yv: (Xv, yv + 10), ValueError, r"y_val: labels must lie in \[0, 9\]"),
    (lambda Xv, yv: (Xv.astype(str), yv), TypeError, "X_val must hold numbers"),
    (lambda Xv, yv: (Xv, yv.astype(str)), TypeError, "y_val: .*must hold numbers"),
])
def test_bad_validation_data_is_rejected_before_training(digits, validation, error, message):
    recorder = RecordEvents()
    with pytest.raises(error, match=message):
        nk.train(small_mlp(), digits[0][:40], digits[1][:40], epochs=2, callbacks=[recorder],
                 validation_data=validation(digits[2][:20], digits[3][:20]))
    assert recorder.events == []  # no epoch ran


def test_values_that_overflow_the_model_dtype_are_rejected(digits):
    X = digits[0][:40].astype(np.float64)
    X[0, 0] = 1e39  # finite in float64, inf in float32
    with pytest.raises(ValueError, match="too large for float32"):
        nk.train(small_mlp(), X, digits[1][:40])


@pytest.mark.parametrize("kwargs, error, message", [
    ({"schedule": 3}, TypeError, "schedule must be 'step', 'cosine', 'plateau' or a callback"),
    ({"schedule": "linear"}, ValueError, "unknown schedule 'linear'; available: cosine, plateau, step"),
    ({"callbacks": 3}, TypeError, "callbacks must be a list of nkernels.callbacks.Callback"),
    ({"callbacks": [print]}, TypeError, "callbacks must be nkernels.callbacks.Callback instances"),
    ({"augment_shift": -1}, ValueError, "augment_shift must be at least 0"),
    ({"max_norm": 0}, ValueError, "max_norm must be a finite number above 0"),
    ({"resume": True}, ValueError, "resume=True needs checkpoint_dir"),
])
def test_bad_training_extras(digits, kwargs, error, message):
    with pytest.raises(error, match=message):
        nk.train(small_mlp(), digits[0][:40], digits[1][:40], epochs=1, **kwargs)


class DivergeInTheSecondEpoch(nk.callbacks.Callback):
    """Keeps the run's optimizer state and the weights after epoch 1, then sets a learning rate that diverges."""

    def on_epoch_end(self, epoch, logs):
        optimizer = self.context.optimizer
        self.optimizer, self.steps = optimizer, optimizer.steps
        self.state = {k: {n: a.copy() for n, a in v.items()} for k, v in optimizer.state.items()}
        self.weights = {k: v.copy() for k, v in self.context.model.params.items()}

    def on_epoch_begin(self, epoch):
        if epoch == 1:
            self.context.optimizer.lr = 1e4


@pytest.mark.parametrize("compiled", [True, False])
def test_divergence_restores_the_optimizer_state_and_callbacks_hear_of_it(compiled):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 8)).astype(np.float32)
    y = X.sum(1, keepdims=True)
    model = nk.Sequential([L.Dense(8, 8), L.Tanh(), L.Dense(8, 1)], seed=0)
    scheme = nk.schemes.Backprop(optimizer="sgd", lr=0.01, momentum=0.9, compiled=compiled)
    recorder, bar, diverge = RecordEvents(), nk.callbacks.ProgressBar(), DivergeInTheSecondEpoch()
    with pytest.raises(TrainingDivergedError, match="epoch 2"):
        scheme.fit(model, X, y, epochs=3, batch_size=32, seed=0, callbacks=[recorder, bar, diverge])
    assert recorder.events == ["train_begin", "epoch_begin", "epoch_begin", "TrainingDivergedError"]
    assert bar._progress is None  # the live display was stopped
    assert diverge.optimizer.steps == diverge.steps == 8
    for key, named in diverge.state.items():
        for name, array in named.items():
            np.testing.assert_array_equal(diverge.optimizer.state[key][name], array)
    for key, value in diverge.weights.items():
        np.testing.assert_array_equal(model.params[key], value)
    assert scheme.optimizer.lr == 0.01 and scheme.optimizer.steps == 0  # the configured optimizer is untouched
    assert np.isfinite(scheme.fit(model, X, y, epochs=1, batch_size=32, seed=0)["loss"][0])  # training goes on


@pytest.mark.parametrize("options", [{}, {"compiled": False}, {"optimizer": "sgd", "momentum": 0.9},
                                     {"schedule": "step"}])
def test_a_reused_scheme_trains_a_fresh_model_as_a_new_scheme_does(digits, options):
    X, y = digits[0][:160], digits[1][:160]
    scheme = nk.schemes.Backprop(lr=0.01, **options)
    scheme.fit(small_mlp(), X, y, epochs=3, batch_size=32, seed=0)
    reused, new = small_mlp(), small_mlp()
    h_reused = scheme.fit(reused, X, y, epochs=3, batch_size=32, seed=0)
    h_new = nk.schemes.Backprop(lr=0.01, **options).fit(new, X, y, epochs=3, batch_size=32, seed=0)
    assert h_reused["loss"] == h_new["loss"] and h_reused["lr"] == h_new["lr"]
    for key, value in new.params.items():
        np.testing.assert_array_equal(reused.params[key], value)


def test_an_optimizer_instance_is_configuration_that_no_run_changes(digits):
    X, y = digits[0][:160], digits[1][:160]
    adam = nk.optimizers.Adam(lr=0.01)
    models = [small_mlp(), small_mlp()]
    for model in models:
        nk.train(model, X, y, optimizer=adam, epochs=2, batch_size=32, seed=0)
    assert adam.steps == 0 and adam.state == {} and adam.lr == 0.01
    for key, value in models[0].params.items():
        np.testing.assert_array_equal(models[1].params[key], value)


def test_progress_bar_is_off_unless_asked_for(digits, capsys):
    nk.train(small_mlp(), digits[0][:64], digits[1][:64], epochs=2, batch_size=32)
    assert capsys.readouterr().out == ""
    nk.train(small_mlp(), digits[0][:64], digits[1][:64], epochs=2, batch_size=32, progress=True)
    out = capsys.readouterr().out
    assert "2/2" in out and "loss" in out and "acc" in out


def test_new_seeds_and_limits_reuse_the_compiled_step():
    """The augmentation seed, clip_norm and max_norm are arguments of the generated step, not constants."""
    from nkernels.optimizers import SGD
    from nkernels.trainers import CompiledTrainer

    model = nk.Sequential([L.Conv2D(1, 2, 3, padding=1), L.Flatten(), L.Dense(128, 10)], seed=0)
    loss = nk.losses.SoftmaxCrossEntropy()
    a = CompiledTrainer.build(model, loss, SGD(clip_norm=1.0, max_norm=2.0), (1, 8, 8), 16, (2, 1))
    b = CompiledTrainer.build(model, loss, SGD(clip_norm=5.0, max_norm=0.5), (1, 8, 8), 16, (2, 12345))
    assert a.step.source == b.step.source


def test_backward_before_forward_is_a_clear_error():
    from nkernels.errors import NotFittedError

    model = small_mlp()
    with pytest.raises(NotFittedError, match=r"backward\(\) called before forward\(x, training=True\)"):
        model.backward(np.zeros((2, 10), np.float32))
    model.forward(np.zeros((2, 64), np.float32), training=False)  # evaluation keeps nothing for backward
    with pytest.raises(ValueError, match="before forward"):
        model.backward(np.zeros((2, 10), np.float32))
    for loss in (nk.losses.SoftmaxCrossEntropy(), nk.losses.MSE()):
        with pytest.raises(ValueError, match=r"backward\(\) called before forward\(\)"):
            loss.backward()


def test_a_changed_kernel_source_gives_a_new_compiled_step(tmp_path, monkeypatch):
    """Numba's cache does not notice changes in the kernels a cached step calls, so their sources
    are fingerprinted into the step's own source (a stale step once crashed with a segfault)."""
    from nkernels.compiled import step
    from nkernels.runtime.cache_stamps import source_digest

    kernel_file = tmp_path / "kernels.py"
    kernel_file.write_text("def k(x):\n    return x\n")
    before = source_digest([str(kernel_file)])
    kernel_file.write_text("def k(x):\n    return 2 * x\n")
    assert source_digest([str(kernel_file)]) != before

    def build():
        return step.generate(small_mlp(), nk.losses.SoftmaxCrossEntropy(), nk.optimizers.Adam(), (16, 64)).source

    assert f"# kernel sources: {step.kernel_fingerprint(set())[:10]}" in build()
    sources = []
    for fingerprint in ("A", "B"):  # as two processes of two code bases (a process renders each step once)
        monkeypatch.setattr(step, "kernel_fingerprint", lambda modules, value=fingerprint: value)
        monkeypatch.setattr(step, "_GENERATED", type(step._GENERATED)())
        sources.append(build())
    assert sources[0] != sources[1]
