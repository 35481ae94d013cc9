"""CUDA embedding, positional-embedding and token-mean kernels against their CPU twins, guards included.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes; with
NKERNELS_REAL_GPU=1 on a real GPU at realistic shapes (conftest.py).
"""
import numpy as np
import pytest

from nkernels.testing import check_cpu_cuda_agreement

pytestmark = pytest.mark.cuda


@pytest.fixture
def sizes(pick):
    """(M tokens, V rows, D features) and (N, T, D, L) sequences."""
    return pick(((7, 5, 3), (2, 3, 2, 4)), ((4096, 1000, 64), (64, 64, 64, 128)))


def test_embedding_kernels_agree(sizes, dtype):
    (m, v, d), _ = sizes
    rng = np.random.default_rng(0)
    idx = rng.integers(0, v, m)
    idx[:3] = [1, 1, v + 2]  # a repeated row, and one out of range (a NaN row, no gradient)
    weight = rng.standard_normal((v, d)).astype(dtype)
    out = check_cpu_cuda_agreement("embedding_forward", idx, weight, np.zeros((m, d), dtype), rtol=0)
    assert set(out) == {"arg0", "arg1", "arg2"}
    dy = rng.standard_normal((m, d)).astype(dtype)
    for padding in (-1, 1):
        check_cpu_cuda_agreement("embedding_backward", idx, dy, padding, True, np.full(m, np.nan, dtype),
                                 np.full((v, d), np.nan, dtype))


def test_positional_and_token_mean_kernels_agree(sizes, dtype):
    _, (n, t, d, length) = sizes
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, t, d)).astype(dtype)
    weight = rng.standard_normal((length, d)).astype(dtype)
    check_cpu_cuda_agreement("positional_embedding_forward", x, weight, np.full_like(x, np.nan), rtol=0)
    check_cpu_cuda_agreement("positional_embedding_forward", x, weight[:t - 1], np.zeros_like(x), rtol=0)  # too long
    check_cpu_cuda_agreement("positional_embedding_backward", x, True, np.full_like(x, np.nan),
                             np.full_like(weight, np.nan), rtol=0)  # the batch summed in the CPU's order: exact
    check_cpu_cuda_agreement("globalavgpool1d_forward", x, np.full((n, d), np.nan, dtype))
    check_cpu_cuda_agreement("globalavgpool1d_backward", x[:, 0], np.full_like(x, np.nan))
