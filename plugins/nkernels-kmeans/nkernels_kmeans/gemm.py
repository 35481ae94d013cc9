"""Large GEMMs on every core, without a second spinning thread pool.

nkernels runs BLAS on one thread (:func:`nkernels.runtime.threads.blas_single_threaded`) so that
OpenBLAS's spinning workers never starve Numba's. For the big cross terms of k-means that would
leave all but one core idle during the GEMM, most of an iteration. So :func:`matmul` splits a
large product into row blocks and runs one single-threaded GEMM per block on a few Python
threads (``np.dot`` releases the GIL); idle Python threads sleep instead of spinning. No BLAS
call ever runs inside a Numba ``prange`` region.
"""
from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numba
import numpy as np

#: output elements per GEMM call: blocks this small keep the output in cache while it is written
#: (one 100,000 x 100 float32 GEMM ran 1.4x slower than blocks of this size, on one core)
BLOCK = 1 << 21
#: multiply-adds below which one GEMM on the calling thread is faster than waking the pool
MIN_PARALLEL_WORK = 1 << 23

_pools: dict[int, ThreadPoolExecutor] = {}


def _pool(threads: int) -> ThreadPoolExecutor:
    if threads not in _pools:
        _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="nkernels-kmeans-gemm")
    return _pools[threads]


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[:] = a @ b`` by BLAS, in row blocks of at most :data:`BLOCK` outputs, side by side on
    Numba's number of threads when the product is large.

    ``out`` must be C-contiguous, of shape (len(a), b.shape[1]) and of the product's dtype.
    """
    m, n = out.shape
    threads = numba.get_num_threads()
    parallel = threads >= 2 and m * n * a.shape[1] >= MIN_PARALLEL_WORK and m >= 2 * threads
    blocks = max(threads if parallel else 1, -(-m * n // BLOCK))
    if blocks == 1:
        return np.dot(a, b, out=out)
    bounds = np.linspace(0, m, blocks + 1).astype(np.int64)

    def block(i: int) -> None:
        lo, hi = bounds[i], bounds[i + 1]
        np.dot(a[lo:hi], b, out=out[lo:hi])

    run_blocks(block, blocks, m * n * a.shape[1] if parallel else 0)
    return out


def run_blocks(block: Callable[[int], None], blocks: int, work: int) -> None:
    """``block(0)``, ..., ``block(blocks - 1)``: side by side on Numba's number of threads (this one and
    pooled ones) when ``work`` (multiply-adds) is at least :data:`MIN_PARALLEL_WORK`, else in order on
    this thread.
    ``block`` must release the GIL for most of its time (BLAS, ``nogil`` kernels)."""
    threads = numba.get_num_threads()
    if threads >= 2 and blocks >= 2 and work >= MIN_PARALLEL_WORK:
        # the calling thread takes blocks too: one hand-off fewer (about 15 of 37 us on 2 cores)
        next_block = itertools.count()  # next() on it is atomic under the GIL

        def take_blocks() -> None:
            for i in iter(lambda: next(next_block), None):
                if i >= blocks:
                    return
                block(i)

        helpers = [_pool(threads - 1).submit(take_blocks) for _ in range(min(threads, blocks) - 1)]
        try:
            take_blocks()
        finally:
            for helper in helpers:
                helper.result()  # waits for every block; re-raises a block's error here
    else:
        for i in range(blocks):
            block(i)
