"""The gan scheme: its steps against PyTorch, both chains in checkpoints, and bad input refused."""
import numpy as np
import pytest

import nkernels as nk
from nkernels_gan import GAN

L = nk.layers


def generator(latent=4, out=64, dtype="float32", seed=3):
    return nk.Sequential([L.Dense(latent, 16), L.ReLU(), L.Dense(16, out), L.Sigmoid()], seed=seed, dtype=dtype)


def discriminator(dtype="float32", width=64):
    return nk.Sequential([L.Dense(width, 16), L.ReLU(), L.Dense(16, 1)], seed=0, dtype=dtype)


def train(X, G, D, epochs=2, **options):
    options.setdefault("steps_per_epoch", 3)
    return nk.train(D, X, scheme="gan", generator=G, epochs=epochs, batch_size=8, seed=0, **options)


@pytest.mark.parametrize("compiled", [True, False])
def test_the_steps_are_those_of_a_pytorch_gan(digits, compiled):
    """Two steps with the scheme's random draws, replayed in PyTorch: same weights (float64)."""
    torch = pytest.importorskip("torch")

    X = digits[0][:40].astype(np.float64)
    G, D = generator(dtype="float64"), discriminator("float64")
    tG = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 64), torch.nn.Sigmoid())
    tD = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    for t, model in ((tG, G), (tD, D)):
        t.double().load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.params.items()})
    lr, B, steps = 2e-3, 8, 2
    nk.train(D, X, scheme="gan", generator=G, epochs=1, batch_size=B, seed=0, lr=lr, steps_per_epoch=steps,
             compiled=compiled)

    rng = np.random.default_rng(0)  # the run's generator, drawn in the scheme's order
    order = rng.permutation(len(X))
    optD = torch.optim.Adam(tD.parameters(), lr=lr, betas=(0.5, 0.999))
    optG = torch.optim.Adam(tG.parameters(), lr=lr, betas=(0.5, 0.999))
    bce = torch.nn.BCEWithLogitsLoss()
    for step in range(steps):
        z = torch.from_numpy(rng.standard_normal((2, B, 4)))
        real = torch.from_numpy(X[order[step * B:(step + 1) * B]])
        optD.zero_grad()
        joined = torch.cat([real, tG(z[0]).detach()])
        bce(tD(joined), torch.cat([torch.ones(B, 1), torch.zeros(B, 1)]).double()).backward()
        optD.step()
        optG.zero_grad()
        bce(tD(tG(z[1])), torch.ones(B, 1).double()).backward()
        optG.step()  # the discriminator's gradients of this step are never applied
    for t, model in ((tG, G), (tD, D)):
        for key, value in t.state_dict().items():
            np.testing.assert_allclose(model.params[key], value.numpy(), rtol=1e-9, atol=1e-12, err_msg=key)


def test_a_resumed_run_restores_the_generator_and_its_optimizer(digits, tmp_path):
    X = digits[0][:64]
    straight_G, straight_D = generator(), discriminator()
    train(X, straight_G, straight_D, epochs=3)
    G, D = generator(), discriminator()
    train(X, G, D, epochs=2, checkpoint_dir=tmp_path)
    resumed_G, resumed_D = generator(), discriminator()  # a new process builds both again
    history = train(X, resumed_G, resumed_D, epochs=3, checkpoint_dir=tmp_path, resume=True)
    for straight, resumed in ((straight_G, resumed_G), (straight_D, resumed_D)):
        for key, value in straight.params.items():
            np.testing.assert_array_equal(resumed.params[key], value, err_msg=key)
    assert len(history["generator_loss"]) == 3


def test_a_checkpoint_of_another_optimizer_is_refused(digits, tmp_path):
    X = digits[0][:64]
    train(X, generator(), discriminator(), epochs=1, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="resume with the same optimizer"):
        train(X, generator(), discriminator(), epochs=2, checkpoint_dir=tmp_path, resume=True, optimizer="sgd")


