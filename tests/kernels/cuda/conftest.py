"""Shared fixtures of the CUDA kernel tests.

Under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, which tests/conftest.py sets) every test
runs on tiny shapes. With ``NKERNELS_REAL_GPU=1`` the same tests run on a real GPU at realistic
shapes: run them alone, ``NKERNELS_REAL_GPU=1 python -m pytest tests/kernels/cuda``, so that
this file can switch the simulator off before numba is first imported.
"""
import os

import numpy as np
import pytest

REAL_GPU = os.environ.get("NKERNELS_REAL_GPU") == "1"

if REAL_GPU:
    import sys

    if "numba" not in sys.modules:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "0"
    else:
        from numba import config

        if config.ENABLE_CUDASIM:
            raise pytest.UsageError("NKERNELS_REAL_GPU=1 needs the simulator off: run "
                                    "NUMBA_ENABLE_CUDASIM=0 NKERNELS_REAL_GPU=1 python -m pytest "
                                    "tests/kernels/cuda")

DTYPES = [np.float32, np.float64]


@pytest.fixture(params=DTYPES, ids=["f32", "f64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture
def real_gpu():
    """True when the tests run on a real GPU (NKERNELS_REAL_GPU=1), False under the simulator."""
    return REAL_GPU


@pytest.fixture
def pick():
    """``pick(sim, real)``: the simulator's value, or the real GPU's with NKERNELS_REAL_GPU=1."""
    return lambda sim, real: real if REAL_GPU else sim


@pytest.fixture
def dev():
    """``dev(a)``: a NumPy array copied to the device."""
    from numba import cuda

    return lambda a: cuda.to_device(np.ascontiguousarray(a))


@pytest.fixture
def poison():
    """``poison(shape, dtype)``: a device array full of NaN, so that unwritten outputs show."""
    from numba import cuda

    return lambda shape, dtype: cuda.to_device(np.full(shape, np.nan, dtype))


def _tol(dtype, scale=1.0):
    return (2e-5 if np.dtype(dtype) == np.float32 else 1e-12) * scale


@pytest.fixture
def close():
    """``close(got, ref, scale=1)``: got (device or host) matches ref to a max-norm relative
    tolerance of the dtype (2e-5 float32, 1e-12 float64, times ``scale``); NaN never passes."""

    def check(got, ref, scale=1.0, dtype=None):
        got = got.copy_to_host() if hasattr(got, "copy_to_host") else np.asarray(got)
        ref = np.asarray(ref)
        assert got.shape == ref.shape, (got.shape, ref.shape)
        assert not np.isnan(got).any(), "NaN in the output (unwritten elements?)"
        denom = max(float(np.max(np.abs(ref))) if ref.size else 0.0, 1e-30)
        err = float(np.max(np.abs(got.astype(np.float64) - ref))) / denom if ref.size else 0.0
        assert err <= _tol(dtype or got.dtype, scale), f"relative max error {err:.3g}"

    return check
