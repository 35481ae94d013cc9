"""The deterministic two-pass reductions (nkernels.kernels.cuda.reduce) that the CUDA losses and norms
return their scalars through: a block sum per block, then one block sums the partials in a fixed order.

In CI these run under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on tiny shapes; they also run on a
real GPU (without the simulator) at realistic shapes when NKERNELS_REAL_GPU=1 (conftest.py).
"""
import math

import numpy as np
import pytest
from numba import cuda

from nkernels.kernels.cuda import reduce

pytestmark = pytest.mark.cuda

#: a global of this module, which numba-cuda reads as a constant (an attribute of the imported module, as
#: ``reduce.MAX_THREADS`` inside a kernel, is typed int64 and refused as a shared array's size)
MAX_THREADS = reduce.MAX_THREADS


@cuda.jit
def _block_sums(x, partials):
    """The first pass as the kernel families write it: a grid-stride fold, then block_sum per block."""
    red = cuda.shared.array(MAX_THREADS, dtype=np.float64)
    s = np.float64(0.0)
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        s += x[i]
    total = reduce.block_sum(red, s)
    if cuda.threadIdx.x == 0:
        partials[cuda.blockIdx.x] = total


@pytest.fixture
def sizes(pick):
    return pick([1, 7, 61], [1, 1000, 10_000_019])


def first_pass(x, dev):
    blocks, threads, partials = reduce.partials_for(x.size)
    _block_sums[blocks, threads](dev(x), partials)
    return partials, blocks


def test_finish_sums_the_partials(sizes, dev):
    rng = np.random.default_rng(0)
    for n in sizes:
        x = rng.standard_normal(n)
        partials, blocks = first_pass(x, dev)
        total = reduce.finish(partials, blocks)
        assert isinstance(total, float)
        assert math.isclose(total, math.fsum(x), rel_tol=1e-12, abs_tol=1e-12 * n)
        partials, blocks = first_pass(x, dev)
        assert reduce.finish(partials, blocks) == total  # no atomics: the same bits every run


def test_finish_into_writes_its_slot_only(sizes, dev):
    rng = np.random.default_rng(1)
    for n in sizes:
        x = rng.standard_normal(n)
        partials, blocks = first_pass(x, dev)
        out = dev(np.full(3, -1.0))
        reduce.finish_into(partials, blocks, 0.5, out, 1)
        got = out.copy_to_host()
        assert got[0] == got[2] == -1.0
        assert math.isclose(got[1], 0.5 * math.fsum(x), rel_tol=1e-12, abs_tol=1e-12 * n)


def test_partials_for_blocks_caps_what_is_asked():
    cap, threads = reduce.partials_for(1 << 62)[:2]
    for wanted in (0, 1, 2, cap, cap + 5):
        blocks, threads_b, partials = reduce.partials_for_blocks(wanted)
        assert blocks == max(1, min(wanted, cap)) and threads_b == threads
        assert partials.size >= blocks and partials.dtype == np.float64
    assert threads <= reduce.MAX_THREADS and threads & (threads - 1) == 0  # block_sum needs a power of two
