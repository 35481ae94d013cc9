"""The ``es`` scheme: registration, options, updates, Dask workers and the command line."""
import numpy as np
import pytest

import nkernels as nk
from nkernels.callbacks import ProgressBar
from nkernels.cli import main
from nkernels_es import EvolutionStrategies
from nkernels_es.estimate import centered_ranks
from nkernels_es.noise import NoiseTable
from nkernels_es.population import LayerwiseProblem, flat_parameters, make_problem, parameter_views

L = nk.layers


@pytest.fixture(scope="module")
def digits():
    return nk.datasets.load("digits")


def digits_mlp(seed=0, hidden=(128, 64)):
    """The issue's MLP, 64-128-64-10."""
    return nk.presets.mlp((64,), 10, hidden=hidden, seed=seed)


def params_of(model):
    return flat_parameters(model)[0]


def test_registered_through_the_entry_point():
    assert nk.registry.schemes["es"] is EvolutionStrategies
    entry = nk.registry.schemes.provider("es")
    assert (entry.plugin, entry.distribution) == ("es", "nkernels-es")


@pytest.mark.parametrize("options, error, message", [
    ({"population": 7}, ValueError, "population must be even"),
    ({"population": 0}, ValueError, "population must be at least 2, got 0"),
    ({"sigma": 0.0}, ValueError, "sigma must be a finite number above 0"),
    ({"sigma": float("nan")}, ValueError, "sigma must be a finite number above 0"),
    ({"fitness_shaping": "softmax"}, ValueError, "fitness_shaping must be one of 'centered_rank', 'none', got 'softmax'"),
    ({"generations_per_epoch": 0}, ValueError, "generations_per_epoch must be at least 1, got 0"),
    ({"optimizer": "lion"}, ValueError, "unknown optimizer 'lion'"),
    ({"lr": -1.0}, ValueError, "lr must be a finite number above 0"),
    ({"workers": 0}, ValueError, "workers must be at least 1, got 0"),
    ({"workers": 2, "scheduler": "tcp://127.0.0.1:1"}, ValueError, "not both"),
    ({"compiled": "yes"}, TypeError, "compiled must be True or False"),
    ({"optimizer": nk.optimizers.Adam(), "lr": 0.1}, ValueError, "lr given together with an Optimizer instance"),
    ({"optimizer": nk.optimizers.SGD(), "weight_decay": 0.0, "momentum": 0.9}, ValueError,
     r"momentum, weight_decay given together with an Optimizer instance.*set them on the instance"),
])
def test_bad_options_are_clear_errors(options, error, message):
    with pytest.raises(error, match=message):
        EvolutionStrategies(**options)


def test_bad_data_and_a_small_noise_table_are_rejected_before_training(digits):
    X, y = digits[0][:50], digits[1][:50]
    with pytest.raises(ValueError, match="labels must lie in"):
        nk.train(digits_mlp(), X, y + 10, scheme="es", epochs=1)
    with pytest.raises(ValueError, match="pass a larger noise_size"):
        nk.train(digits_mlp(), X, y, scheme="es", epochs=1, noise_size=1000)
    with pytest.raises(ValueError, match="X has 50 samples but y has 49"):
        nk.train(digits_mlp(), X, y[:49], scheme="es", epochs=1)


