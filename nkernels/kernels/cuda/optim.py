"""Fused optimizer updates on the GPU: CUDA twins of :mod:`nkernels.kernels.cpu.optim`.

One grid-stride pass over flat (1-D) device arrays from the elementwise generator, every array read
once and written once, no temporaries. As on the CPU (and in ``torch.optim``) the arithmetic runs in
the parameter's dtype: the hyper-parameters are converted on the host, so a float32 update never
widens. The GPU contracts ``a*b + c`` into fused multiply-adds, so results may differ from the
CPU's in the last bit.
"""
import math

import numpy as np
from numba import cuda

from .elementwise import elementwise
from .launch import as_device_array, grid_stride, reduce_threads, scratch
from .norms import _sum_of_squares
from .reduce import MAX_THREADS, partials_for, sum_of_partials

__all__ = ["sgd_update", "adam_update", "sgd_update_flat", "adam_update_flat", "clip_factor_into"]

_sgd = elementwise("sgd_plain(param, grad, lr: scalar, wd: scalar)", "param -= lr * (grad + wd * param)")
_sgd_nesterov = elementwise("sgd_nesterov(param, grad, velocity, lr: scalar, mu: scalar, wd: scalar)", """
g = grad + wd * param
velocity = mu * velocity + g
param -= lr * (g + mu * velocity)
""")
_sgd_momentum = elementwise("sgd_momentum(param, grad, velocity, lr: scalar, mu: scalar, wd: scalar)", """
velocity = mu * velocity + grad + wd * param
param -= lr * velocity
""")
_adam = elementwise("adam_step(param, grad, m, v, step_size: scalar, inv_bias2: scalar, b1: scalar, b2: scalar, "
                    "c1: scalar, c2: scalar, eps: scalar, shrink: scalar, wd: scalar)", """
p = param * shrink
g = grad + wd * p
m = b1 * m + c1 * g
v = b2 * v + c2 * g * g
param = p - step_size * m / (sqrt(v) * inv_bias2 + eps)
""")

def sgd_update(param, grad, velocity, lr, momentum, weight_decay, nesterov):
    """One SGD step in place. ``velocity`` starts at zero; all arrays 1-D device arrays of equal
    length (velocity is untouched when ``momentum == 0``)."""
    if momentum == 0.0:
        _sgd(param, grad, lr, weight_decay)
    else:
        (_sgd_nesterov if nesterov else _sgd_momentum)(param, grad, velocity, lr, momentum, weight_decay)

