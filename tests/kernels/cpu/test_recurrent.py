"""LSTM / GRU kernels (nkernels.kernels.cpu.recurrent) against the naive references and torch.nn.

The references (naive.lstm, naive.gru) run one step at a time with plain NumPy and are the spec:
PyTorch's gate order and equations, batch-first, zero initial state.
"""
import numpy as np
import pytest

import naive
from nkernels.kernels.cpu import recurrent as rk


# ----------------------------------------------------------------------------------------------
# running the kernels
# ----------------------------------------------------------------------------------------------

CELLS = {
    "lstm": (4, rk.lstm_workspace_shapes, rk.lstm_forward, rk.lstm_backward,
             rk.LSTM_FORWARD_WORKSPACES, rk.LSTM_BACKWARD_WORKSPACES, naive.lstm),
    "gru": (3, rk.gru_workspace_shapes, rk.gru_forward, rk.gru_backward,
            rk.GRU_FORWARD_WORKSPACES, rk.GRU_BACKWARD_WORKSPACES, naive.gru),
}
SAVED = {"lstm": ("gates", "cells", "hprev"), "gru": ("gates", "hn", "hprev")}


def make_problem(cell, n, t, i, h, seed=0, last_only=False):
    """float64 inputs, weights and upstream gradient (PyTorch-like init scale)."""
    ng = CELLS[cell][0]
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(h)
    x = rng.standard_normal((n, t, i))
    params = [rng.uniform(-k, k, shape) for shape in ((ng * h, i), (ng * h, h), (ng * h,), (ng * h,))]
    dhs = rng.standard_normal((n, t, h))
    if last_only:
        dhs[:, :-1] = 0.0
    return x, params, dhs


def run_kernels(cell, x, params, dhs, need_dx=True):
    """Forward then backward with the kernels; returns hs and the five gradients (dx left NaN
    without ``need_dx``)."""
    _, shapes_fn, fwd, bwd, fwd_names, bwd_names, _ = CELLS[cell]
    n, t, i = x.shape
    h = params[1].shape[1]
    dt = x.dtype
    # Workspaces filled with garbage: the kernels must not read what they did not write.
    ws = {k: np.full(shape, np.nan, dt) for k, shape in shapes_fn(n, t, i, h).items()}
    hs = np.full((n, t, h), np.nan, dt)
    fwd(x, *params, *[ws[k] for k in fwd_names], hs)
    grads = [np.full_like(x, np.nan), *[np.full_like(p, np.nan) for p in params]]
    w_ih, w_hh = params[0], params[1]
    bwd(x, w_ih, w_hh, *[ws[k] for k in SAVED[cell]], dhs, need_dx, *[ws[k] for k in bwd_names], *grads)
    return hs, grads


GRAD_NAMES = ("dx", "dweight_ih", "dweight_hh", "dbias_ih", "dbias_hh")


def check(got_hs, got_grads, ref_hs, ref_grads, rtol, atol):
    np.testing.assert_allclose(got_hs, ref_hs, rtol=rtol, atol=atol, err_msg="hs")
    for name, got, ref in zip(GRAD_NAMES, got_grads, ref_grads):
        np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol, err_msg=name)


# ----------------------------------------------------------------------------------------------
# tests
# ----------------------------------------------------------------------------------------------

#: (n, t, i, h) at or above blas.SPLIT_MULTIPLY_ADDS: with two Numba threads each half of the batch
#: runs through time on its own thread (an odd batch: halves of 3 and 2)
SPLIT_SHAPES = [(4, 6, 16, 64), (5, 3, 16, 64)]


