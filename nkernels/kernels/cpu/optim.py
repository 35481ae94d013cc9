"""Fused optimizer updates: one pass over a flat (1-D) parameter, no temporaries.

The semantics follow ``torch.optim`` (SGD without dampening, Adam and AdamW). The arithmetic
runs in the parameter's dtype, as PyTorch's does, so float32 updates vectorize 16 wide.
"""
import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def sgd_update(param, grad, velocity, lr, momentum, weight_decay, nesterov):
    """One SGD step in place. ``velocity`` starts at zero; all arrays 1-D of equal length."""
    t = param.dtype.type
    lr_, mu, wd = t(lr), t(momentum), t(weight_decay)
    if momentum == 0.0:
        for i in range(param.shape[0]):
            param[i] -= lr_ * (grad[i] + wd * param[i])
    elif nesterov:
        for i in range(param.shape[0]):
            g = grad[i] + wd * param[i]
            v = mu * velocity[i] + g
            velocity[i] = v
            param[i] -= lr_ * (g + mu * v)
    else:
        for i in range(param.shape[0]):
            v = mu * velocity[i] + grad[i] + wd * param[i]
            velocity[i] = v
            param[i] -= lr_ * v


@njit(cache=True, error_model="numpy")
def adam_update(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """One Adam step in place (AdamW when ``decoupled``); ``step`` counts from 1.

    param, grad, m, v: 1-D arrays of equal length; m and v start at zero.
    """
    t = param.dtype.type
    step_size = t(lr / (1.0 - beta1 ** step))
    inv_bias2 = t(1.0 / np.sqrt(1.0 - beta2 ** step))
    b1, b2, c1, c2 = t(beta1), t(beta2), t(1.0 - beta1), t(1.0 - beta2)
    eps_ = t(eps)
    if decoupled:
        shrink, wd = t(1.0 - lr * weight_decay), t(0.0)
    else:
        shrink, wd = t(1.0), t(weight_decay)
    for i in range(param.shape[0]):
        p = param[i] * shrink
        g = grad[i] + wd * p
        mi = b1 * m[i] + c1 * g
        vi = b2 * v[i] + c2 * g * g
        m[i] = mi
        v[i] = vi
        param[i] = p - step_size * mi / (np.sqrt(vi) * inv_bias2 + eps_)
