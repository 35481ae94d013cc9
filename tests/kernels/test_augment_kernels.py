"""Tests for nkernels.kernels.cpu.augment (random image translation)."""
import numpy as np
import pytest

from nkernels.kernels.cpu import augment

# ---------------------------------------------------------------------------------------------
# Slow, readable references.
# ---------------------------------------------------------------------------------------------
MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def naive_mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def naive_translation_shift(seed, offset, n, max_shift):
    """(dy, dx) from one splitmix64 draw: high 32 bits -> dy, low 32 bits -> dx."""
    key = naive_mix64((seed + GOLDEN) & MASK64)
    z = naive_mix64((key + (offset + n) * GOLDEN) & MASK64)
    span = 2 * max_shift + 1
    return ((z >> 32) * span >> 32) - max_shift, ((z & 0xFFFFFFFF) * span >> 32) - max_shift


def naive_translate(x, shifts):
    """Zero-pad each image by the largest shift and cut the shifted window out."""
    N, C, H, W = x.shape
    out = np.zeros_like(x)
    for n, (dy, dx) in enumerate(shifts):
        s = max(abs(dy), abs(dx))
        padded = np.pad(x[n], ((0, 0), (s, s), (s, s)))
        # out[i, j] = x[i - dy, j - dx] = padded[i - dy + s, j - dx + s]
        out[n] = padded[:, s - dy : s - dy + H, s - dx : s - dx + W]
    return out


DTYPES = [np.float32, np.float64]


def shifts_of(seed, offset, N, max_shift):
    return [augment.translation_shift(seed, offset, n, max_shift) for n in range(N)]


# ---------------------------------------------------------------------------------------------
def test_translation_shift_matches_reference_and_covers_range():
    max_shift = 2
    got = shifts_of(17, 1000, 2000, max_shift)
    ref = [naive_translation_shift(17, 1000, n, max_shift) for n in range(2000)]
    assert [(int(a), int(b)) for a, b in got] == ref
    counts = np.zeros((5, 5), dtype=np.int64)
    for dy, dx in got:
        counts[dy + max_shift, dx + max_shift] += 1
    e = 2000 / 25
    assert np.all(np.abs(counts - e) < 5 * np.sqrt(e))  # all 25 shifts, roughly equally often


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("max_shift, hw", [(2, (7, 6)), (4, (3, 3))])  # second: shifts past the edge
def test_random_translate_matches_reference(dtype, max_shift, hw):
    N, C = 9, 2
    x = np.random.default_rng(0).standard_normal((N, C) + hw).astype(dtype)
    seed, offset = 5, 321
    out = np.full_like(x, np.nan)
    augment.random_translate(x, max_shift, seed, offset, out)
    np.testing.assert_array_equal(out, naive_translate(x, shifts_of(seed, offset, N, max_shift)))


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
