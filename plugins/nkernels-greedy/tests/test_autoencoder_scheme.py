"""The autoencoder scheme: conformance, what an epoch trains on, the encoder, conv chains, refusals."""
import numpy as np
import pytest

import nkernels as nk
from nkernels.losses import get_loss
from nkernels.testing import SchemeConformance
from nkernels.trainers import make_trainer, run_epoch_batches
from nkernels_greedy import AutoencoderScheme
from nkernels_greedy.kernels import corrupt

L = nk.layers


def dense_autoencoder(seed=0):
    return nk.Sequential([L.Dense(64, 16), L.ReLU(), L.Dense(16, 64)], seed=seed)


def conv_autoencoder(seed=0):
    """The main README's conv autoencoder (issue 21) with fewer channels: 1x8x8 -> 4x4x4 -> 2x2x2 -> 1x8x8."""
    return nk.Sequential([L.Conv2D(1, 4, 3, padding=1), L.ReLU(), L.MaxPool2D(2),
                          L.Conv2D(4, 2, 3, padding=1), L.ReLU(), L.MaxPool2D(2),
                          L.ConvTranspose2D(2, 4, 2, stride=2), L.ReLU(),
                          L.Upsample2D(2), L.Conv2D(4, 1, 3, padding=1), L.Sigmoid()], seed=seed)


class TestAutoencoderConformance(SchemeConformance):
    """A denoising Dense autoencoder (the default 30% masking) on 240 digits."""

    make_scheme = staticmethod(AutoencoderScheme)
    fit_options = {"batch_size": 64}

    def make_model(self):
        return dense_autoencoder()


class TestGaussianNoiseConformance(TestAutoencoderConformance):
    """Masking and Gaussian noise together, layer by layer (the noise's counters follow the mask's)."""

    make_scheme = staticmethod(lambda **options: AutoencoderScheme(corruption=0.2, noise_std=0.1, compiled=False,
                                                                   **options))


@pytest.fixture(scope="module")
def data(digits):
    X, _, X_test, _ = digits
    return X[:200], X_test[:100]


@pytest.mark.parametrize("options", [{"corruption": 0.3}, {"corruption": 0.2, "noise_std": 0.1}, {"corruption": 0.0},
                                     {"corruption": 0.3, "loss": "bce_with_logits"}])
def test_an_epoch_reconstructs_the_clean_inputs_from_a_copy_corrupted_from_the_run_generator(data, options):
    """Epoch by hand: the noise seed, then the batch order, from the run's generator; the targets are clean."""
    X, _ = data
    model, by_hand = dense_autoencoder(), dense_autoencoder()
    history = nk.train(model, X, scheme="autoencoder", epochs=2, batch_size=50, seed=4, **options)
    assert "accuracy" not in history
    rng = np.random.default_rng(4)
    loss, optimizer = get_loss(options.get("loss", "mse")), nk.optimizers.get_optimizer("adam")
    trainer = make_trainer(by_hand, loss, optimizer, (64,), 50)
    inputs = np.empty_like(X)
    for _ in range(2):
        if options["corruption"] or options.get("noise_std"):
            corrupt(X.reshape(-1), options["corruption"], options.get("noise_std", 0.0), int(rng.integers(2**62)), 0,
                    inputs.reshape(-1))
        else:
            inputs = X
        events = nk.callbacks.CallbackList([], by_hand, None)
        run_epoch_batches(trainer.run, inputs, X, rng.permutation(len(X)), 50, events, lambda d, c: None, False)
    for key, value in model.params.items():
        np.testing.assert_array_equal(value, by_hand.params[key], err_msg=key)


def test_validation_loss_is_the_reconstruction_error_of_the_clean_validation_inputs(data):
    X, X_val = data
    model = dense_autoencoder()
    history = nk.train(model, X, scheme="autoencoder", epochs=2, seed=0, validation_data=(X_val, None))
    assert history["val_loss"][-1] == pytest.approx(np.mean((model.predict(X_val) - X_val) ** 2), rel=1e-5)
    again = dense_autoencoder()
    assert nk.train(again, X, scheme="autoencoder", epochs=2, seed=0, validation_data=X_val)["val_loss"] == \
        history["val_loss"]
    bce = dense_autoencoder()
    history = nk.train(bce, X, scheme="autoencoder", loss="bce_with_logits", epochs=2, seed=0, validation_data=X_val)
    logits = bce.predict(X_val).astype(np.float64)
    expected = np.mean(np.logaddexp(0, logits) - X_val * logits)  # softplus(z) - x z, the BCE of sigmoid(z)
    assert list(history) == ["loss", "val_loss", "lr", "time"]
    assert history["val_loss"][-1] == pytest.approx(expected, rel=1e-5)


