"""The CPU mini-batch gathers (nkernels.kernels.cpu.batching) against the naive reference."""
import numpy as np
import pytest

import naive
from nkernels.kernels.cpu import batching

DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows, features, batch, start", [
    (11, 5, 4, 3),   # a batch from the middle of the order
    (7, 1, 1, 6),    # a batch of one, the last row of the order, one feature
    (9, 3, 9, 0),    # the whole data set
])
def test_gather_rows_and_labels_match_naive(dtype, rows, features, batch, start):
    rng = np.random.default_rng(rows)
    src = rng.standard_normal((rows, features)).astype(dtype)
    labels = rng.integers(0, 10, rows).astype(np.int64)
    order = rng.permutation(rows).astype(np.int64)
    out = np.full((batch, features), np.nan, dtype)
    batching.gather_rows(src, order, start, out)
    np.testing.assert_array_equal(out, naive.gather(src, order, start, batch))
    lab = np.full(batch, -1, np.int64)
    batching.gather_labels(labels, order, start, lab)
    np.testing.assert_array_equal(lab, naive.gather(labels, order, start, batch))


def test_gather_labels_keeps_float_targets():
    """A 1-D float target (the device trainer gathers any 1-D target with gather_labels) keeps its values."""
    targets = np.linspace(0.0, 1.0, 6)
    order = np.array([5, 0, 3, 1, 2, 4], np.int64)
    out = np.empty(3)
    batching.gather_labels(targets, order, 2, out)
    np.testing.assert_array_equal(out, naive.gather(targets, order, 2, 3))