# (n, t, i, h, last_only): batch 1, odd sizes, T=1 and T=5, gradient at the last step or all.
SHAPES = [(1, 1, 3, 5, False), (1, 5, 3, 5, True), (3, 5, 7, 5, False), (2, 5, 1, 9, True)]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_matches_reference(cell):
    reference = CELLS[cell][6]
    for n, t, i, h, last_only in SHAPES:
        x, params, dhs = make_problem(cell, n, t, i, h, seed=n * 100 + t * 10 + i, last_only=last_only)
        ref_hs, ref_grads = reference(x, *params, dhs)
        hs, grads = run_kernels(cell, x, params, dhs)
        check(hs, grads, ref_hs, ref_grads, rtol=1e-10, atol=1e-12)
        f32 = [a.astype(np.float32) for a in (x, *params, dhs)]
        hs, grads = run_kernels(cell, f32[0], f32[1:5], f32[5])
        assert hs.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
        check(hs, grads, ref_hs, ref_grads, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("nk_small_kernels", [1, 0], indirect=True)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_products_cut_into_pieces_match_reference(cell, nk_small_kernels):
    """32 rows and 128 hidden units: each step's recurrent products exceed blas.SMALL_PRODUCT, so with
    OpenBLAS's small-matrix kernels the forward's go in column pieces, the backward's in inner pieces and
    W_hh's gradient in row pieces; without them, whole. Both match the reference."""
    from nkernels.kernels.cpu import blas

    n, t, i, h = 32, 3, 4, 128
    g = CELLS[cell][0] * h
    cut = blas.small_piece(n, g, h) < g and blas.small_piece(n, h, g) < h and blas.small_piece(h, g, n) < g
    assert cut == bool(nk_small_kernels)
    x, params, dhs = make_problem(cell, n, t, i, h, seed=11)
    ref_hs, ref_grads = CELLS[cell][6](x, *params, dhs)
    hs, grads = run_kernels(cell, x, params, dhs)
    check(hs, grads, ref_hs, ref_grads, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_sequence_of_no_steps_has_zero_gradients(cell):
    x, params, dhs = make_problem(cell, 2, 0, 3, 5)
    _, grads = run_kernels(cell, x, params, dhs)  # outputs start as NaN: each must be written
    for name, grad in zip(GRAD_NAMES, grads):
        np.testing.assert_array_equal(grad, np.zeros_like(grad), err_msg=name)


@pytest.mark.parametrize("shape", [(3, 5, 7, 5), SPLIT_SHAPES[1]])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_without_need_dx_the_input_gradient_is_left_alone(cell, shape):
    """A model's first layer: ``need_dx=False`` leaves dx as it was (NaN here) and gives the same
    hidden states and weight gradients as with it, on one thread and with the batch's halves on two."""
    x, params, dhs = make_problem(cell, *shape, seed=5)
    hs, grads = run_kernels(cell, x, params, dhs)
    hs_nodx, grads_nodx = run_kernels(cell, x, params, dhs, need_dx=False)
    assert np.isnan(grads_nodx[0]).all()
    np.testing.assert_array_equal(hs_nodx, hs)
    for name, got, ref in zip(GRAD_NAMES[1:], grads_nodx[1:], grads[1:]):
        np.testing.assert_array_equal(got, ref, err_msg=name)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_backward_overwrites_and_repeats(cell):
    """Two backward calls give the same result (outputs overwritten, saved state untouched)."""
    x, params, dhs = make_problem(cell, 2, 5, 3, 5, seed=7)
    _, shapes_fn, fwd, bwd, fwd_names, bwd_names, _ = CELLS[cell]
    ws = {k: np.zeros(s) for k, s in shapes_fn(2, 5, 3, 5).items()}
    hs = np.zeros((2, 5, 5))
    fwd(x, *params, *[ws[k] for k in fwd_names], hs)
    outs = []
    for fill in (0.0, 123.0):
        grads = [np.full_like(x, fill), *[np.full_like(p, fill) for p in params]]
        bwd(x, params[0], params[1], *[ws[k] for k in SAVED[cell]], dhs, True,
            *[ws[k] for k in bwd_names], *grads)
        outs.append(grads)
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_matches_torch(cell):
    torch = pytest.importorskip("torch")
    n, t, i, h = 3, 5, 4, 6
    x, params, dhs = make_problem(cell, n, t, i, h, seed=3)
    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(i, h, batch_first=True).double()
    with torch.no_grad():
        for p, v in zip((module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0),
                        params):
            p.copy_(torch.from_numpy(v))
    xt = torch.from_numpy(x).requires_grad_(True)
    out = module(xt)[0]
    out.backward(torch.from_numpy(dhs))
    ref_grads = [xt.grad.numpy()] + [p.grad.numpy() for p in (
        module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0)]
    hs, grads = run_kernels(cell, x, params, dhs)
    check(hs, grads, out.detach().numpy(), ref_grads, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# the vectorizable exp / sigmoid / tanh the gate loops use
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_batch_halves_on_two_threads_match_reference_and_one_thread(cell):
    import numba

    from nkernels.kernels.cpu.blas import SPLIT_MULTIPLY_ADDS

    if numba.get_num_threads() < 2:
        pytest.skip("Numba has one thread here (NUMBA_NUM_THREADS=1): nothing runs on two")
    reference = CELLS[cell][6]
    for n, t, i, h in SPLIT_SHAPES:
        assert n * t * CELLS[cell][0] * h * (i + h) >= SPLIT_MULTIPLY_ADDS
        x, params, dhs = make_problem(cell, n, t, i, h, seed=n + t)
        ref_hs, ref_grads = reference(x, *params, dhs)
        hs, grads = run_kernels(cell, x, params, dhs)
        check(hs, grads, ref_hs, ref_grads, rtol=1e-10, atol=1e-12)
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            one_hs, one_grads = run_kernels(cell, x, params, dhs)
        finally:
            numba.set_num_threads(threads)
        check(hs, grads, one_hs, one_grads, rtol=1e-12, atol=1e-13)
