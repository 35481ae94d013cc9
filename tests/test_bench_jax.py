"""The JAX peer of the speed comparisons is the same model as nkernels' benchmark cases.

For every case the JAX twin, given an nkernels model's parameters, computes the loss nkernels
computes and takes the same Adam steps; both run in float64 so that any difference in the
architecture (gate order, padding, flatten order, a missing bias) shows far above rounding.
"""
import sys

import numpy as np
import pytest

pytest.importorskip("jax")

import nkernels as nk  # noqa: E402
from nkernels.cli import bench, bench_jax  # noqa: E402
from nkernels.losses import SoftmaxCrossEntropy  # noqa: E402
from nkernels.optimizers import Adam  # noqa: E402


def small_batch(case, n=6, seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n,) + case.sample_shape).astype(dtype), rng.integers(0, case.n_classes, n)


def mean_cross_entropy(logits, y):
    """Softmax cross-entropy averaged over the rows, in float64: log-sum-exp minus the true class's logit."""
    logits = np.asarray(logits, np.float64)
    top = logits.max(axis=1, keepdims=True)
    log_sum_exp = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    return float(np.mean(log_sum_exp - logits[np.arange(len(y)), y]))


@pytest.mark.parametrize("name", [name for name, case in bench.CASES.items() if case.jax])
def test_the_jax_twin_has_nkernels_loss_and_adam_steps(name):
    case = bench.CASES[name]
    model = case.build().astype(np.float64)
    X, y = small_batch(case)
    initial = {k: v.copy() for k, v in model.params.items()}

    # the loss a training step computes (BatchNorm on the batch's statistics), which the JAX twin computes
    expected = mean_cross_entropy(model.forward(X, training=True), y)
    if not any(layer.couples_batch for layer in model.layers):  # evaluation mode computes the same
        assert nk.evaluate(model, X, y)["loss"] == pytest.approx(expected, rel=1e-12)
    assert bench_jax.jax_loss(case, model.params, X, y) == pytest.approx(expected, rel=1e-12)

    theirs = bench_jax.jax_adam_steps(case, model.params, X, y, n_steps=2)
    loss, optimizer = SoftmaxCrossEntropy(), Adam(lr=1e-3)
    for _ in range(2):
        loss.forward(model.forward(X, training=True), y)
        model.backward(loss.backward())
        optimizer.step(model.params, model.grads)
    moved = max(np.abs(model.params[k] - initial[k]).max() for k in initial)
    assert moved > 1e-3  # two Adam steps of lr 1e-3 move the parameters with a gradient by about 2e-3
    # a convolution's bias just before a BatchNorm has a true gradient of zero (the batch mean removes it), so
    # Adam normalises rounding residue there: those steps agree to 1e-10, the others to 1e-12
    atol = 1e-10 if any(layer.couples_batch for layer in model.layers) else 1e-12
    for key, ours in model.params.items():
        np.testing.assert_allclose(theirs[key], ours, rtol=1e-9, atol=atol, err_msg=f"{name}: {key}")
        assert theirs[key].dtype == np.float64


def test_the_float32_twin_matches_within_float32_rounding():
    case = bench.CASES["lstm-h64-t8"]
    model = case.build()
    X, y = small_batch(case, dtype=np.float32)
    expected = mean_cross_entropy(model.astype(np.float64).forward(X.astype(np.float64)), y)
    assert bench_jax.jax_loss(case, case.build().params, X, y) == pytest.approx(expected, rel=1e-5)


def test_jax_step_times_a_training_step():
    assert bench_jax.jax_step(bench.CASES["mlp"], n_steps=2, repeat=1) > 0


def test_bad_parameters_and_data_are_refused_with_what_was_expected():
    case = bench.CASES["mlp"]
    params = case.build().params
    X, y = small_batch(case, dtype=np.float32)
    with pytest.raises(ValueError, match="must be named"):
        bench_jax.jax_loss(case, {k: v for k, v in params.items() if k != "0.bias"}, X, y)
    with pytest.raises(ValueError, match=r"0\.weight .*shape"):
        bench_jax.jax_loss(case, {**params, "0.weight": params["0.weight"].T}, X, y)
    with pytest.raises(TypeError, match="float32 or all float64"):
        bench_jax.jax_loss(case, {**params, "0.bias": params["0.bias"].astype(np.float64)}, X, y)
    with pytest.raises(ValueError, match=r"shape \(N,\) \+ \(64,\)"):
        bench_jax.jax_loss(case, params, X[:, :10], y)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\]"):
        bench_jax.jax_loss(case, params, X, y + 10)
    with pytest.raises(ValueError, match="integer class labels"):
        bench_jax.jax_loss(case, params, X, y[:-1])


def test_a_missing_jax_is_an_import_error_saying_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)
    with pytest.raises(ImportError, match=r"pip install 'jax\[cpu\]'"):
        bench_jax.jax_step(bench.CASES["mlp"], n_steps=1, repeat=1)


def test_the_asv_ratio_is_skipped_without_jax(monkeypatch):
    from benchmarks import bench_ratios

    bench_ratios.TimeRatioVsJAX().setup("mlp")  # installed here: no skip
    monkeypatch.setitem(sys.modules, "jax", None)
    with pytest.raises(NotImplementedError, match="JAX is not installed"):
        bench_ratios.TimeRatioVsJAX().setup("mlp")