def adam_update(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """One Adam step in place (AdamW when ``decoupled``); ``step`` counts from 1.

    param, grad, m, v: 1-D device arrays of equal length; m and v start at zero. The bias
    corrections are computed on the host in float64 and passed in the parameter's dtype.
    """
    step_size = lr / (1.0 - beta1 ** step)
    inv_bias2 = 1.0 / math.sqrt(1.0 - beta2 ** step)
    shrink, wd = (1.0 - lr * weight_decay, 0.0) if decoupled else (1.0, weight_decay)
    _adam(param, grad, m, v, step_size, inv_bias2, beta1, beta2, 1.0 - beta1, 1.0 - beta2, eps, shrink, wd)



# ----------------------------------------------------------------------------------------------
# The device step's fused updates: one launch over the flat parameter buffer, the gradient
# scaled by a clipping factor that stays on the device (no host sync per parameter or per step).
# ----------------------------------------------------------------------------------------------

@cuda.jit(cache=True)
def _clip_factor_into(partials, count, max_norm, out):
    """Sum the first pass's partials (one block, fixed order) and write ``clip_factor`` to out[0]."""
    red = cuda.shared.array(MAX_THREADS, dtype=np.float64)
    total = sum_of_partials(red, partials, count)
    if cuda.threadIdx.x == 0:
        coef = max_norm / (math.sqrt(total) + 1e-6)
        if coef > 1.0:
            coef = 1.0
        out[0] = coef


def clip_factor_into(grads_flat, max_norm, out):
    """``out[0] = min(1, max_norm / (sqrt(sum(grads**2)) + 1e-6))``, float64, computed on the device
    (two launches, no copy): the factor ``clip_grad_norm_`` scales every gradient by, for the
    fused updates' ``scale`` argument. ``grads_flat``: 1-D device array of every gradient."""
    grads_flat, out = as_device_array(grads_flat, "grads_flat"), as_device_array(out, "out")
    n = grads_flat.shape[0]
    blocks, threads, partials = partials_for(max(n, 1))
    _sum_of_squares[blocks, threads](grads_flat, partials)
    _clip_factor_into[1, reduce_threads()](partials, blocks, np.float64(max_norm), out)


@cuda.jit(device=True, inline="always")
def _clipped_grad(grad, i, clip, scale):
    """``grad[i]``, first scaled in place by the clipping factor ``scale[0]`` when ``clip``."""
    g = grad[i]
    if clip:
        g = grad.dtype.type(g * scale[0])
        grad[i] = g
    return g


@cuda.jit(cache=True)
def _adam_flat(param, grad, m, v, clip, scale, step_size, inv_bias2, b1, b2, c1, c2, eps, shrink, wd):
    for i in range(cuda.grid(1), param.shape[0], cuda.gridsize(1)):
        g = _clipped_grad(grad, i, clip, scale)
        p = param[i] * shrink
        g = g + wd * p
        mi = b1 * m[i] + c1 * g
        vi = b2 * v[i] + c2 * g * g
        m[i] = mi
        v[i] = vi
        param[i] = p - step_size * mi / (math.sqrt(vi) * inv_bias2 + eps)


@cuda.jit(cache=True)
def _sgd_flat(param, grad, velocity, clip, scale, kind, lr, mu, wd):
    for i in range(cuda.grid(1), param.shape[0], cuda.gridsize(1)):
        g = _clipped_grad(grad, i, clip, scale)
        p = param[i]
        if kind == 0:
            param[i] = p - lr * (g + wd * p)
        elif kind == 1:
            vel = mu * velocity[i] + g + wd * p
            velocity[i] = vel
            param[i] = p - lr * vel
        else:
            g = g + wd * p
            vel = mu * velocity[i] + g
            velocity[i] = vel
            param[i] = p - lr * (g + mu * vel)


def _flat_launch(param, grad, scale):
    param, grad = as_device_array(param, "param"), as_device_array(grad, "grad")
    if grad.shape[0] != param.shape[0]:
        raise ValueError(f"param and grad must have the same length, got {param.shape[0]} and {grad.shape[0]}")
    clip = scale is not None
    scale = as_device_array(scale, "scale") if clip else _ONE()
    blocks, threads = grid_stride(param.shape[0], per_thread=1)
    return param, grad, clip, scale, blocks, threads


def _ONE():
    """A one-element float64 device buffer for the ``scale`` operand when nothing is clipped (unread)."""
    return scratch("optim_unit_scale", 1, np.float64)


def adam_update_flat(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step, scale=None):
    """:func:`adam_update` over every parameter at once (the flat buffers of the device step), in one
    launch; with ``scale`` (a one-element float64 device array, from :func:`clip_factor_into`) each
    gradient is first multiplied by ``scale[0]`` and written back, as clipping does on the CPU."""
    param, grad, clip, scale, blocks, threads = _flat_launch(param, grad, scale)
    t = param.dtype.type
    step_size = lr / (1.0 - beta1 ** step)
    inv_bias2 = 1.0 / math.sqrt(1.0 - beta2 ** step)
    shrink, wd = (1.0 - lr * weight_decay, 0.0) if decoupled else (1.0, weight_decay)
    _adam_flat[blocks, threads](param, grad, as_device_array(m, "m"), as_device_array(v, "v"), clip, scale,
                                t(step_size), t(inv_bias2), t(beta1), t(beta2), t(1.0 - beta1), t(1.0 - beta2),
                                t(eps), t(shrink), t(wd))


def sgd_update_flat(param, grad, velocity, lr, momentum, weight_decay, nesterov, scale=None):
    """:func:`sgd_update` over every parameter at once, in one launch; ``scale`` as in
    :func:`adam_update_flat`."""
    param, grad, clip, scale, blocks, threads = _flat_launch(param, grad, scale)
    t = param.dtype.type
    kind = 0 if momentum == 0.0 else (2 if nesterov else 1)
    _sgd_flat[blocks, threads](param, grad, as_device_array(velocity, "velocity"), clip, scale, kind, t(lr),
                               t(momentum), t(weight_decay))