def test_divergence_restores_the_generator_too(digits):
    X = digits[0][:64]
    G, D = generator(), discriminator()
    kept = {}

    class Poison(nk.callbacks.Callback):
        def on_epoch_begin(self, epoch):
            if epoch == 1:
                kept.update({k: v.copy() for k, v in G.params.items()})
                G.params["2.weight"][0, 0] = np.nan

    with pytest.raises(nk.TrainingDivergedError, match="epoch 2.*generator_lr"):
        train(X, G, D, epochs=3, callbacks=[Poison()])
    for key, value in G.params.items():
        np.testing.assert_array_equal(value, kept[key], err_msg=key)


def test_both_chains_learn_and_the_logs_say_how(digits):
    X = digits[0][:64]
    G, D = generator(), discriminator()
    start_G, start_D = G.params, {k: v.copy() for k, v in D.params.items()}
    start_G = {k: v.copy() for k, v in start_G.items()}
    history = train(X, G, D)
    assert set(history) >= {"loss", "generator_loss", "discriminator_accuracy", "lr", "time"}
    assert 0 <= history["discriminator_accuracy"][-1] <= 1
    for model, start in ((G, start_G), (D, start_D)):
        assert all(not np.array_equal(model.params[k], v) for k, v in start.items())


def test_generator_lr_and_a_schedule_scale_together(digits):
    X = digits[0][:64]
    scheme = GAN(generator(), lr=1e-3, generator_lr=4e-3, steps_per_epoch=2, schedule="cosine")
    seen = []

    class Watch(nk.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            seen.append((logs["lr"], scheme.generator_optimizer.lr))

    scheme.fit(discriminator(), X, epochs=3, batch_size=8, seed=0, callbacks=[Watch()])
    for lr, generator_lr in seen:
        assert generator_lr == pytest.approx(4 * lr)
    assert seen[-1][0] < seen[0][0]


@pytest.mark.parametrize("make, error, message", [
    (lambda: GAN(generator=[L.Dense(4, 64)]), TypeError, "generator must be an nk.Sequential"),
    (lambda: GAN(generator(), latent_dim=8), ValueError, "latent_dim=8 does not match the generator"),
    (lambda: GAN(nk.Sequential([L.ReLU(), L.Dense(4, 64)], seed=0)), TypeError, "does not say its input width"),
    (lambda: GAN(generator(), lr=-1), ValueError, "lr"),
])
def test_bad_options_are_refused(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("G, D, message", [
    (generator(out=32), discriminator(), r"generator makes samples of shape \(32,\), the data's are \(64,\)"),
    (generator(), nk.Sequential([L.Dense(64, 2)], seed=0), "one logit per sample"),
    (generator(dtype="float64"), discriminator(), "generator is float64 and the discriminator float32"),
])
def test_chains_that_do_not_fit_the_data_are_refused(digits, G, D, message):
    with pytest.raises(ValueError, match=message):
        train(digits[0][:64], G, D)


def test_labels_are_refused(digits):
    X, y = digits[0][:64], digits[1][:64]
    with pytest.raises(ValueError, match="y would have no effect"):
        nk.train(discriminator(), X, y, scheme="gan", generator=generator(), epochs=1)
    with pytest.raises(ValueError, match="y_val would have no effect"):
        train(X, generator(), discriminator(), validation_data=(X, y))


def test_validation_scores_the_discriminator_on_held_out_and_generated_samples(digits):
    """val_loss and val_discriminator_accuracy: the discriminator on the held-out samples (target 1) and as many
    generated ones from a fixed seed (target 0); scoring them leaves training unchanged."""
    X, X_val = digits[0][:64], digits[2][:40]
    G, D = generator(), discriminator()
    history = train(X, G, D, validation_data=X_val)
    fake = G.forward(np.random.default_rng(0).standard_normal((40, 4)).astype(np.float32))
    targets = np.concatenate([np.ones((40, 1)), np.zeros((40, 1))])
    expected = nk.evaluate(D, np.concatenate([X_val, fake]), targets, loss="bce_with_logits")
    assert history["val_loss"][-1] == pytest.approx(expected["loss"], rel=1e-6)
    assert history["val_discriminator_accuracy"][-1] == pytest.approx(expected["accuracy"])
    plain = train(X, generator(), discriminator())
    np.testing.assert_array_equal(history["loss"], plain["loss"])
