"""Fused optimizer updates on the GPU: CUDA twins of :mod:`nkernels.kernels.cpu.optim`.

One grid-stride pass over flat (1-D) device arrays from the elementwise generator, every array read
once and written once, no temporaries. As on the CPU (and in ``torch.optim``) the arithmetic runs in
the parameter's dtype: the hyper-parameters are converted on the host, so a float32 update never
widens. The GPU contracts ``a*b + c`` into fused multiply-adds, so results may differ from the
CPU's in the last bit.
"""
import math

from .elementwise import elementwise

__all__ = ["sgd_update", "adam_update"]

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

