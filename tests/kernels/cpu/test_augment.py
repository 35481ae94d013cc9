"""The CPU augmentation kernels (nkernels.kernels.cpu.augment: random image translation) against the
naive references."""
import numpy as np
import pytest

import naive
from nkernels.kernels.cpu import augment

DTYPES = [np.float32, np.float64]


def shifts_of(seed, offset, N, max_shift):
    return [augment.translation_shift(seed, offset, n, max_shift) for n in range(N)]


# ---------------------------------------------------------------------------------------------
def test_translation_shift_matches_reference_and_covers_range():
    max_shift = 2
    got = shifts_of(17, 1000, 2000, max_shift)
    ref = [naive.translation_shift(17, 1000, n, max_shift) for n in range(2000)]
    assert [(int(a), int(b)) for a, b in got] == ref
    counts = np.zeros((5, 5), dtype=np.int64)
    for dy, dx in got:
        counts[dy + max_shift, dx + max_shift] += 1
    e = 2000 / 25
    assert np.all(np.abs(counts - e) < 5 * np.sqrt(e))  # all 25 shifts, roughly equally often


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N, max_shift, hw", [(9, 2, (7, 6)), (9, 4, (3, 3)), (1, 1, (2, 5))])  # 2nd: past the edge
def test_random_translate_matches_reference(dtype, N, max_shift, hw):
    C = 2
    x = np.random.default_rng(0).standard_normal((N, C) + hw).astype(dtype)
    seed, offset = 5, 321
    out = np.full_like(x, np.nan)
    augment.random_translate(x, max_shift, seed, offset, out)
    np.testing.assert_array_equal(out, naive.translate(x, shifts_of(seed, offset, N, max_shift)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_random_translate_shift_zero_is_identity(dtype):
    x = np.random.default_rng(1).standard_normal((4, 3, 5, 5)).astype(dtype)
    out = np.full_like(x, np.nan)
    augment.random_translate(x, 0, 1, 0, out)
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_random_translate_determinism_and_offsets(dtype):
    x = np.random.default_rng(2).standard_normal((16, 1, 8, 8)).astype(dtype)
    a, b = np.empty_like(x), np.empty_like(x)
    augment.random_translate(x, 3, 4, 0, a)
    augment.random_translate(x, 3, 4, 0, b)
    np.testing.assert_array_equal(a, b)
    # sample n uses counter offset + n: the same images at offset 5 match samples 5.. at offset 0
    augment.random_translate(np.ascontiguousarray(x[5:]), 3, 4, 5, b[5:])
    np.testing.assert_array_equal(a[5:], b[5:])
    augment.random_translate(x, 3, 4, 16, b)  # the next batch gets other shifts
    assert not np.array_equal(a, b)
