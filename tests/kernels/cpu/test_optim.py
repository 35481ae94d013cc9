"""The CPU optimizer updates (nkernels.kernels.cpu.optim: SGD, Adam/AdamW, apply_updates) against the naive
references, over several steps."""
import numpy as np
import pytest

import naive
from nkernels.kernels.cpu import optim

DTYPES = [np.float32, np.float64]
#: the arithmetic runs in the parameter's dtype: float32 agrees with the float64 reference to a few ulp a step
RTOL = {np.float32: 1e-5, np.float64: 1e-13}


def arrays(n, count, dtype, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n).astype(dtype) for _ in range(count)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 37])
@pytest.mark.parametrize("momentum, weight_decay, nesterov", [(0.0, 0.0, False), (0.0, 0.01, False),
                                                              (0.9, 0.01, False), (0.8, 0.0, True)])
def test_sgd_matches_naive_over_steps(momentum, weight_decay, nesterov, n, dtype):
    param, velocity = arrays(n, 2, dtype, seed=n)
    ref_p, ref_v = param.astype(np.float64), velocity.astype(np.float64)
    for step in range(3):
        (grad,) = arrays(n, 1, dtype, seed=100 + step)
        optim.sgd_update(param, grad, velocity, 0.1, momentum, weight_decay, nesterov)
        ref_p, ref_v = naive.sgd_step(ref_p, grad, ref_v, 0.1, momentum, weight_decay, nesterov)
    assert param.dtype == dtype and velocity.dtype == dtype
    np.testing.assert_allclose(param, ref_p, rtol=RTOL[dtype], atol=RTOL[dtype])
    np.testing.assert_allclose(velocity, ref_v, rtol=RTOL[dtype], atol=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 37])
@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_matches_naive_over_steps(decoupled, n, dtype):
    (param,) = arrays(n, 1, dtype, seed=n)
    m, v = np.zeros(n, dtype), np.zeros(n, dtype)
    ref = (param.astype(np.float64), m.astype(np.float64), v.astype(np.float64))
    for step in (1, 2, 3):
        (grad,) = arrays(n, 1, dtype, seed=200 + step)
        optim.adam_update(param, grad, m, v, 1e-2, 0.9, 0.999, 1e-8, 0.05, decoupled, step)
        ref = naive.adam_step(*ref[:1], grad, *ref[1:], 1e-2, 0.9, 0.999, 1e-8, 0.05, decoupled, step)
    for got, want in zip((param, m, v), ref):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_apply_updates_runs_each_parameter_and_skips_empty_ones(dtype):
    """apply_updates is sgd_update / adam_update over a tuple of flat parameters; a 0-length entry is a
    parameter the model does not have."""
    sizes = (5, 0, 3)
    hyper = {optim.SGD: np.array([0.1, 0.9, 0.01]), optim.ADAM: np.array([1e-2, 0.9, 0.999, 1e-8, 0.05])}
    assert {k: len(v) for k, v in hyper.items()} == {k: len(v) for k, v in optim.HYPERPARAMETERS.items()}
    for optimizer, flag in [(optim.SGD, True), (optim.ADAM, True), (optim.ADAM, False)]:
        params = tuple(arrays(s, 1, dtype, seed=s)[0] for s in sizes)
        grads = tuple(arrays(s, 1, dtype, seed=10 + s)[0] for s in sizes)
        state_a = tuple(np.zeros(s, dtype) for s in sizes)
        state_b = tuple(np.zeros(s, dtype) for s in sizes)
        refs = [(p.astype(np.float64), a.astype(np.float64), b.astype(np.float64))
                for p, a, b in zip(params, state_a, state_b)]
        for step in (1, 2):
            optim.apply_updates(optimizer, params, grads, state_a, state_b, hyper[optimizer], flag, step)
            if optimizer == optim.SGD:
                refs = [naive.sgd_step(p, g, a, *hyper[optimizer], flag) + (b,) for (p, a, b), g in zip(refs, grads)]
            else:
                refs = [naive.adam_step(p, g, a, b, *hyper[optimizer], flag, step) for (p, a, b), g in zip(refs, grads)]
        for got, want in zip(params, refs):
            np.testing.assert_allclose(got, want[0], rtol=RTOL[dtype], atol=RTOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_update_halves_is_the_join_then_adam_bit_for_bit(decoupled, dtype):
    """The split mode's update reads both halves' gradients and joins them as it goes: the same bits
    as joining them first (``combine_halves``) and updating from the joined gradient, for either
    thread (each passes its own half first, with its weight)."""
    from nkernels.kernels.cpu.norms import combine_halves

    rng = np.random.default_rng(7)
    n = 301
    first, second = rng.standard_normal((2, n)).astype(dtype)
    joined = np.empty(n, dtype)
    reference = [rng.standard_normal(n).astype(dtype), np.zeros(n, dtype), np.zeros(n, dtype)]
    threads = [[a.copy() for a in reference] for _ in range(2)]
    start = reference[0].copy()
    for step in range(1, 4):
        combine_halves(first, second, 0.625, 0.375, joined)
        optim.adam_update(reference[0], joined, reference[1], reference[2], 1e-2, 0.9, 0.999, 1e-8, 0.01, decoupled,
                          step)
        for (param, m, v), own, other, weights in zip(threads, (first, second), (second, first),
                                                      ((0.625, 0.375), (0.375, 0.625))):
            optim.adam_update_halves(param, own, other, *weights, m, v, 1e-2, 0.9, 0.999, 1e-8, 0.01, decoupled, step)
        for thread in threads:
            for got, want in zip(thread, reference):
                np.testing.assert_array_equal(got, want)
        first, second = second * 0.5, first + 0.25  # new halves each step
    assert not np.array_equal(reference[0], start)  # it updated


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_update_halves_is_the_join_then_sgd_bit_for_bit(momentum, nesterov, dtype):
    """SGD's twin of :func:`test_adam_update_halves_is_the_join_then_adam_bit_for_bit`, in each of
    its three forms (plain, momentum, Nesterov)."""
    from nkernels.kernels.cpu.norms import combine_halves

    rng = np.random.default_rng(8)
    n = 301
    first, second = rng.standard_normal((2, n)).astype(dtype)
    joined = np.empty(n, dtype)
    reference = [rng.standard_normal(n).astype(dtype), np.zeros(n, dtype)]
    threads = [[a.copy() for a in reference] for _ in range(2)]
    start = reference[0].copy()
    for _ in range(3):
        combine_halves(first, second, 0.625, 0.375, joined)
        optim.sgd_update(reference[0], joined, reference[1], 0.1, momentum, 0.01, nesterov)
        for (param, velocity), own, other, weights in zip(threads, (first, second), (second, first),
                                                          ((0.625, 0.375), (0.375, 0.625))):
            optim.sgd_update_halves(param, own, other, *weights, velocity, 0.1, momentum, 0.01, nesterov)
        for thread in threads:
            for got, want in zip(thread, reference):
                np.testing.assert_array_equal(got, want)
        first, second = second * 0.5, first + 0.25
    assert not np.array_equal(reference[0], start)
    assert bool(np.any(reference[1] != 0)) is (momentum > 0)  # the momentum forms keep a velocity
