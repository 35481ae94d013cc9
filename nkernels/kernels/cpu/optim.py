"""Fused optimizer updates: one pass over a flat (1-D) parameter, no temporaries.

The semantics follow ``torch.optim`` (SGD without dampening, Adam and AdamW). The arithmetic
runs in the parameter's dtype, as PyTorch's does, so float32 updates vectorize 16 wide.
"""
import numpy as np
from numba import njit


@njit(inline="always", error_model="numpy")
def _sgd_plain(p, g, lr, wd):
    """One element's SGD step without momentum: the new parameter."""
    return p - lr * (g + wd * p)


@njit(inline="always", error_model="numpy")
def _sgd_nesterov(p, g, velocity, lr, mu, wd):
    """One element's SGD step with Nesterov momentum: the new (parameter, velocity)."""
    g = g + wd * p
    v = mu * velocity + g
    return p - lr * (g + mu * v), v


@njit(inline="always", error_model="numpy")
def _sgd_momentum(p, g, velocity, lr, mu, wd):
    """One element's SGD step with momentum: the new (parameter, velocity)."""
    v = mu * velocity + g + wd * p
    return p - lr * v, v


@njit(cache=True, error_model="numpy")
def sgd_update(param, grad, velocity, lr, momentum, weight_decay, nesterov):
    """One SGD step in place. ``velocity`` starts at zero; all arrays 1-D of equal length."""
    t = param.dtype.type
    lr_, mu, wd = t(lr), t(momentum), t(weight_decay)
    if momentum == 0.0:
        for i in range(param.shape[0]):
            param[i] = _sgd_plain(param[i], grad[i], lr_, wd)
    elif nesterov:
        for i in range(param.shape[0]):
            param[i], velocity[i] = _sgd_nesterov(param[i], grad[i], velocity[i], lr_, mu, wd)
    else:
        for i in range(param.shape[0]):
            param[i], velocity[i] = _sgd_momentum(param[i], grad[i], velocity[i], lr_, mu, wd)


@njit(cache=True, error_model="numpy")
def sgd_update_halves(param, grad, other_grad, weight, other_weight, velocity, lr, momentum, weight_decay,
                      nesterov):
    """:func:`sgd_update` from the gradient ``weight * grad + other_weight * other_grad``, joined as it
    is read (the split mode's two half batches, as :func:`adam_update_halves`): the same bits as
    joining with :func:`nkernels.kernels.cpu.norms.combine_halves` first."""
    t = param.dtype.type
    lr_, mu, wd, w, u = t(lr), t(momentum), t(weight_decay), t(weight), t(other_weight)
    if momentum == 0.0:
        for i in range(param.shape[0]):
            param[i] = _sgd_plain(param[i], w * grad[i] + u * other_grad[i], lr_, wd)
    elif nesterov:
        for i in range(param.shape[0]):
            param[i], velocity[i] = _sgd_nesterov(param[i], w * grad[i] + u * other_grad[i], velocity[i], lr_, mu, wd)
    else:
        for i in range(param.shape[0]):
            param[i], velocity[i] = _sgd_momentum(param[i], w * grad[i] + u * other_grad[i], velocity[i], lr_, mu, wd)


@njit(cache=True, error_model="numpy")
def _adam_constants(param, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """What every element's Adam step shares, in the parameter's dtype: (step size, 1 / sqrt of the
    second moment's bias correction, beta1, beta2, 1 - beta1, 1 - beta2, eps, the decoupled decay's
    shrink factor, the L2 decay)."""
    t = param.dtype.type
    step_size = t(lr / (1.0 - beta1 ** step))
    inv_bias2 = t(1.0 / np.sqrt(1.0 - beta2 ** step))
    if decoupled:
        shrink, wd = t(1.0 - lr * weight_decay), t(0.0)
    else:
        shrink, wd = t(1.0), t(weight_decay)
    return step_size, inv_bias2, t(beta1), t(beta2), t(1.0 - beta1), t(1.0 - beta2), t(eps), shrink, wd


@njit(inline="always", error_model="numpy")
def _adam_element(p, g, m, v, constants):
    """One element's Adam step: the new (parameter, first moment, second moment)."""
    step_size, inv_bias2, b1, b2, c1, c2, eps, shrink, wd = constants
    p = p * shrink
    g = g + wd * p
    m = b1 * m + c1 * g
    v = b2 * v + c2 * g * g
    return p - step_size * m / (np.sqrt(v) * inv_bias2 + eps), m, v


@njit(cache=True, error_model="numpy")
def adam_update(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """One Adam step in place (AdamW when ``decoupled``); ``step`` counts from 1.

    param, grad, m, v: 1-D arrays of equal length; m and v start at zero.
    """
    constants = _adam_constants(param, lr, beta1, beta2, eps, weight_decay, decoupled, step)
    for i in range(param.shape[0]):
        param[i], m[i], v[i] = _adam_element(param[i], grad[i], m[i], v[i], constants)


@njit(cache=True, error_model="numpy")
def adam_update_halves(param, grad, other_grad, weight, other_weight, m, v, lr, beta1, beta2, eps, weight_decay,
                       decoupled, step):
    """:func:`adam_update` from the gradient ``weight * grad + other_weight * other_grad``, joined as it
    is read: the split mode's two half batches (each gradient its half's mean, each weight its share
    of the rows). The same bits as joining with :func:`nkernels.kernels.cpu.norms.combine_halves`
    first, without writing the joined gradient and reading it back."""
    t = param.dtype.type
    w, u = t(weight), t(other_weight)
    constants = _adam_constants(param, lr, beta1, beta2, eps, weight_decay, decoupled, step)
    for i in range(param.shape[0]):
        param[i], m[i], v[i] = _adam_element(param[i], w * grad[i] + u * other_grad[i], m[i], v[i], constants)


#: the optimizers :func:`apply_updates` runs, and the order of their hyperparameters in ``hyper``
#: (``nkernels.optimizers.Optimizer.fused_form`` builds ``hyper`` from these names)
SGD, ADAM = 0, 1
HYPERPARAMETERS = {SGD: ("lr", "momentum", "weight_decay"), ADAM: ("lr", "beta1", "beta2", "eps", "weight_decay")}


@njit(cache=True, error_model="numpy")
def apply_updates(optimizer, params, grads, state_a, state_b, hyper, flag, step):
    """Update every flat parameter in the tuple ``params``: for kernels that run whole epochs in
    their own compiled loop (schemes of plugins).

    ``optimizer`` SGD: :func:`sgd_update` with ``hyper`` = (lr, momentum, weight decay), ``flag``
    = nesterov, ``state_a`` the velocities. ADAM: :func:`adam_update` with ``hyper`` = (lr,
    beta1, beta2, eps, weight decay), ``flag`` = decoupled (AdamW), ``state_a``/``state_b`` the
    moments, at ``step`` (from 1). A 0-length entry is a parameter the model does not have.
    """
    for p in range(len(params)):
        if optimizer == SGD:
            sgd_update(params[p], grads[p], state_a[p], hyper[0], hyper[1], hyper[2], flag)
        else:
            adam_update(params[p], grads[p], state_a[p], state_b[p], hyper[0], hyper[1], hyper[2], hyper[3],
                        hyper[4], flag, step)
