"""The autoencoder and rbm extractors: one training step against float64 references, stacking, errors."""
import numpy as np
import pytest

import nkernels as nk
from nkernels.errors import NotFittedError
from nkernels.kernels.cpu.random import normal_fill, uniform_fill
from nkernels_greedy import RBM, Autoencoder


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# Each activation as (f(a), f'(a) written through the output h = f(a)).
ACTIVATIONS = {
    "identity": (lambda a: a, lambda h: np.ones_like(h)),
    "relu": (lambda a: np.maximum(a, 0.0), lambda h: (h > 0).astype(float)),
    "sigmoid": (sigmoid, lambda h: h * (1.0 - h)),
    "tanh": (np.tanh, lambda h: 1.0 - h ** 2),
}


def autoencoder_reference(x, x_in, W, b, D, c, tied, activation, lr):
    """One SGD step of the autoencoder by hand. D is the decoder weight (features, hidden); tied uses W.T."""
    f, df = ACTIVATIONS[activation]
    decoder = W.T if tied else D
    h = f(x_in @ W.T + b)
    recon = h @ decoder.T + c
    loss = np.mean((recon - x) ** 2)
    d_recon = 2.0 * (recon - x) / x.size
    g_c = d_recon.sum(axis=0)
    g_decoder = d_recon.T @ h                    # (features, hidden)
    d_pre = (d_recon @ decoder) * df(h)
    g_W = d_pre.T @ x_in
    if tied:                                     # W is also the decoder
        g_W = g_W + g_decoder.T
    g_b = d_pre.sum(axis=0)
    new = {"weight": W - lr * g_W, "bias": b - lr * g_b, "decoder_bias": c - lr * g_c}
    if not tied:
        new["decoder_weight"] = D - lr * g_decoder
    return loss, new


