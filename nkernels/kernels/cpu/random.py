"""Counter-based random numbers: a pure function of ``(seed, counter)``, no state.

The generator is splitmix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number
generators", OOPSLA 2014; the finaliser is Stafford's "Mix13")::

    key     = mix64(seed + GOLDEN)                  # one key per seed
    z       = mix64(key + counter * GOLDEN)         # one 64-bit draw per counter
    uniform = (z >> 11) * 2**-53                    # in [0, 1), 53 random bits

Consecutive counters of one key are exactly the splitmix64 output stream, which passes
BigCrush. Mixing the seed first means two seeds do not give shifted copies of one stream.

**CPU/CUDA agreement.** Everything below uses only ``uint64`` xor, shift, add and multiply
(which wrap modulo 2**64 in LLVM on both targets, and every constant is a ``np.uint64`` so
Numba never promotes to ``float64``), one exact ``uint64 -> float64`` conversion of a value
below 2**53, and a float64 multiply by a power of two. So ``hash_u64``, ``hash_uniform`` and
everything built only from them (dropout masks, translation shifts) should be bit-identical on
the CPU and in ``@cuda.jit`` code (not yet checked on a GPU: no CUDA toolkit here). ``hash_normal`` goes through ``log``/``sqrt``/``cos``, whose
last bit may differ between the CPU libm and CUDA's libdevice.

The scalar helpers allocate nothing and touch no ``np.random``. A CUDA kernel can call these
``@njit`` dispatchers directly (numba-cuda compiles ``@njit`` callees as device functions; its
test ``test_enums.test_return_from_device_func`` does this),
or a CUDA module can wrap the same Python functions, ``cuda.jit(device=True)(f.py_func)``.
Every ``uint64`` handed from one helper to another is wrapped in ``np.uint64(...)`` (a no-op
when compiled) so the ``.py_func`` bodies also run as plain Python, as the CUDA simulator runs
them: a jitted helper returns a ``uint64`` to Python as an ``int``, and Numba's dispatcher
rejects an ``int >= 2**63`` once it holds an ``int64`` specialization. As plain Python on
NumPy scalars the arithmetic still wraps, but NumPy warns "overflow encountered in scalar
multiply"; silence it with ``np.errstate(over="ignore")``.

Counters are consumed, never reused: a layer keeps an ``offset`` and advances it by the number
of counters each call uses (``x.size`` for dropout, ``N`` for ``random_translate``).
"""
import math

import numpy as np
from numba import njit, prange

GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio, odd: the splitmix64 gamma
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_S32 = np.uint64(32)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2**-53, exact
_TWO_PI = 2.0 * math.pi
_F32_BELOW_ONE = 1.0 - 2.0**-24  # largest float32 below 1


@njit(cache=True, error_model="numpy")
def mix64(z):
    """splitmix64 finaliser: a bijection on ``uint64`` with full avalanche. ``mix64(0) == 0``."""
    z = np.uint64(z)
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, error_model="numpy")
def hash_u64(seed, counter):
    """64 random bits for ``(seed, counter)``, returned as ``np.uint64``.

    ``seed`` and ``counter`` are any integers; they are reinterpreted modulo 2**64 (a negative
    ``int64`` wraps), so ``counter = offset + i`` may be computed in ``int64`` or ``uint64``.
    From Python pass ints in ``[-2**63, 2**63)`` or ``np.uint64``; as plain Python (``.py_func``,
    the CUDA simulator) they must also be non-negative, since ``np.uint64(-1)`` raises there.
    """
    key = np.uint64(mix64(np.uint64(seed) + GOLDEN))
    return np.uint64(mix64(key + np.uint64(counter) * GOLDEN))


@njit(cache=True, error_model="numpy")
def u64_to_uniform(z):
    """Top 53 bits of a ``uint64`` as a float64 in ``[0, 1)`` (exact, never 1.0)."""
    return np.float64(np.uint64(z) >> _S11) * _TWO_M53


@njit(cache=True, error_model="numpy")
def hash_uniform(seed, counter):
    """Uniform float64 in ``[0, 1)`` for ``(seed, counter)``: a multiple of 2**-53."""
    return u64_to_uniform(np.uint64(hash_u64(seed, counter)))


@njit(cache=True, error_model="numpy")
def hash_randint(seed, counter, low, high):
    """Integer in ``[low, high]`` (inclusive, ``high - low < 2**32``), as ``int64``.

    Lemire's multiply-shift on the top 32 bits: integer-only, so it agrees on CPU and CUDA.
    The bias is below ``(high - low + 1) / 2**32``.
    """
    span = np.uint64(high - low + 1)
    hi = np.uint64(hash_u64(seed, counter)) >> _S32
    return np.int64(low) + np.int64((hi * span) >> _S32)


@njit(cache=True, error_model="numpy")
def hash_normal(seed, counter):
    """Standard normal float64 for ``(seed, counter)`` (Box-Muller, cosine branch).

    Uses its own 64-bit draw and a second one derived from it by ``mix64``; it is a function of
    ``(seed, counter)`` only. Tails reach about 8.6 sigma (``u1 >= 2**-53``). The last bit may
    differ between CPU and CUDA (``log``/``cos``/``sqrt`` come from different math libraries).
    """
    z1 = np.uint64(hash_u64(seed, counter))
    z2 = np.uint64(mix64(z1 + GOLDEN))
    u1 = 1.0 - u64_to_uniform(z1)  # (0, 1]: log is finite
    u2 = u64_to_uniform(z2)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * u2)


@njit(cache=True, error_model="numpy", parallel=True)
def uniform_fill(seed, offset, out):
    """``out[i] = hash_uniform(seed, offset + i)``; out is 1-D float32 or float64.

    Uses counters ``offset .. offset + out.size - 1``. A float32 draw that would round up to
    1.0 is stored as the largest float32 below 1, so the result stays in ``[0, 1)``.
    """
    base = np.uint64(offset)
    for i in prange(out.shape[0]):
        out[i] = hash_uniform(seed, base + np.uint64(i))
        if out[i] >= 1.0:
            out[i] = _F32_BELOW_ONE


@njit(cache=True, error_model="numpy", parallel=True)
def normal_fill(seed, offset, mean, std, out):
    """``out[i] = mean + std * hash_normal(seed, offset + i)``; out is 1-D float32 or float64."""
    base = np.uint64(offset)
    for i in prange(out.shape[0]):
        out[i] = mean + std * hash_normal(seed, base + np.uint64(i))
