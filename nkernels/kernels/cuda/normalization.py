"""Normalization kernels on the GPU: CUDA twins of :mod:`nkernels.kernels.cpu.normalization`.

Same names, signatures and layouts. The statistics are reduced by one block per channel
(BatchNorm) or per row (LayerNorm), one kernel for both, through :func:`~.reduce.block_sum` in
float64, with no atomics, so a given grid gives the same bits on every run; the normalisations
and BatchNorm's input gradient are elementwise passes that read the saved (rounded) statistics
in the CPU kernels' order of operations. LayerNorm's input gradient takes one block per row;
its parameter gradients sum chunks of rows per column into float64 partials, then the partials
per column.

BatchNorm's running statistics and ``num_batches_tracked`` are the layer's buffers, which stay
on the host: the training forward copies the batch's per-channel mean and unbiased variance back
(2 * C float64; it synchronizes) and updates the buffers there, in float64 as the CPU kernel
does; the evaluation forward copies the running statistics over. Given device arrays for the
three buffers (the device step's mirrors of them, :mod:`nkernels.trainers.step_plan`), the
training forward updates them on the device instead, in the same float64 arithmetic: no copy,
no sync.
"""
import math

import numpy as np
from numba import cuda

from .elementwise import elementwise
from ...runtime.devices import is_device_array
from .launch import as_device_array, flat_view, reduce_threads, scratch, simulator, sm_count
from .reduce import MAX_THREADS, block_sum

__all__ = ["batchnorm_forward_train", "batchnorm_forward_eval", "batchnorm_backward",
           "layernorm_forward", "layernorm_scale_forward", "layernorm_affine_forward",
           "layernorm_backward", "layernorm_scale_backward", "layernorm_affine_backward"]

#: rows of LayerNorm's input summed per partial of its parameter gradients
PARAM_GRAD_CHUNK = 32


def _blocks(units: int) -> int:
    """Blocks of a one-block-per-unit reduction: at most one wave (a block loops over the rest)."""
    return max(1, min(units, 2 if simulator() else sm_count() * 8))


def _row_threads(size: int) -> int:
    """Threads of a block reducing ``size`` values: a power of two from 32 to :data:`MAX_THREADS`."""
    if simulator():
        return reduce_threads()
    threads = 32
    while threads < size and threads < MAX_THREADS:
        threads *= 2
    return threads


# ----------------------------------------------------------------------------------------------
# BatchNorm
# ----------------------------------------------------------------------------------------------


@cuda.jit(cache=True)
def _segment_stats(x, n, cols, length, channels, eps, mean, invstd, stats):
    """Per segment (one block each) of the flat (N, cols) ``x``, segment c being
    ``x[:, c * length:(c + 1) * length]`` (a BatchNorm channel; a LayerNorm row with N = 1):
    ``mean`` and ``invstd`` from the biased variance, and in ``stats`` the float64 mean and the
    unbiased variance (for BatchNorm's running update on the host)."""
    red = cuda.shared.array(MAX_THREADS, dtype=np.float64)
    tid = cuda.threadIdx.x
    nth = cuda.blockDim.x
    m = n * length
    for c in range(cuda.blockIdx.x, channels, cuda.gridDim.x):
        lo = c * length
        s = np.float64(0.0)
        for q in range(tid, m, nth):
            i = q // length
            s += np.float64(x[i * cols + lo + q - i * length])
        mu = block_sum(red, s) / m
        ss = np.float64(0.0)
        for q in range(tid, m, nth):
            i = q // length
            dev = np.float64(x[i * cols + lo + q - i * length]) - mu
            ss += dev * dev
        ss = block_sum(red, ss)
        if tid == 0:
            mean[c] = mu
            invstd[c] = 1.0 / math.sqrt(ss / m + eps)
            stats[c] = mu
            stats[channels + c] = ss / (m - 1) if m > 1 else 0.0


_batchnorm_normalize = elementwise(
    "batchnorm_normalize(x, mean, invstd, weight, bias, cols: int64, length: int64, out)",
    """
    c = (i % cols) // length
    out = (x - mean[c]) * invstd[c] * weight[c] + bias[c]
    """)


