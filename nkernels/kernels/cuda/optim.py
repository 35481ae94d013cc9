"""Fused optimizer updates on the GPU: CUDA twins of :mod:`nkernels.kernels.cpu.optim`.

One grid-stride pass over flat (1-D) device arrays, every array read once and written once, no
temporaries. As on the CPU (and in ``torch.optim``) the arithmetic runs in the parameter's
dtype: the hyper-parameters are converted on the host, so a float32 update never widens. The
GPU contracts ``a*b + c`` into fused multiply-adds, so results may differ from the CPU's in the
last bit.
"""
import math

import numpy as np
from numba import cuda

from .launch import as_device_array, grid_stride, scalar

__all__ = ["sgd_update", "adam_update"]


@cuda.jit(cache=True)
def _sgd(param, grad, velocity, lr, mu, wd, mode):
    """mode 0: no momentum (velocity untouched); 1: Nesterov; 2: classic momentum."""
    n = param.shape[0]
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        p = param[i]
        if mode == 0:
            param[i] = p - lr * (grad[i] + wd * p)
        elif mode == 1:
            g = grad[i] + wd * p
            v = mu * velocity[i] + g
            velocity[i] = v
            param[i] = p - lr * (g + mu * v)
        else:
            v = mu * velocity[i] + grad[i] + wd * p
            velocity[i] = v
            param[i] = p - lr * v


@cuda.jit(cache=True)
def _adam(param, grad, m, v, step_size, inv_bias2, b1, b2, c1, c2, eps, shrink, wd):
    n = param.shape[0]
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        p = param[i] * shrink
        g = grad[i] + wd * p
        mi = b1 * m[i] + c1 * g
        vi = b2 * v[i] + c2 * g * g
        m[i] = mi
        v[i] = vi
        param[i] = p - step_size * mi / (math.sqrt(vi) * inv_bias2 + eps)


def sgd_update(param, grad, velocity, lr, momentum, weight_decay, nesterov):
    """One SGD step in place. ``velocity`` starts at zero; all arrays 1-D device arrays of equal
    length (velocity is untouched when ``momentum == 0``)."""
    param = as_device_array(param, "param")
    grad = as_device_array(grad, "grad")
    velocity = as_device_array(velocity, "velocity")
    n = param.shape[0]
    if n == 0:
        return
    dt = np.dtype(param.dtype)
    mode = 0 if momentum == 0.0 else (1 if nesterov else 2)
    blocks, threads = grid_stride(n, per_thread=1)
    _sgd[blocks, threads](param, grad, velocity, scalar(dt, lr), scalar(dt, momentum),
                          scalar(dt, weight_decay), mode)


def adam_update(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """One Adam step in place (AdamW when ``decoupled``); ``step`` counts from 1.

    param, grad, m, v: 1-D device arrays of equal length; m and v start at zero.
    """
    param = as_device_array(param, "param")
    grad = as_device_array(grad, "grad")
    m = as_device_array(m, "m")
    v = as_device_array(v, "v")
    n = param.shape[0]
    if n == 0:
        return
    dt = np.dtype(param.dtype)
    t = dt.type
    step_size = t(lr / (1.0 - beta1 ** step))
    inv_bias2 = t(1.0 / math.sqrt(1.0 - beta2 ** step))
    if decoupled:
        shrink, wd = t(1.0 - lr * weight_decay), t(0.0)
    else:
        shrink, wd = t(1.0), t(weight_decay)
    blocks, threads = grid_stride(n, per_thread=1)
    _adam[blocks, threads](param, grad, m, v, step_size, inv_bias2, t(beta1), t(beta2),
                           t(1.0 - beta1), t(1.0 - beta2), t(eps), shrink, wd)
