"""Deterministic two-pass reductions shared by the CUDA kernels that return a scalar.

Pass one: each block of a grid-stride kernel folds its share into a float64 and writes it to
``partials[blockIdx.x]`` through :func:`block_sum` (a shared-memory tree). Pass two
(:func:`finish`): one block sums the partials in a fixed order and the host copies the one
float64 back. No atomics, so a given grid gives the same bits on every run.
"""
from numba import cuda
import numpy as np

from .launch import read_scalar, reduce_grid, reduce_threads, scratch

#: Shared-memory slots of a block reduction: the most threads a reduction block may have.
MAX_THREADS = 256


@cuda.jit(device=True)
def block_sum(red, v):
    """Sum of ``v`` over the block (``blockDim.x`` a power of two, at most ``MAX_THREADS``),
    through the float64 shared array ``red``. Every thread must call it; all get the sum."""
    tid = cuda.threadIdx.x
    red[tid] = v
    cuda.syncthreads()
    step = cuda.blockDim.x // 2
    while step > 0:
        if tid < step:
            red[tid] += red[tid + step]
        cuda.syncthreads()
        step //= 2
    total = red[0]
    cuda.syncthreads()  # red may be reused at once
    return total


def partials_for(n: int):
    """``(blocks, threads, partials)`` for the first pass over ``n`` items: the launch shape and
    a cached float64 device buffer of one slot per block."""
    blocks, threads = reduce_grid(n)
    return blocks, threads, scratch("partials", blocks, np.float64)


def partials_for_blocks(wanted: int):
    """``(blocks, threads, partials)`` for a first pass that wants ``wanted`` blocks (one per
    chunk of work), capped at what the device holds at once (a grid-stride loop covers the rest)."""
    cap, threads = reduce_grid(1 << 62)
    blocks = max(1, min(wanted, cap))
    return blocks, threads, scratch("partials", blocks, np.float64)


def finish(partials, blocks: int) -> float:
    """Sum the first ``blocks`` partials on the device and return the total as a Python float
    (one 8-byte device-to-host copy, which synchronizes)."""
    out = scratch("result", 1, np.float64)
    _sum_partials_into[1, reduce_threads()](partials, blocks, 1.0, out, 0)
    return float(read_scalar(out))


@cuda.jit(device=True)
def sum_of_partials(red, partials, count):
    """The sum of ``partials[:count]`` over one block (``red``: its shared scratch), in a fixed order."""
    s = np.float64(0.0)
    for i in range(cuda.threadIdx.x, count, cuda.blockDim.x):
        s += partials[i]
    return block_sum(red, s)


@cuda.jit(cache=True)
def _sum_partials_into(partials, count, scale, out, index):
    red = cuda.shared.array(MAX_THREADS, dtype=np.float64)
    total = sum_of_partials(red, partials, count)
    if cuda.threadIdx.x == 0:
        out[index] = total * scale


def finish_into(partials, blocks: int, scale: float, out, index: int) -> None:
    """Like :func:`finish`, but write ``total * scale`` to ``out[index]`` on the device (no copy,
    no synchronization): how a training loop keeps its per-step losses on the GPU."""
    _sum_partials_into[1, reduce_threads()](partials, blocks, np.float64(scale), out, index)