def batchnorm_forward_train(x, channels, weight, bias, eps, momentum, cumulative, running_mean, running_var,
                            num_batches_tracked, mean, invstd, out):
    """Normalise each channel of ``x`` (N, C * L) with its batch statistics; save ``mean`` and
    ``invstd``; update the running statistics (host arrays) and ``num_batches_tracked``. Device
    arrays for x, weight, bias, mean, invstd, out."""
    x, out = as_device_array(x, "x"), as_device_array(out, "out")
    mean, invstd = as_device_array(mean, "mean"), as_device_array(invstd, "invstd")
    n, cols = x.shape
    length = cols // channels
    stats = scratch("batchnorm_stats", 2 * channels, np.float64)
    _segment_stats[_blocks(channels), reduce_threads()](flat_view(x), n, cols, length, channels, np.float64(eps),
                                                         mean, invstd, stats)
    _batchnorm_normalize(flat_view(x), mean, invstd, as_device_array(weight, "weight"),
                         as_device_array(bias, "bias"), cols, length, flat_view(out))
    if is_device_array(running_mean):  # the device step keeps the buffers on the GPU: no copy, no sync
        _running_update[1, reduce_threads()](stats, channels, np.float64(momentum), bool(cumulative),
                                             as_device_array(running_mean, "running_mean"),
                                             as_device_array(running_var, "running_var"),
                                             as_device_array(num_batches_tracked, "num_batches_tracked"))
        return
    batch = stats[:2 * channels].copy_to_host()
    num_batches_tracked[0] += 1
    factor = 1.0 / float(num_batches_tracked[0]) if cumulative else float(momentum)
    running_mean[:] = (1.0 - factor) * running_mean.astype(np.float64) + factor * batch[:channels]
    running_var[:] = (1.0 - factor) * running_var.astype(np.float64) + factor * batch[channels:]


@cuda.jit(cache=True)
def _running_update(stats, channels, momentum, cumulative, running_mean, running_var, num_batches_tracked):
    """The running statistics' update on the device (one block), in float64 as the CPU kernel:
    ``num_batches_tracked += 1`` and ``running = (1 - f) * running + f * batch``."""
    tracked = num_batches_tracked[0] + 1
    cuda.syncthreads()  # every thread has read the count before it moves
    factor = 1.0 / tracked if cumulative else momentum
    for c in range(cuda.threadIdx.x, channels, cuda.blockDim.x):
        running_mean[c] = (1.0 - factor) * np.float64(running_mean[c]) + factor * stats[c]
        running_var[c] = (1.0 - factor) * np.float64(running_var[c]) + factor * stats[channels + c]
    if cuda.threadIdx.x == 0:
        num_batches_tracked[0] = tracked


_batchnorm_eval = elementwise(
    "batchnorm_eval(x, weight, bias, running_mean, running_var, eps: float64, cols: int64, length: int64, out)",
    """
    c = (i % cols) // length
    scale = float64(weight[c]) / sqrt(float64(running_var[c]) + eps)
    out = float64(x) * scale + (float64(bias[c]) - float64(running_mean[c]) * scale)
    """)


