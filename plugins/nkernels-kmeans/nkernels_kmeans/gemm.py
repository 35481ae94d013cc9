"""Large GEMMs on every core, without a second spinning thread pool.

nkernels runs BLAS on one thread (:func:`nkernels.runtime.threads.blas_single_threaded`) so that
OpenBLAS's spinning workers never starve Numba's. For the big cross terms of k-means that would
leave all but one core idle during the GEMM, most of an iteration. So :func:`matmul` splits a
large product into row blocks and runs one single-threaded GEMM per block on a few Python
threads (``np.dot`` releases the GIL); idle helper threads sleep instead of spinning, and no
product of :func:`matmul` runs inside a Numba ``prange`` region.
"""
from __future__ import annotations

import itertools
import os
import threading
from typing import Callable

import numba
import numpy as np

#: output elements per GEMM call: blocks this small keep the output in cache while it is written
#: (one 100,000 x 100 float32 GEMM ran 1.4x slower than blocks of this size, on one core)
BLOCK = 1 << 21
#: multiply-adds below which one GEMM on the calling thread is faster than waking the pool
MIN_PARALLEL_WORK = 1 << 23


class _Helper(threading.Thread):
    """A thread that runs one task each time it is handed one, sleeping in between.

    Two plain locks hand the task over and back (about 11 us a round trip on 2 cores, against 24 us
    through a ThreadPoolExecutor's queue, future and condition: 3% of a Lloyd iteration on digits)."""

    def __init__(self):
        super().__init__(name="nkernels-kmeans-blocks", daemon=True)
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._task: Callable[[], None] | None = None
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        while True:
            self._go.acquire()
            try:
                self._task()
            except BaseException as error:  # handed to the caller of wait()
                self._error = error
            self._done.release()

    def hand(self, task: Callable[[], None]) -> None:
        """Start ``task`` on this thread."""
        self._task, self._error = task, None
        self._go.release()

    def wait(self) -> None:
        """Wait for the task handed last; re-raise its error here."""
        self._done.acquire()
        error, self._error, self._task = self._error, None, None
        if error is not None:
            raise error


#: helper threads of this process, and the lock of whoever is using them (other callers run alone)
_team: list[_Helper] = []
_team_pid = os.getpid()
_team_lock = threading.Lock()


def _helpers(count: int) -> list[_Helper]:
    """``count`` helper threads (started once; anew in a forked child, which has none). Hold _team_lock."""
    global _team, _team_pid
    if _team_pid != os.getpid():
        _team, _team_pid = [], os.getpid()
    while len(_team) < count:
        _team.append(_Helper())
    return _team[:count]


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
    # a second caller while the helpers are busy (another Python thread) runs its blocks alone
    if threads >= 2 and blocks >= 2 and work >= MIN_PARALLEL_WORK and _team_lock.acquire(blocking=False):
        try:
            # the calling thread takes blocks too: one hand-off fewer
            next_block = itertools.count()  # next() on it is atomic under the GIL

            def take_blocks() -> None:
                for i in iter(lambda: next(next_block), None):
                    if i >= blocks:
                        return
                    block(i)

            helpers = _helpers(min(threads, blocks) - 1)
            for helper in helpers:
                helper.hand(take_blocks)
            try:
                take_blocks()
            finally:
                errors = []
                for helper in helpers:  # waits for every block; re-raises a block's error here
                    try:
                        helper.wait()
                    except BaseException as error:
                        errors.append(error)
                if errors:
                    raise errors[0]
        finally:
            _team_lock.release()
    else:
        for i in range(blocks):
            block(i)
