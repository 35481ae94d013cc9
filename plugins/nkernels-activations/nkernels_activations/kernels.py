"""Numba kernels of the extra activations, on flat (1-D) views; backward takes the forward input."""
import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def leaky_relu_forward(x, negative_slope, out):
    """``out = x if x > 0 else negative_slope * x``."""
    for i in range(x.shape[0]):
        v = x[i]
        out[i] = v if v > 0 else negative_slope * v


@njit(cache=True, error_model="numpy")
def leaky_relu_backward(x, dy, negative_slope, dx):
    """``dx = dy if x > 0 else negative_slope * dy``."""
    for i in range(x.shape[0]):
        dx[i] = dy[i] if x[i] > 0 else negative_slope * dy[i]


@njit(cache=True, error_model="numpy")
def elu_forward(x, alpha, out):
    """``out = x if x > 0 else alpha * (exp(x) - 1)``."""
    for i in range(x.shape[0]):
        v = x[i]
        out[i] = v if v > 0 else alpha * np.expm1(v)


@njit(cache=True, error_model="numpy")
def elu_backward(x, dy, alpha, dx):
    """``dx = dy if x > 0 else dy * alpha * exp(x)``."""
    for i in range(x.shape[0]):
        v = x[i]
        dx[i] = dy[i] if v > 0 else dy[i] * alpha * np.exp(v)