def small_problem(seed=0, n=6, features=5, hidden=4):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 1, (n, features)), rng.normal(0, 0.5, (hidden, features)), rng.normal(0, 0.2, hidden))


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("activation", ["identity", "relu", "sigmoid", "tanh"])
def test_autoencoder_step_matches_a_float64_reference(tied, activation, compiled):
    x, W, b = small_problem()
    ae = Autoencoder(4, activation=activation, tied=tied, batch_size=len(x), shuffle=False, optimizer="sgd", lr=0.3,
                     seed=0, dtype="float64", compiled=compiled)
    ae.initialize(5, W.copy(), b.copy())
    D = None if tied else ae.decoder_weight_.copy()
    c = ae.decoder_bias_.copy()
    loss = ae.fit_epoch(x)
    ref_loss, ref = autoencoder_reference(x, x, W, b, D, c, tied, activation, lr=0.3)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    assert set(ae.params_) == set(ref)
    for name, value in ref.items():
        np.testing.assert_allclose(ae.params_[name], value, rtol=1e-10, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("compiled", [True, False])
def test_denoising_step_reconstructs_the_clean_input_from_the_masked_one(compiled):
    x, W, b = small_problem(1)
    ae = Autoencoder(4, activation="sigmoid", corruption=0.3, batch_size=len(x), shuffle=False, optimizer="sgd", lr=0.5,
                     seed=3, dtype="float64", compiled=compiled)
    ae.initialize(5, W.copy(), b.copy())
    c = ae.decoder_bias_.copy()
    # the mask comes from the counter-based generator: counter i for value i of the first batch
    u = np.empty(x.size)
    uniform_fill(ae.noise_seed_, 0, u)
    x_in = np.where(u.reshape(x.shape) < 0.3, 0.0, x)
    assert 0 < np.count_nonzero(x_in == 0) < x.size
    loss = ae.fit_epoch(x)
    ref_loss, ref = autoencoder_reference(x, x_in, W, b, None, c, True, "sigmoid", lr=0.5)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    for name, value in ref.items():
        np.testing.assert_allclose(ae.params_[name], value, rtol=1e-10, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("compiled", [True, False])
def test_gaussian_noise_step_reconstructs_the_clean_input_from_the_masked_noisy_one(compiled):
    """noise_std adds N(0, std) after the masking, from the counters after the mask's (both batches)."""
    x, W, b = small_problem(2, n=8)
    ae = Autoencoder(4, activation="tanh", corruption=0.2, noise_std=0.3, batch_size=4, shuffle=False,
                     optimizer="sgd", lr=0.5, seed=5, dtype="float64", compiled=compiled)
    ae.initialize(5, W.copy(), b.copy())
    params = {"weight": W, "bias": b, "decoder_bias": ae.decoder_bias_.copy()}
    ae.fit_epoch(x)
    for batch in range(2):  # each batch: 20 mask counters, then 20 noise counters
        xb = x[4 * batch:4 * batch + 4]
        u, z = np.empty(xb.size), np.empty(xb.size)
        uniform_fill(ae.noise_seed_, 40 * batch, u)
        normal_fill(ae.noise_seed_, 40 * batch + 20, 0.0, 0.3, z)
        x_in = np.where(u.reshape(xb.shape) < 0.2, 0.0, xb) + z.reshape(xb.shape)
        _, params = autoencoder_reference(xb, x_in, params["weight"], params["bias"], None, params["decoder_bias"],
                                          True, "tanh", lr=0.5)
    assert ae._counter == 80
    for name, value in params.items():
        np.testing.assert_allclose(ae.params_[name], value, rtol=1e-10, atol=1e-14, err_msg=name)


def test_masking_noise_drops_the_requested_fraction():
    from nkernels_greedy.kernels import corrupt

    x = np.ones(200_000)
    out = np.empty_like(x)
    corrupt(x, 0.25, 0.0, 7, 0, out)
    assert set(np.unique(out)) == {0.0, 1.0}
    assert abs(np.mean(out == 0) - 0.25) < 0.005
    again = np.empty_like(x)
    corrupt(x, 0.25, 0.0, 7, 0, again)
    np.testing.assert_array_equal(out, again)


def test_gaussian_noise_has_the_requested_spread_and_follows_the_mask_on_counters_of_its_own():
    from nkernels_greedy.kernels import corrupt, noise_counters

    x = np.ones(200_000)
    noise = np.empty_like(x)
    corrupt(np.zeros_like(x), 0.0, 0.5, 7, x.size, noise)  # the noise alone, from counters x.size onwards
    assert abs(np.mean(noise)) < 0.01 and abs(np.std(noise) - 0.5) < 0.01
    masked = np.empty_like(x)
    corrupt(x, 0.3, 0.0, 7, 0, masked)
    both = np.empty_like(x)
    corrupt(x, 0.3, 0.5, 7, 0, both)
    np.testing.assert_array_equal(both, masked + noise)
    assert noise_counters(x.size, 0.3, 0.5) == 2 * x.size and noise_counters(x.size, 0.0, 0.5) == x.size


def rbm_reference(v0, W, b, c, k, hidden, visible, seed, lr):
    """One CD-k step by hand, drawing the hidden samples from the same counters as the kernel."""
    n, nh = len(v0), len(b)

    def hidden_means(v):
        a = v @ W.T + b
        return a, (sigmoid(a) if hidden == "sigmoid" else np.maximum(a, 0.0))

    a, ph0 = hidden_means(v0)
    means = ph0
    for t in range(k):
        draws = np.empty(n * nh)
        if hidden == "sigmoid":  # binary units: on with their probability
            uniform_fill(seed, t * n * nh, draws)
            h = (draws.reshape(n, nh) < means).astype(float)
        else:                    # noisy rectified linear units: max(0, a + N(0, sigmoid(a)))
            normal_fill(seed, t * n * nh, 0.0, 1.0, draws)
            h = np.maximum(0.0, a + np.sqrt(sigmoid(a)) * draws.reshape(n, nh))
        vk = h @ W + c
        if visible == "bernoulli":
            vk = sigmoid(vk)
        a, means = hidden_means(vk)
    phk = means
    g_W = (phk.T @ vk - ph0.T @ v0) / n
    g_b = (phk - ph0).mean(axis=0)
    g_c = (vk - v0).mean(axis=0)
    new = {"weight": W - lr * g_W, "bias": b - lr * g_b, "visible_bias": c - lr * g_c}
    return np.mean((v0 - vk) ** 2), new


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("hidden, visible, k", [("sigmoid", "bernoulli", 1), ("sigmoid", "bernoulli", 3),
                                                ("relu", "gaussian", 1), ("relu", "bernoulli", 2)])
def test_rbm_cd_step_matches_a_float64_reference(hidden, visible, k, compiled):
    v0, W, b = small_problem(2)
    rbm = RBM(4, activation=hidden, visible=visible, k=k, batch_size=len(v0), shuffle=False, optimizer="sgd", lr=0.2,
              seed=5, dtype="float64", compiled=compiled)
    rbm.initialize(5, W.copy(), b.copy())
    c = rbm.visible_bias_.copy() + 0.1
    rbm.visible_bias_[...] = c
    error = rbm.fit_epoch(v0)
    ref_error, ref = rbm_reference(v0, W, b, c, k, hidden, visible, rbm.noise_seed_, lr=0.2)
    np.testing.assert_allclose(error, ref_error, rtol=1e-12)
    for name, value in ref.items():
        np.testing.assert_allclose(rbm.params_[name], value, rtol=1e-10, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("make", [
    lambda c: Autoencoder(6, corruption=0.2, tied=False, optimizer=nk.optimizers.AdamW(weight_decay=0.1), compiled=c),
    lambda c: Autoencoder(6, activation="tanh", optimizer="sgd", lr=0.05, compiled=c),
    lambda c: RBM(6, activation="relu", k=2, optimizer="adam", compiled=c),
    lambda c: RBM(6, optimizer=nk.optimizers.SGD(0.05, momentum=0.9, nesterov=True), compiled=c),
])
def test_compiled_runs_give_the_same_numbers_as_step_by_step(make):
    x = np.random.default_rng(4).uniform(0, 1, (45, 7)).astype(np.float32)
    fitted = []
    for compiled in (True, False):
        extractor = make(compiled).set_params(epochs=2, batch_size=10, seed=1)
        fitted.append(extractor.fit(x))
    assert fitted[0].loss_curve_ == fitted[1].loss_curve_
    for name in fitted[0].params_:
        np.testing.assert_array_equal(fitted[0].params_[name], fitted[1].params_[name], err_msg=name)


@pytest.mark.parametrize("cls", [Autoencoder, RBM])
def test_fitting_again_with_an_optimizer_instance_starts_from_a_fresh_optimizer(cls):
    x = np.random.default_rng(4).uniform(0, 1, (45, 7)).astype(np.float32)
    adam = nk.optimizers.Adam(lr=0.01)
    extractor = cls(6, optimizer=adam, epochs=2, batch_size=10, seed=1)
    first = {k: v.copy() for k, v in extractor.fit(x).params_.items()}
    second = extractor.fit(x)
    for name, value in first.items():
        np.testing.assert_array_equal(second.params_[name], value, err_msg=name)
    assert second.optimizer_ is not adam and adam.steps == 0 and adam.state == {}


def test_visible_units_default_to_bernoulli_only_for_data_in_the_unit_interval():
    x, _, _ = small_problem(3)
    assert RBM(3, epochs=1, seed=0).fit(x).visible_ == "bernoulli"
    assert RBM(3, epochs=1, seed=0).fit(x * 3 - 1).visible_ == "gaussian"


def test_extractors_learn_stack_and_become_layers(digits):
    from sklearn.base import clone
    from sklearn.linear_model import RidgeClassifier
    from sklearn.pipeline import make_pipeline

    X, y, X_test, y_test = digits
    pipe = make_pipeline(Autoencoder(96, epochs=6, lr=3e-3, seed=0), RBM(64, activation="sigmoid", epochs=6, seed=0),
                         RidgeClassifier())
    pipe = clone(pipe).fit(X, y)
    ae, rbm = pipe[0], pipe[1]
    assert ae.loss_curve_[-1] < ae.loss_curve_[0] / 2
    assert rbm.loss_curve_[-1] < rbm.loss_curve_[0]
    assert pipe.score(X_test, y_test) > 0.9
    stacked = nk.Sequential(ae.to_layers() + rbm.to_layers())
    np.testing.assert_allclose(stacked.predict(X_test), rbm.transform(ae.transform(X_test)), rtol=1e-5, atol=1e-6)
    assert ae.reconstruction_error(X_test) < 0.02


def test_registered_as_extractors():
    assert nk.registry.extractors["autoencoder"] is Autoencoder
    assert nk.registry.extractors["rbm"] is RBM
    assert nk.registry.extractors.provider("rbm").distribution == "nkernels-greedy"


def test_bad_arguments_and_input_say_what_was_expected():
    with pytest.raises(ValueError, match="activation must be one of"):
        Autoencoder(8, activation="swish")
    with pytest.raises(ValueError, match="activation must be one of 'sigmoid', 'relu'"):
        RBM(8, activation="tanh")
    with pytest.raises(ValueError, match=r"corruption must be a finite number in \[0, 1\), got 1.0"):
        Autoencoder(8, corruption=1.0)
    with pytest.raises(ValueError, match="k must be at least 1"):
        RBM(8, k=0)
    with pytest.raises(ValueError, match="visible must be one of"):
        RBM(8, visible="poisson")
    with pytest.raises(ValueError, match="unknown optimizer"):
        Autoencoder(8, optimizer="lbfgs")
    with pytest.raises(NotFittedError, match="not fitted"):
        Autoencoder(8).transform(np.zeros((2, 3)))
    x = np.random.default_rng(0).uniform(size=(10, 6))
    ae = Autoencoder(4, epochs=1, seed=0).fit(x)
    with pytest.raises(ValueError, match="X has 5 features but the extractor was fitted on 6"):
        ae.transform(x[:, :5])
    bad = x.copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Autoencoder(4, epochs=1).fit(bad)
    with pytest.raises(ValueError, match="no parameter"):
        ae.set_params(width=3)
    with pytest.raises(ValueError, match="weight must be a C-contiguous float32 array of shape"):
        Autoencoder(4).initialize(6, weight=np.zeros((6, 4), np.float32))
