"""The elementwise ADMM sub-problems, solved globally in closed form: plain @njit functions on 2-D arrays.

Each kernel writes into a preallocated ``z`` of the shape of its inputs. They are serial: the work
is a few memory-bound passes, and a ``prange`` pool would fight BLAS for the cores between the
least-squares solves.
"""
from numba import njit


@njit(cache=True, error_model="numpy")
def relu_preactivation_update(a, m, gamma, beta, z):
    """``z = argmin_z gamma * (a - relu(z))**2 + beta * (z - m)**2`` for every element.

    ``a`` is the layer's activation, ``m = W a_prev + b`` its affine image of the layer below.
    On ``z >= 0`` the problem is a quadratic with minimizer ``(gamma a + beta m) / (gamma + beta)``,
    on ``z <= 0`` it is ``gamma a**2 + beta (z - m)**2`` with minimizer ``min(m, 0)``; the kernel
    keeps whichever branch's minimum is lower.
    """
    weight = gamma + beta
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            ai = a[i, j]
            mi = m[i, j]
            zp = (gamma * ai + beta * mi) / weight
            if zp < 0.0:
                zp = 0.0
            fp = gamma * (ai - zp) ** 2 + beta * (zp - mi) ** 2
            zn = mi if mi < 0.0 else 0.0
            fn = gamma * ai * ai + beta * (zn - mi) ** 2
            z[i, j] = zn if fn < fp else zp


@njit(cache=True, error_model="numpy")
def _hinge(z, t):
    """The binary hinge loss of one output against a 0/1 target: max(1 - z, 0) or max(z, 0)."""
    if t > 0.5:
        return 1.0 - z if z < 1.0 else 0.0
    return z if z > 0.0 else 0.0


@njit(cache=True, error_model="numpy")
def hinge_output_update(targets, lam, m, beta, z):
    """``z = argmin_z hinge(z, t) + lam * z + beta * (z - m)**2`` for every element.

    ``targets`` are 0/1 (one-hot class labels), so each output is a one-vs-rest binary hinge
    problem. The hinge has one kink (at 1 for a target of 1, at 0 for a target of 0); on each
    side the problem is a quadratic whose minimizer is clipped to that side, and the kernel keeps
    the lower of the two.
    """
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            t = targets[i, j]
            li = lam[i, j]
            mi = m[i, j]
            if t > 0.5:  # kink at 1: slope -1 below it, 0 above
                za = mi - li / (2.0 * beta)
                if za < 1.0:
                    za = 1.0
                zb = mi + (1.0 - li) / (2.0 * beta)
                if zb > 1.0:
                    zb = 1.0
            else:  # kink at 0: slope 0 below it, 1 above
                za = mi - li / (2.0 * beta)
                if za > 0.0:
                    za = 0.0
                zb = mi - (1.0 + li) / (2.0 * beta)
                if zb < 0.0:
                    zb = 0.0
            fa = _hinge(za, t) + li * za + beta * (za - mi) ** 2
            fb = _hinge(zb, t) + li * zb + beta * (zb - mi) ** 2
            z[i, j] = za if fa <= fb else zb


@njit(cache=True, error_model="numpy")
def least_squares_output_update(targets, lam, m, beta, z):
    """``z = argmin_z (z - t)**2 + lam * z + beta * (z - m)**2 = (2 t - lam + 2 beta m) / (2 + 2 beta)``."""
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            z[i, j] = (2.0 * targets[i, j] - lam[i, j] + 2.0 * beta * m[i, j]) / (2.0 + 2.0 * beta)

