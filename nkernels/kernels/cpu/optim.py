"""Fused optimizer updates: one pass over a flat (1-D) parameter, no temporaries.

The semantics follow ``torch.optim`` (SGD without dampening, Adam and AdamW).
"""
import numpy as np
from numba import njit


@njit(cache=True)
def sgd_update(param, grad, velocity, lr, momentum, weight_decay, nesterov):
    """One SGD step in place. ``velocity`` starts at zero; all arrays 1-D of equal length."""
    for i in range(param.shape[0]):
        g = grad[i] + weight_decay * param[i]
        if momentum != 0.0:
            v = momentum * velocity[i] + g
            velocity[i] = v
            g = g + momentum * v if nesterov else v
        param[i] -= lr * g


@njit(cache=True)
def adam_update(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """One Adam step in place (AdamW when ``decoupled``); ``step`` counts from 1.

    param, grad, m, v: 1-D arrays of equal length; m and v start at zero.
    """
    bias1 = 1.0 - beta1 ** step
    bias2_sqrt = np.sqrt(1.0 - beta2 ** step)
    step_size = lr / bias1
    for i in range(param.shape[0]):
        p = param[i]
        g = grad[i]
        if decoupled:
            p = p * (1.0 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        mi = beta1 * m[i] + (1.0 - beta1) * g
        vi = beta2 * v[i] + (1.0 - beta2) * g * g
        m[i] = mi
        v[i] = vi
        param[i] = p - step_size * mi / (np.sqrt(vi) / bias2_sqrt + eps)