def test_the_encoder_is_the_first_block_by_default_or_model_up_to_code_layer(data):
    X, X_val = data
    model = nk.Sequential([L.Dense(64, 24), L.ReLU(), L.Dense(24, 8), L.Tanh(), L.Dense(8, 64)], seed=0)
    scheme = AutoencoderScheme(corruption=0.1)
    scheme.fit(model, X, epochs=1)
    encoder = scheme.encoder(model)
    assert [type(layer) for layer in encoder] == [L.Dense, L.ReLU] and encoder.layers[0] is model.layers[0]
    np.testing.assert_array_equal(encoder.predict(X_val), model[:2].predict(X_val))
    code = AutoencoderScheme(code_layer=4).encoder(model)
    assert code.predict(X_val).shape == (len(X_val), 8)
    # frozen under a classifier head: only the head learns
    classifier = nk.Sequential([L.Frozen(code), L.Dense(8, 10)], seed=0)
    before = model.params["0.weight"].copy()
    nk.train(classifier, X, np.arange(len(X)) % 10, epochs=1)
    np.testing.assert_array_equal(model.params["0.weight"], before)


def test_a_conv_autoencoder_trains_and_its_encoder_gives_feature_maps(data):
    X, X_val = data
    images, val_images = X.reshape(-1, 1, 8, 8), X_val.reshape(-1, 1, 8, 8)
    model = conv_autoencoder()
    scheme = AutoencoderScheme()
    history = scheme.fit(model, images, epochs=3, seed=0, validation_data=(val_images, None))
    assert history["val_loss"][-1] < history["val_loss"][0]
    assert scheme.encoder(model).predict(val_images).shape == (len(val_images), 4, 4, 4)


def test_adapt_model_replaces_the_classifier_output_by_a_decoder_to_the_inputs(data):
    X, _ = data
    classifier = nk.Sequential([L.Dense(64, 32), L.ReLU(), L.Dense(32, 16), L.ReLU(), L.Dense(16, 10)], seed=0)
    scheme = AutoencoderScheme()
    model = scheme.adapt_model(classifier, 64, 10)
    assert [type(layer) for layer in model] == [L.Dense, L.ReLU, L.Dense, L.ReLU, L.Dense]
    assert model.layers[:4] == classifier.layers[:4] and model.output_shape((1, 64)) == (1, 64)
    scheme.fit(model, X, epochs=1, seed=0)
    assert scheme.encoder(model).predict(X).shape == (len(X), 32)


def test_noise_std_alone_switches_the_default_masking_off():
    assert AutoencoderScheme().corruption == 0.3
    assert AutoencoderScheme(noise_std=0.2).corruption == 0.0
    assert AutoencoderScheme(noise_std=0.2, corruption=0.1).corruption == 0.1


@pytest.mark.parametrize("options, match", [
    ({"augment_shift": 1}, "augment_shift would shift the inputs but not the clean targets"),
    ({"loss": "cross_entropy"}, "loss must be one of"),
    ({"corruption": 1.0}, "corruption"),
    ({"noise_std": -0.1}, "noise_std"),
    ({"code_layer": 0}, "code_layer"),
])
def test_bad_options_are_refused(options, match):
    with pytest.raises((ValueError, TypeError), match=match):
        AutoencoderScheme(**options).fit(dense_autoencoder(), np.zeros((4, 64), np.float32), epochs=1)


def test_bad_chains_and_data_are_refused_before_training(data):
    X, X_val = data
    model = nk.Sequential([L.Dense(64, 16), L.ReLU(), L.Dense(16, 10)], seed=0)
    with pytest.raises(ValueError, match=r"must reconstruct its input.*\(64,\) to \(10,\)"):
        nk.train(model, X, scheme="autoencoder", epochs=1)
    with pytest.raises(ValueError, match="code_layer=3 must lie in 1..2"):
        nk.train(dense_autoencoder(), X, scheme="autoencoder", code_layer=3, epochs=1)
    with pytest.raises(ValueError, match="one trainable layer"):
        nk.train(nk.Sequential([L.Dense(64, 64)], seed=0), X, scheme="autoencoder", epochs=1)
    with pytest.raises(ValueError, match=r"bce_with_logits.*X holds values in \[-1, 1\]"):
        nk.train(dense_autoencoder(), 2 * X - 1, scheme="autoencoder", loss="bce_with_logits", epochs=1)
    with pytest.raises(ValueError, match=r"logits, but its last layer \(10\) is a Sigmoid"):
        nk.train(conv_autoencoder(), X.reshape(-1, 1, 8, 8), scheme="autoencoder", loss="bce_with_logits", epochs=1)
    with pytest.raises(ValueError, match="y_val would have no effect"):
        nk.train(dense_autoencoder(), X, scheme="autoencoder", validation_data=(X_val, np.zeros(len(X_val))),
                 epochs=1)


def test_the_command_line_trains_an_autoencoder_of_a_preset_and_shows_its_test_loss(tmp_path, capsys):
    """`nkernels train --scheme autoencoder`: no labels go to the scheme, the preset becomes the scheme's
    autoencoder (adapt_model) and the table and summary show the reconstruction loss on the test inputs."""
    from nkernels.cli import main

    path = tmp_path / "ae.nk"
    assert main(["train", "--scheme", "autoencoder", "--epochs", "2", "--quiet", "--save", str(path)]) == 0
    out = capsys.readouterr().out
    assert "test loss" in out and "accuracy" not in out
    model = nk.load(path)
    X_test = nk.datasets.load("digits")[2]
    assert model.predict(X_test).shape == X_test.shape
    reconstruction = float(np.mean((model.predict(X_test) - X_test) ** 2))
    assert f"test loss {reconstruction:.4f}" in out