@pytest.mark.parametrize("make, where", [
    (lambda: [L.Dense(64, 16), L.BatchNorm1D(16), L.ReLU(), L.Dense(16, 10)], r"layer 1 \(BatchNorm1D\)"),
    (lambda: [L.Dense(64, 16), L.Residual([L.Dense(16, 16), L.BatchNorm1D(16)]), L.Dense(16, 10)],
     r"layer 1\.body\.1 \(BatchNorm1D\)"),
], ids=["batchnorm", "batchnorm-in-residual"])
def test_a_model_that_couples_the_batch_is_refused_before_training(digits, make, where):
    """es scores members in evaluation mode: a BatchNorm would train as a fixed affine map, silently."""
    model = nk.Sequential(make(), seed=0)
    before = {key: value.copy() for key, value in {**model.params, **model.buffers}.items()}
    with pytest.raises(ValueError, match=where + r": it couples the samples of a batch.*scheme=\"backprop\""):
        nk.train(model, digits[0][:64], digits[1][:64], scheme="es", epochs=1, population=4)
    for key, value in {**model.params, **model.buffers}.items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def reference_mlp_loss(theta, X, y, sizes=(64, 128, 64, 10)):
    """Cross-entropy of the ReLU MLP ``sizes`` with flat float64 parameters ``theta`` (weight, bias per layer)."""
    h, start = X.astype(np.float64), 0
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = theta[start:start + n_out * n_in].reshape(n_out, n_in)
        b = theta[start + n_out * n_in:start + n_out * n_in + n_out]
        start += n_out * n_in + n_out
        h = h @ W.T + b
        if i < len(sizes) - 2:
            h = np.maximum(h, 0)
    shifted = h - h.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -np.mean(log_probs[np.arange(len(y)), y])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_one_generation_is_the_official_update(digits, optimizer):
    # One generation by hand, as the paper's code does it: fitness = -loss on a minibatch, centered
    # ranks, g = sum_i (r+_i - r-_i) eps_i / 2n (not divided by sigma), then a step on -g + l2coeff * theta.
    X, y = digits[0][:200], digits[1][:200]
    model = digits_mlp(seed=3)
    theta = params_of(model).astype(np.float64)
    lr = {"sgd": 0.5, "adam": 0.01}[optimizer]
    scheme = EvolutionStrategies(population=8, sigma=0.05, optimizer=optimizer, lr=lr, weight_decay=0.005,
                                 generations_per_epoch=1)
    scheme.fit(model, X, y, epochs=1, batch_size=16, seed=11)

    rng = np.random.default_rng(11)  # the scheme's draws, in its order
    noise = NoiseTable(int(rng.integers(2**62)), max(2**23, 16 * theta.size), np.float32)
    rows = rng.choice(200, 16, replace=False)
    offsets = noise.sample_offsets(rng, 4, theta.size)
    eps = [noise.get(o, theta.size).astype(np.float64) for o in offsets]
    fitness = np.array([[-reference_mlp_loss(theta + 0.05 * e, X[rows], y[rows]),
                         -reference_mlp_loss(theta - 0.05 * e, X[rows], y[rows])] for e in eps])
    ranks = centered_ranks(fitness)
    g = sum((ranks[i, 0] - ranks[i, 1]) * e for i, e in enumerate(eps)) / 8
    grad = -g + 0.005 * theta
    if optimizer == "sgd":
        expected = theta - lr * grad
    else:  # Adam's first step, bias-corrected
        m, v = (1 - 0.9) * grad, (1 - 0.999) * grad ** 2
        expected = theta - lr * (m / (1 - 0.9)) / (np.sqrt(v / (1 - 0.999)) + 1e-8)
    np.testing.assert_allclose(params_of(model), expected, rtol=1e-4, atol=1e-6)


def test_constant_fitness_leaves_the_weights_alone():
    # All-zero inputs into bias-free Dense layers: every member has the same loss, ln(3). The
    # antithetic pairs must cancel exactly (ties share their rank), so with no weight decay nothing moves.
    model = nk.Sequential([L.Dense(5, 4, bias=False), L.ReLU(), L.Dense(4, 3, bias=False)], seed=0)
    before = params_of(model)
    history = nk.train(model, np.zeros((40, 5), np.float32), np.arange(40) % 3, scheme="es", epochs=2,
                       population=16, weight_decay=0.0, generations_per_epoch=3, seed=0)
    np.testing.assert_array_equal(params_of(model), before)
    assert history["best_fitness"] == history["mean_fitness"] == pytest.approx([-np.log(3)] * 2)


def test_same_seed_same_weights_and_logs_per_epoch(digits):
    X, y = digits[0][:300], digits[1][:300]
    runs = []
    for _ in range(2):
        model = digits_mlp()
        history = nk.train(model, X, y, scheme="es", epochs=2, population=16, batch_size=32, seed=4)
        runs.append((params_of(model), history))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    history = runs[0][1]
    assert history["generation"] == [10, 20]  # an epoch: ceil(300 / 32) generations
    for best, mean in zip(history["best_fitness"], history["mean_fitness"]):
        assert best >= mean
    assert {"loss", "accuracy", "lr", "time"} <= set(history)
    shown = ProgressBar.format_metrics(history.last())
    assert "generation" in shown and "best_fitness" in shown and "mean_fitness" in shown


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_an_optimizer_instance_brings_its_own_settings(digits, optimizer):
    X, y = digits[0][:200], digits[1][:200]
    settings = {"sgd": {"lr": 0.5, "momentum": 0.9}, "adam": {"lr": 0.02, "betas": (0.8, 0.99)}}[optimizer]
    instance = nk.optimizers.get_optimizer(optimizer, weight_decay=0.001, **settings)
    runs = []
    for scheme in (EvolutionStrategies(population=8, optimizer=instance, generations_per_epoch=3),
                   EvolutionStrategies(population=8, optimizer=optimizer, weight_decay=0.001,
                                       generations_per_epoch=3, **settings)):
        model = digits_mlp(hidden=(16,))
        history = scheme.fit(model, X, y, epochs=2, batch_size=16, seed=2)
        runs.append((params_of(model), history["lr"]))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1] == [settings["lr"]] * 2
    assert instance.steps == 0 and instance.state == {}  # the run trained a fresh copy


def test_a_reused_scheme_trains_a_fresh_model_as_a_new_scheme_does(digits):
    X, y = digits[0][:200], digits[1][:200]
    scheme = EvolutionStrategies(population=8, generations_per_epoch=3)
    scheme.fit(digits_mlp(hidden=(16,)), X, y, epochs=1, seed=0)
    reused, new = digits_mlp(hidden=(16,)), digits_mlp(hidden=(16,))
    scheme.fit(reused, X, y, epochs=1, seed=0)
    EvolutionStrategies(population=8, generations_per_epoch=3).fit(new, X, y, epochs=1, seed=0)
    np.testing.assert_array_equal(params_of(reused), params_of(new))