def batchnorm_forward_eval(x, channels, weight, bias, eps, running_mean, running_var, out):
    """``out = (x - running_mean) / sqrt(running_var + eps) * weight + bias`` per channel of ``x``
    (N, C * L); the running statistics are the layer's host buffers, copied over."""
    x, out = as_device_array(x, "x"), as_device_array(out, "out")
    dtype = np.dtype(x.dtype)
    stats = [cuda.to_device(np.ascontiguousarray(a, dtype=dtype)) for a in (running_mean, running_var)]
    cols = x.shape[1]
    _batchnorm_eval(flat_view(x), as_device_array(weight, "weight"), as_device_array(bias, "bias"), *stats,
                    float(eps), cols, cols // channels, flat_view(out))


@cuda.jit(cache=True)
def _batchnorm_grad_sums(x, dy, n, cols, length, channels, mean, invstd, dweight, dbias):
    red = cuda.shared.array(MAX_THREADS, dtype=np.float64)
    tid = cuda.threadIdx.x
    nth = cuda.blockDim.x
    m = n * length
    for c in range(cuda.blockIdx.x, channels, cuda.gridDim.x):
        lo = c * length
        mu = mean[c]
        inv = invstd[c]
        sdy = np.float64(0.0)
        sdyx = np.float64(0.0)
        for q in range(tid, m, nth):
            i = q // length
            k = i * cols + lo + q - i * length
            g = dy[k]
            sdy += np.float64(g)
            sdyx += np.float64(g * ((x[k] - mu) * inv))
        sdy = block_sum(red, sdy)
        sdyx = block_sum(red, sdyx)
        if tid == 0:
            dbias[c] = sdy
            dweight[c] = sdyx


_batchnorm_input_grad = elementwise(
    "batchnorm_input_grad(x, dy, weight, mean, invstd, dweight, dbias, m: int64, cols: int64, length: int64, dx)",
    """
    c = (i % cols) // length
    inv = invstd[c]
    dx = weight[c] * inv * (dy - (dbias[c] / m + (x - mean[c]) * inv * (dweight[c] / m)))
    """)


def batchnorm_backward(x, dy, channels, weight, mean, invstd, need_dx, dx, dweight, dbias):
    """``dbias = sum(dy)``, ``dweight = sum(dy * xhat)`` per channel, and ``dx`` when ``need_dx``
    (see the CPU kernel); device arrays, x, dy, dx of shape (N, C * L)."""
    x, dy = as_device_array(x, "x"), as_device_array(dy, "dy")
    mean, invstd = as_device_array(mean, "mean"), as_device_array(invstd, "invstd")
    dweight, dbias = as_device_array(dweight, "dweight"), as_device_array(dbias, "dbias")
    n, cols = x.shape
    length = cols // channels
    _batchnorm_grad_sums[_blocks(channels), reduce_threads()](flat_view(x), flat_view(dy), n, cols, length, channels,
                                                             mean, invstd, dweight, dbias)
    if need_dx:
        _batchnorm_input_grad(flat_view(x), flat_view(dy), as_device_array(weight, "weight"), mean, invstd, dweight,
                              dbias, n * length, cols, length, flat_view(as_device_array(dx, "dx")))


# ----------------------------------------------------------------------------------------------
# LayerNorm
# ----------------------------------------------------------------------------------------------


_layernorm_normalize = {
    "plain": elementwise("layernorm_normalize(x, mean, invstd, d: int64, out)", """
        r = i // d
        out = (x - mean[r]) * invstd[r]
        """),
    "scale": elementwise("layernorm_scale_normalize(x, mean, invstd, weight, d: int64, out)", """
        r = i // d
        out = (x - mean[r]) * invstd[r] * weight[i - r * d]
        """),
    "affine": elementwise("layernorm_affine_normalize(x, mean, invstd, weight, bias, d: int64, out)", """
        r = i // d
        out = (x - mean[r]) * invstd[r] * weight[i - r * d] + bias[i - r * d]
        """),
}


def _layernorm_forward(x, d, params, eps, mean, invstd, out):
    """The rows' statistics (each row a segment of one sample), then the normalisation with ``params``."""
    x, out = as_device_array(x, "x"), as_device_array(out, "out")
    mean, invstd = as_device_array(mean, "mean"), as_device_array(invstd, "invstd")
    rows = x.shape[0] // d
    stats = scratch("layernorm_stats", 2 * rows, np.float64)
    _segment_stats[_blocks(rows), _row_threads(d)](x, 1, rows * d, d, rows, np.float64(eps), mean, invstd, stats)
    variant = ("plain", "scale", "affine")[len(params)]
    _layernorm_normalize[variant](x, mean, invstd, *(as_device_array(p, "weight or bias") for p in params), d, out)


def layernorm_forward(x, d, eps, mean, invstd, out):
    """``out = (x - mean) * invstd`` over each row of ``d`` elements of the flat ``x``; saves each
    row's ``mean`` and ``invstd``."""
    _layernorm_forward(x, d, (), eps, mean, invstd, out)


def layernorm_scale_forward(x, d, weight, eps, mean, invstd, out):
    """As :func:`layernorm_forward`, times ``weight`` (``d`` values)."""
    _layernorm_forward(x, d, (weight,), eps, mean, invstd, out)


def layernorm_affine_forward(x, d, weight, bias, eps, mean, invstd, out):
    """As :func:`layernorm_forward`, times ``weight`` plus ``bias`` (``d`` values each)."""
    _layernorm_forward(x, d, (weight, bias), eps, mean, invstd, out)


def _unused(dtype):
    """A one-element device array standing for an absent weight or bias."""
    return scratch("layernorm_unused", 1, dtype)


@cuda.jit(cache=True)
def _layernorm_input_grad(x, dy, d, rows, weight, has_weight, mean, invstd, dx):
    red = cuda.shared.array(MAX_THREADS, dtype=np.float64)
    tid = cuda.threadIdx.x
    nth = cuda.blockDim.x
    for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        base = r * d
        mu = mean[r]
        inv = invstd[r]
        sg = np.float64(0.0)
        sgx = np.float64(0.0)
        for j in range(tid, d, nth):
            g = dy[base + j] * weight[j] if has_weight else dy[base + j]
            sg += np.float64(g)
            sgx += np.float64(g * ((x[base + j] - mu) * inv))
        mg = block_sum(red, sg) / d
        mgx = block_sum(red, sgx) / d
        for j in range(tid, d, nth):
            g = dy[base + j] * weight[j] if has_weight else dy[base + j]
            dx[base + j] = inv * (g - (mg + (x[base + j] - mu) * inv * mgx))


@cuda.jit(cache=True)
def _layernorm_param_partials(x, dy, d, rows, chunk, mean, invstd, partials):
    """``partials[k, j]`` and ``partials[chunks + k, j]``: the sums of ``dy * xhat`` and ``dy`` of
    column j over the rows of chunk k."""
    chunks = (rows + chunk - 1) // chunk
    for q in range(cuda.grid(1), chunks * d, cuda.gridsize(1)):
        k = q // d
        j = q - k * d
        sw = np.float64(0.0)
        sb = np.float64(0.0)
        for r in range(k * chunk, min(rows, (k + 1) * chunk)):
            g = dy[r * d + j]
            sw += np.float64(g * ((x[r * d + j] - mean[r]) * invstd[r]))
            sb += np.float64(g)
        partials[q] = sw
        partials[chunks * d + q] = sb


@cuda.jit(cache=True)
def _layernorm_param_finish(partials, d, chunks, dweight, dbias, has_bias):
    for j in range(cuda.grid(1), d, cuda.gridsize(1)):
        sw = np.float64(0.0)
        sb = np.float64(0.0)
        for k in range(chunks):
            sw += partials[k * d + j]
            sb += partials[chunks * d + k * d + j]
        dweight[j] = sw
        if has_bias:
            dbias[j] = sb


def _layernorm_backward(x, dy, d, weight, mean, invstd, need_dx, dx, dweight, dbias):
    x, dy = as_device_array(x, "x"), as_device_array(dy, "dy")
    mean, invstd = as_device_array(mean, "mean"), as_device_array(invstd, "invstd")
    rows = x.shape[0] // d
    threads = reduce_threads()
    if dweight is not None:
        dweight = as_device_array(dweight, "dweight")
        chunks = max(1, (rows + PARAM_GRAD_CHUNK - 1) // PARAM_GRAD_CHUNK)
        partials = scratch("layernorm_partials", 2 * chunks * d, np.float64)
        _layernorm_param_partials[_blocks((chunks * d + threads - 1) // threads), threads](
            x, dy, d, rows, PARAM_GRAD_CHUNK, mean, invstd, partials)
        _layernorm_param_finish[_blocks((d + threads - 1) // threads), threads](
            partials, d, chunks, dweight, _unused(x.dtype) if dbias is None else as_device_array(dbias, "dbias"),
            dbias is not None)
    if need_dx and rows:
        _layernorm_input_grad[_blocks(rows), _row_threads(d)](
            x, dy, d, rows, _unused(x.dtype) if weight is None else as_device_array(weight, "weight"),
            weight is not None, mean, invstd, as_device_array(dx, "dx"))


def layernorm_backward(x, dy, d, mean, invstd, need_dx, dx):
    """The input gradient of :func:`layernorm_forward` (when ``need_dx``)."""
    _layernorm_backward(x, dy, d, None, mean, invstd, need_dx, dx, None, None)


def layernorm_scale_backward(x, dy, d, weight, mean, invstd, need_dx, dx, dweight):
    """The gradients of :func:`layernorm_scale_forward`: ``dweight`` (overwritten) and ``dx``."""
    _layernorm_backward(x, dy, d, weight, mean, invstd, need_dx, dx, dweight, None)


def layernorm_affine_backward(x, dy, d, weight, mean, invstd, need_dx, dx, dweight, dbias):
    """The gradients of :func:`layernorm_affine_forward`: ``dweight``, ``dbias`` (overwritten) and ``dx``."""
    _layernorm_backward(x, dy, d, weight, mean, invstd, need_dx, dx, dweight, dbias)
