"""Embedding and positional-embedding kernels against NumPy references, and the guards
that keep a bad index from being read out of bounds."""
import numpy as np
import pytest

from nkernels.kernels.cpu import embedding as k


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_forward_and_backward_match_numpy(dtype):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((6, 3)).astype(dtype)
    idx = np.array([0, 5, 2, 2, 5, 5, 1], np.int64)  # repeated rows add up
    out = np.full((7, 3), -1.0, dtype)
    k.embedding_forward(idx, weight, out)
    np.testing.assert_array_equal(out, weight[idx])
    dy = rng.standard_normal((7, 3)).astype(dtype)
    dweight = np.full((6, 3), 9.0, dtype)  # overwritten, not added to
    dx = np.full(7, 9.0, dtype)
    k.embedding_backward(idx, dy, -1, True, dx, dweight)
    expected = np.zeros((6, 3))
    np.add.at(expected, idx, dy.astype(np.float64))
    np.testing.assert_allclose(dweight, expected, rtol=1e-6)
    assert not dx.any()
    k.embedding_backward(idx, dy, 5, False, dx, dweight)  # the padding row gets no gradient
    expected[5] = 0.0
    np.testing.assert_allclose(dweight, expected, rtol=1e-6)


def test_embedding_kernels_never_read_or_write_past_the_table():
    """Indices the layer would refuse, given to the kernels directly: NaN rows, no gradient, no
    read of another row (the table is framed by sentinels that must not show up or change)."""
    frame = np.full((8, 2), 1e30)
    weight = frame[1:7]  # rows 0 and 7 of the frame lie just outside the table
    weight[...] = np.arange(12.0).reshape(6, 2)
    idx = np.array([-1, 6, 3, 10**12, -10**12], np.int64)
    out = np.zeros((5, 2))
    k.embedding_forward(idx, weight, out)
    assert np.isnan(out[[0, 1, 3, 4]]).all()
    np.testing.assert_array_equal(out[2], weight[3])
    dframe = np.full((8, 2), 7.0)
    k.embedding_backward(idx, np.ones((5, 2)), -1, False, np.zeros(5), dframe[1:7])
    np.testing.assert_array_equal(dframe[[0, 7]], 7.0)  # nothing written outside the table
    expected = np.zeros((6, 2))
    expected[3] = 1.0
    np.testing.assert_array_equal(dframe[1:7], expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_positional_embedding_kernels_match_numpy(dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 2)).astype(dtype)
    weight = rng.standard_normal((6, 2)).astype(dtype)
    out = np.empty_like(x)
    k.positional_embedding_forward(x, weight, out)
    np.testing.assert_array_equal(out, x + weight[:4])
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx, dweight = np.full_like(x, np.nan), np.full_like(weight, np.nan)
    k.positional_embedding_backward(dy, True, dx, dweight)
    np.testing.assert_array_equal(dx, dy)
    np.testing.assert_allclose(dweight[:4], dy.sum(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(dweight[4:], 0.0)  # positions the sequence does not reach


def test_positional_embedding_kernel_refuses_a_sequence_longer_than_the_table():
    out = np.zeros((1, 5, 2))
    k.positional_embedding_forward(np.ones((1, 5, 2)), np.ones((4, 2)), out)
    assert np.isnan(out).all()