def fitted(kind, X):
    if kind == "kmeans":
        return nk.registry.extractors["kmeans"](n_clusters=12, seed=0).fit(X)
    if kind == "autoencoder":
        return nk.registry.extractors["autoencoder"](12, epochs=1, seed=0).fit(X)
    trained = digits_mlp(hidden=(12,))
    nk.train(trained, X, np.arange(len(X)) % 10, epochs=1, seed=0)
    return trained[:2]


@pytest.mark.parametrize("kind", ["kmeans", "autoencoder", "sequential"])
def test_members_are_scored_on_the_real_model_with_its_frozen_layers(digits, kind):
    """The member-by-member problem evaluates the model as it is, Frozen extractors' state included,
    also after travelling to a worker (pickled), and leaves the caller's model alone."""
    import pickle

    X, y = digits[0][:120], digits[1][:120]
    model = nk.Sequential([L.Frozen(fitted(kind, X)), L.Dense(12, 10)], seed=0)
    theta, layout = flat_parameters(model)
    loss = nk.losses.SoftmaxCrossEntropy()
    problem = make_problem(model, layout, X, y, loss)
    assert isinstance(problem, LayerwiseProblem)
    noise = NoiseTable(3, 10_000, np.float32)
    offsets = noise.sample_offsets(np.random.default_rng(0), 3, theta.size)
    rows = np.arange(0, 120, 3)
    expected = np.empty((3, 2))
    for i, offset in enumerate(offsets):
        for column, sign in enumerate((1, -1)):
            member = theta + np.float32(sign * 0.05) * noise.get(offset, theta.size)
            model.set_params(parameter_views(member, layout))
            expected[i, column] = loss.forward(model.forward(X[rows]), y[rows])
    model.set_params(parameter_views(theta, layout))
    np.testing.assert_array_equal(problem.losses(theta, noise, offsets, 0.05, rows), expected)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(problem)).losses(theta, noise, offsets, 0.05, rows),
                                  expected)
    np.testing.assert_array_equal(flat_parameters(model)[0], theta)


def test_models_other_than_dense_chains_fall_back_member_by_member(digits):
    X, y = digits[0][:64].reshape(-1, 1, 8, 8), digits[1][:64]
    model = nk.Sequential([L.Conv2D(1, 2, 3, padding=1), L.ReLU(), L.MaxPool2D(2), L.Flatten(),
                           L.Dense(32, 10)], seed=0)
    before = params_of(model)
    history = nk.train(model, X, y, scheme="es", epochs=1, population=4, generations_per_epoch=2, seed=0)
    assert history["generation"] == [2] and not np.array_equal(params_of(model), before)


def test_compiled_and_member_by_member_paths_give_the_same_update(digits):
    X, y = digits[0][:100], digits[1][:100]
    results = []
    for compiled in (True, False):
        model = digits_mlp(hidden=(16,))
        nk.train(model, X, y, scheme="es", epochs=1, population=6, generations_per_epoch=2, compiled=compiled,
                 seed=5)
        results.append(params_of(model))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-6)


def test_divergence_restores_the_epoch_start_and_says_so(digits):
    X, y = digits[0][:64], digits[1][:64]
    model = digits_mlp()
    before = params_of(model)
    with pytest.raises(nk.TrainingDivergedError, match="diverged in epoch 1"):
        nk.train(model, X, y, scheme="es", epochs=1, population=4, sigma=1e38, seed=0)
    np.testing.assert_array_equal(params_of(model), before)


class RecordSettings(nk.callbacks.Callback):
    """Keeps the settings a scheme reports when training starts."""

    def on_train_begin(self, model, params):
        self.params = params


def test_one_and_two_dask_workers_give_identical_updates(digits):
    pytest.importorskip("dask.distributed")
    X, y = digits[0][:200], digits[1][:200]
    runs = {}
    for workers in (None, 1, 2):
        model, settings = digits_mlp(), RecordSettings()
        history = nk.train(model, X, y, scheme="es", epochs=1, population=14, batch_size=32,
                           generations_per_epoch=3, workers=workers, callbacks=[settings], seed=1)
        assert settings.params["workers"] == (workers or 1)  # 7 pairs: one slice, or slices of 4 and 3
        runs[workers] = params_of(model), history["mean_fitness"]
    np.testing.assert_array_equal(runs[1][0], runs[None][0])
    np.testing.assert_array_equal(runs[2][0], runs[None][0])
    assert runs[1][1] == runs[2][1] == runs[None][1]


def test_command_line_trains_with_es(capsys):
    assert main(["train", "--scheme", "es", "--epochs", "1", "--option", "population=8",
                 "--option", "generations_per_epoch=2", "--lr", "0.02"]) == 0
    out = capsys.readouterr().out
    assert "generation" in out and "best_fitness" in out and "mean_fitness" in out and "test accuracy" in out
