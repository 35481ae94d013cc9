"""Loss kernels on the GPU: softmax cross-entropy, mean squared error and binary cross-entropy on
logits, forward and backward.

CUDA twins of :mod:`nkernels.kernels.cpu.loss`, same names and signatures, device arrays in
place of NumPy arrays (``labels`` an int64 device array). The scalar results (the mean loss,
the number of correct rows) are reduced on the device in two deterministic passes (see
:mod:`nkernels.kernels.cuda.reduce`) and returned as Python numbers after a copy of one float64
to the host, which synchronizes; everything else stays asynchronous.

Row kernels (softmax, arg-max) stage a chunk of whole rows, ``CHUNK`` consecutive elements,
into shared memory with coalesced loads, work on each row from there (one thread a row), and
write the chunk back coalesced: logits are read from device memory once and probabilities
written once, whatever the number of classes. Rows longer than ``CHUNK`` fall back to one thread
per row reading device memory directly (correct, slower). Sums accumulate in float64, as the
CPU kernels do; exponentials run in the logits' dtype.
"""
import math
from functools import lru_cache

import numpy as np
from numba import cuda

from .elementwise import elementwise
from .launch import device_arrays, flat_view, grid_stride, reduce_grid, reduce_threads, scratch, simulator
from .reduce import MAX_THREADS, block_sum, finish, finish_into, partials_for, partials_for_blocks

__all__ = ["softmax_cross_entropy_forward", "softmax_cross_entropy_backward", "count_correct",
           "mse_forward", "mse_backward", "softmax_cross_entropy_forward_into", "count_correct_into",
           "mse_forward_into", "bce_with_logits_forward", "bce_with_logits_backward",
           "bce_with_logits_forward_into", "count_binary_correct", "count_binary_correct_into"]

#: Elements of a staged chunk of rows (shared memory: 16 KB float32, 32 KB float64).
CHUNK = 4096
SIM_CHUNK = 24


def _chunk() -> int:
    return SIM_CHUNK if simulator() else CHUNK


@lru_cache(maxsize=None)
def _sce_forward_kernel(chunk: int):
    CH = int(chunk)

    @cuda.jit(cache=True)
    def _sce_forward(lf, labels, pf, n, c, partials):
        """Staged softmax of rows [r0, r0 + rows) into pf; per-block sum of the row losses."""
        buf = cuda.shared.array(CH, dtype=lf.dtype)
        red = cuda.shared.array(MAX_THREADS, dtype=np.float64)
        tid = cuda.threadIdx.x
        nth = cuda.blockDim.x
        per = CH // c
        total = np.float64(0.0)
        for r0 in range(cuda.blockIdx.x * per, n, cuda.gridDim.x * per):
            rows = min(per, n - r0)
            base = r0 * c
            for q in range(tid, rows * c, nth):
                buf[q] = lf[base + q]
            cuda.syncthreads()
            for r in range(tid, rows, nth):
                o = r * c
                m = buf[o]
                for j in range(1, c):
                    if buf[o + j] > m:
                        m = buf[o + j]
                picked = buf[o + labels[r0 + r]]
                s = np.float64(0.0)
                for j in range(c):
                    e = math.exp(buf[o + j] - m)
                    buf[o + j] = e
                    s += e
                for j in range(c):
                    buf[o + j] = buf[o + j] / s
                total += np.float64(math.log(s)) + m - picked
            cuda.syncthreads()
            for q in range(tid, rows * c, nth):
                pf[base + q] = buf[q]
            cuda.syncthreads()
        total = block_sum(red, total)
        if tid == 0:
            partials[cuda.blockIdx.x] = total

    return _sce_forward


@cuda.jit(cache=True)
def _sce_forward_rows(logits, labels, probs, partials):
    """One thread per row, straight from device memory (rows too long to stage)."""
    red = cuda.shared.array(MAX_THREADS, dtype=np.float64)
    n, c = logits.shape
    total = np.float64(0.0)
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        m = logits[i, 0]
        for j in range(1, c):
            if logits[i, j] > m:
                m = logits[i, j]
        s = np.float64(0.0)
        for j in range(c):
            e = math.exp(logits[i, j] - m)
            probs[i, j] = e
            s += e
        for j in range(c):
            probs[i, j] = probs[i, j] / s
        total += np.float64(math.log(s)) + m - logits[i, labels[i]]
    total = block_sum(red, total)
    if cuda.threadIdx.x == 0:
        partials[cuda.blockIdx.x] = total


def _sce_partials(logits, labels, probs):
    """First pass of the softmax cross-entropy: ``(partials, blocks)`` of the summed loss."""
    n, c = logits.shape
    chunk = _chunk()
    if c <= chunk:
        blocks, threads, partials = partials_for_blocks(math.ceil(n / (chunk // c)))
        _sce_forward_kernel(chunk)[blocks, threads](flat_view(logits), labels, flat_view(probs), n, c, partials)
    else:
        blocks, threads, partials = partials_for(n)
        _sce_forward_rows[blocks, threads](logits, labels, probs, partials)
    return partials, blocks


def softmax_cross_entropy_forward(logits, labels, probs):
    """Mean cross-entropy of ``softmax(logits)`` against integer ``labels``.

    logits (N, C); labels (N,) int64 in [0, C); probs (N, C) receives the softmax, which
    :func:`softmax_cross_entropy_backward` needs. Returns the mean loss as a Python float
    (synchronizes: one float64 comes back to the host).
    """
    logits, labels, probs = device_arrays(logits=logits, labels=labels, probs=probs)
    n = logits.shape[0]
    if n == 0:
        return float("nan")  # the CPU kernel's 0 / 0
    return finish(*_sce_partials(logits, labels, probs)) / n


def softmax_cross_entropy_forward_into(logits, labels, probs, losses, index):
    """:func:`softmax_cross_entropy_forward` writing the mean loss to ``losses[index]`` (a float64
    device array) instead of returning it: nothing comes back to the host."""
    logits, labels, probs, losses = device_arrays(logits=logits, labels=labels, probs=probs, losses=losses)
    n = logits.shape[0]
    partials, blocks = _sce_partials(logits, labels, probs)
    finish_into(partials, blocks, 1.0 / n, losses, index)


@cuda.jit(cache=True)
def _sce_backward(pf, labels, dlf, c, scale):
    total = pf.shape[0]
    for q in range(cuda.grid(1), total, cuda.gridsize(1)):
        i = q // c
        j = q - i * c
        v = dlf.dtype.type(pf[q] * scale)
        if labels[i] == j:
            dlf[q] = v - scale
        else:
            dlf[q] = v


def softmax_cross_entropy_backward(probs, labels, dlogits):
    """Gradient of the mean loss: ``(probs - onehot(labels)) / N`` into ``dlogits`` (N, C)."""
    probs, labels, dlogits = device_arrays(probs=probs, labels=labels, dlogits=dlogits)
    n, c = probs.shape
    if n == 0:
        return
    blocks, threads = grid_stride(n * c, per_thread=1)
    _sce_backward[blocks, threads](flat_view(probs), labels, flat_view(dlogits), c, np.float64(1.0 / n))


@lru_cache(maxsize=None)
def _count_correct_kernel(chunk: int):
    CH = int(chunk)

    @cuda.jit(cache=True)
    def _count_correct(lf, labels, n, c, partials):
        """Staged arg-max (first on ties) of each row; per-block count of rows equal to the label."""
        buf = cuda.shared.array(CH, dtype=lf.dtype)
        red = cuda.shared.array(MAX_THREADS, dtype=np.float64)
        tid = cuda.threadIdx.x
        nth = cuda.blockDim.x
        per = CH // c
        total = 0.0
        for r0 in range(cuda.blockIdx.x * per, n, cuda.gridDim.x * per):
            rows = min(per, n - r0)
            base = r0 * c
            for q in range(tid, rows * c, nth):
                buf[q] = lf[base + q]
            cuda.syncthreads()
            for r in range(tid, rows, nth):
                o = r * c
                best = 0
                for j in range(1, c):
                    if buf[o + j] > buf[o + best]:
                        best = j
                if best == labels[r0 + r]:
                    total += 1.0
            cuda.syncthreads()
        total = block_sum(red, total)
        if tid == 0:
            partials[cuda.blockIdx.x] = total

    return _count_correct


@cuda.jit(cache=True)
def _count_correct_rows(logits, labels, partials):
    red = cuda.shared.array(MAX_THREADS, dtype=np.float64)
    n, c = logits.shape
    total = 0.0
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        best = 0
        for j in range(1, c):
            if logits[i, j] > logits[i, best]:
                best = j
        if best == labels[i]:
            total += 1.0
    total = block_sum(red, total)
    if cuda.threadIdx.x == 0:
        partials[cuda.blockIdx.x] = total


def _count_partials(logits, labels):
    """First pass of :func:`count_correct`: ``(partials, blocks)`` of the count."""
    n, c = logits.shape
    chunk = _chunk()
    if c <= chunk:
        blocks, threads, partials = partials_for_blocks(math.ceil(n / (chunk // c)))
        _count_correct_kernel(chunk)[blocks, threads](flat_view(logits), labels, n, c, partials)
    else:
        blocks, threads, partials = partials_for(n)
        _count_correct_rows[blocks, threads](logits, labels, partials)
    return partials, blocks


def count_correct(logits, labels):
    """Number of rows whose arg-max (first on ties) equals the label, as a Python int
    (synchronizes)."""
    logits, labels = device_arrays(logits=logits, labels=labels)
    if logits.shape[0] == 0:
        return 0
    return int(round(finish(*_count_partials(logits, labels))))


@cuda.jit(cache=True)
def _store_count(total, counts, index):
    if cuda.grid(1) == 0:
        counts[index] = int(total[0] + 0.5)


def count_correct_into(logits, labels, counts, index):
    """:func:`count_correct` writing the count to ``counts[index]`` (an int64 device array)."""
    logits, labels, counts = device_arrays(logits=logits, labels=labels, counts=counts)
    partials, blocks = _count_partials(logits, labels)
    total = scratch("count", 1, np.float64)
    finish_into(partials, blocks, 1.0, total, 0)
    _store_count[1, 1](total, counts, index)


@cuda.jit(cache=True)
def _mse_forward(pred, target, partials):
    red = cuda.shared.array(MAX_THREADS, dtype=np.float64)
    n = pred.shape[0]
    s = cuda.gridsize(1)
    last = n - 1
    total = np.float64(0.0)
    for i0 in range(cuda.grid(1), n, 2 * s):
        i1 = min(i0 + s, last)
        p0, p1 = pred[i0], pred[i1]
        t0, t1 = target[i0], target[i1]
        d = p0 - t0
        total += d * d
        if i0 + s < n:
            d = p1 - t1
            total += d * d
    total = block_sum(red, total)
    if cuda.threadIdx.x == 0:
        partials[cuda.blockIdx.x] = total


def _first_pass(kernel, a, b):
    """``(partials, blocks)``: the per-block sums of ``kernel(a, b, partials)``, a grid-stride pass over
    the rows of ``a`` (the elementwise losses, the binary decisions)."""
    blocks, threads, partials = partials_for(a.shape[0])
    kernel[blocks, threads](a, b, partials)
    return partials, blocks


def _mean(kernel, a, b):
    """The mean over the rows of ``a`` of ``kernel``'s elementwise terms, a Python float (synchronizes)."""
    n = a.shape[0]
    if n == 0:
        return float("nan")  # the CPU kernel's 0 / 0
    return finish(*_first_pass(kernel, a, b)) / n


def _mean_into(kernel, a, b, losses, index):
    """:func:`_mean` written to ``losses[index]`` on the device."""
    finish_into(*_first_pass(kernel, a, b), 1.0 / a.shape[0], losses, index)


def mse_forward(pred, target):
    """Mean of ``(pred - target)**2`` over every element; both 1-D of equal length. Returns a
    Python float (synchronizes)."""
    return _mean(_mse_forward, *device_arrays(pred=pred, target=target))


def mse_forward_into(pred, target, losses, index):
    """:func:`mse_forward` writing the mean to ``losses[index]`` (a float64 device array)."""
    _mean_into(_mse_forward, *device_arrays(pred=pred, target=target, losses=losses), index)


_mse_backward = elementwise("mse_backward_scaled(pred, target, dpred, scale: float64)",
                            "dpred = (pred - target) * scale")


def mse_backward(pred, target, dpred):
    """``dpred = 2 * (pred - target) / numel``; all 1-D of equal length."""
    _mse_backward(pred, target, dpred, 2.0 / max(int(pred.shape[0]), 1))


@cuda.jit(cache=True)
def _bce_forward(logits, target, partials):
    red = cuda.shared.array(MAX_THREADS, dtype=np.float64)
    total = np.float64(0.0)
    for i in range(cuda.grid(1), logits.shape[0], cuda.gridsize(1)):
        x = np.float64(logits[i])
        total += max(x, 0.0) - x * target[i] + math.log1p(math.exp(-abs(x)))
    total = block_sum(red, total)
    if cuda.threadIdx.x == 0:
        partials[cuda.blockIdx.x] = total


def bce_with_logits_forward(logits, target):
    """Mean binary cross-entropy of ``sigmoid(logits)`` against ``target`` over every element;
    both 1-D of equal length. Returns a Python float (synchronizes)."""
    return _mean(_bce_forward, *device_arrays(logits=logits, target=target))


def bce_with_logits_forward_into(logits, target, losses, index):
    """:func:`bce_with_logits_forward` writing the mean to ``losses[index]`` (a float64 device array)."""
    _mean_into(_bce_forward, *device_arrays(logits=logits, target=target, losses=losses), index)


# sigmoid(x) as 0.5 * (1 + tanh(x / 2)): no overflow for any finite x
_bce_backward = elementwise("bce_with_logits_backward_scaled(logits, target, dlogits, scale: float64)",
                            "dlogits = (0.5 + 0.5 * tanh(0.5 * logits) - target) * scale")


def bce_with_logits_backward(logits, target, dlogits):
    """``dlogits = (sigmoid(logits) - target) / numel``; all 1-D of equal length."""
    _bce_backward(logits, target, dlogits, 1.0 / max(int(logits.shape[0]), 1))


@cuda.jit(cache=True)
def _count_binary_rows(logits, target, partials):
    red = cuda.shared.array(MAX_THREADS, dtype=np.float64)
    n, c = logits.shape
    total = 0.0
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        ok = 1.0
        for j in range(c):
            if (logits[i, j] > 0) != (target[i, j] >= 0.5):
                ok = 0.0
        total += ok
    total = block_sum(red, total)
    if cuda.threadIdx.x == 0:
        partials[cuda.blockIdx.x] = total


def count_binary_correct(logits, target):
    """Rows whose every decision ``logit > 0`` matches ``target >= 0.5``, as a Python int
    (synchronizes)."""
    logits, target = device_arrays(logits=logits, target=target)
    if logits.shape[0] == 0:
        return 0
    return int(round(finish(*_first_pass(_count_binary_rows, logits, target))))


def count_binary_correct_into(logits, target, counts, index):
    """:func:`count_binary_correct` writing the count to ``counts[index]`` (an int64 device array)."""
    logits, target, counts = device_arrays(logits=logits, target=target, counts=counts)
    total = scratch("count", 1, np.float64)
    finish_into(*_first_pass(_count_binary_rows, logits, target), 1.0, total, 0)
    _store_count[1, 1](total, counts, index)


# ----------------------------------------------------------------------------------------------
# The device step's fused softmax cross-entropy: loss, gradient and correct count in one pass.
# ----------------------------------------------------------------------------------------------

#: rows up to which the fused loss runs as one block (one launch, nothing to combine)
FUSED_SINGLE_BLOCK_ROWS = 1024


@cuda.jit(device=True)
def _group_max(red, idx, tid, lane, lanes):
    """Reduce (value, index) pairs over a group of ``lanes`` threads: the larger value wins, the
    smaller index on ties (the first arg-max, as the CPU). Every thread of the block calls it."""
    step = lanes // 2
    while step > 0:
        if lane < step:
            other, where = red[tid + step], idx[tid + step]
            if other > red[tid] or (other == red[tid] and where < idx[tid]):
                red[tid] = other
                idx[tid] = where
        cuda.syncthreads()
        step //= 2


@cuda.jit(device=True)
def _group_sum(red, tid, lane, lanes):
    step = lanes // 2
    while step > 0:
        if lane < step:
            red[tid] += red[tid + step]
        cuda.syncthreads()
        step //= 2


@cuda.jit(cache=True)
def _sce_step(lf, labels, dlf, n, c, lanes, scale, partials, losses, counts, index, single):
    """A group of ``lanes`` threads (a warp, or part of one for few classes) per row: max and first
    arg-max, the float64 sum of exponentials, the probabilities and the gradient ``(p - onehot) *
    scale`` written once, the row's loss and whether it is correct; then the block's sums, to
    ``losses[index]``/``counts[index]`` (``single``) or to ``partials``."""
    red = cuda.shared.array(MAX_THREADS, dtype=np.float64)
    idx = cuda.shared.array(MAX_THREADS, dtype=np.int64)
    tid = cuda.threadIdx.x
    lane = tid % lanes
    slot = tid // lanes
    per = cuda.blockDim.x // lanes
    head = slot * lanes
    total = np.float64(0.0)
    right = np.float64(0.0)
    for r0 in range(cuda.blockIdx.x * per, n, cuda.gridDim.x * per):
        r = r0 + slot
        active = r < n
        o = r * c
        m = -math.inf
        best = c
        if active:
            for j in range(lane, c, lanes):
                v = np.float64(lf[o + j])
                if v > m:
                    m = v
                    best = j
        red[tid] = m
        idx[tid] = best
        cuda.syncthreads()
        _group_max(red, idx, tid, lane, lanes)
        mx = lf.dtype.type(red[head])
        best = idx[head]
        cuda.syncthreads()
        s = np.float64(0.0)
        if active:
            for j in range(lane, c, lanes):
                s += np.float64(math.exp(lf[o + j] - mx))
        red[tid] = s
        cuda.syncthreads()
        _group_sum(red, tid, lane, lanes)
        s = red[head]
        cuda.syncthreads()
        if active:
            label = labels[r]
            for j in range(lane, c, lanes):
                p = lf.dtype.type(np.float64(math.exp(lf[o + j] - mx)) / s)
                d = dlf.dtype.type(p * scale)
                if j == label:
                    d = dlf.dtype.type(d - scale)
                dlf[o + j] = d
            if lane == 0:
                total += math.log(s) + mx - lf[o + label]
                if best == c:
                    best = 0
                if best == label:
                    right += 1.0
    total = block_sum(red, total)
    right = block_sum(red, right)
    if tid == 0:
        if single:
            losses[index] = total / n
            counts[index] = int(right + 0.5)
        else:
            partials[cuda.blockIdx.x] = total
            partials[cuda.gridDim.x + cuda.blockIdx.x] = right


@cuda.jit(cache=True)
def _sce_step_finish(partials, blocks, n, losses, counts, index):
    red = cuda.shared.array(MAX_THREADS, dtype=np.float64)
    s = np.float64(0.0)
    k = np.float64(0.0)
    for i in range(cuda.threadIdx.x, blocks, cuda.blockDim.x):
        s += partials[i]
        k += partials[blocks + i]
    s = block_sum(red, s)
    k = block_sum(red, k)
    if cuda.threadIdx.x == 0:
        losses[index] = s / n
        counts[index] = int(k + 0.5)


def _lanes(c: int, threads: int) -> int:
    lanes = 1
    while lanes < c and lanes < 32 and lanes < threads:
        lanes *= 2
    return lanes


def softmax_cross_entropy_step(logits, labels, dlogits, losses, counts, index):
    """The training step's softmax cross-entropy in one launch (two for more than
    :data:`FUSED_SINGLE_BLOCK_ROWS` rows): ``losses[index]`` gets the mean loss (float64),
    ``counts[index]`` the number of rows whose first arg-max is the label (int64), and
    ``dlogits`` (N, C) the gradient of the mean loss, ``(softmax(logits) - onehot) / N``.

    The same numbers as :func:`softmax_cross_entropy_forward_into`, :func:`count_correct_into` and
    :func:`softmax_cross_entropy_backward` in turn (the probabilities are not kept). A group of
    threads per row (a warp, or the power of two at or above C when there are fewer classes);
    float64 sums in a fixed order, no atomics.
    """
    logits, labels, dlogits, losses, counts = device_arrays(logits=logits, labels=labels, dlogits=dlogits,
                                                            losses=losses, counts=counts)
    n, c = logits.shape
    threads = reduce_threads()
    lanes = _lanes(c, threads)
    per = threads // lanes
    if n <= FUSED_SINGLE_BLOCK_ROWS:
        blocks = 1
    else:
        blocks = max(1, min(math.ceil(n / per), reduce_grid(1 << 62)[0]))
    partials = scratch("sce_step_partials", 2 * blocks, np.float64)
    _sce_step[blocks, threads](flat_view(logits), labels, flat_view(dlogits), n, c, lanes, np.float64(1.0 / n),
                               partials, losses, counts, index, blocks == 1)
    if blocks > 1:
        _sce_step_finish[1, threads](partials, blocks, np.float64(n), losses, counts, index)
