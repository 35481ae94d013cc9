"""pytest plugin of :mod:`compile_check` (``-p record_launches``): under the CUDA simulator, record what
every kernel launch ran (a module-level kernel by module and name; a generated or factory-made kernel by
its factory and arguments) and its Numba argument types, pickled to ``$NKERNELS_LAUNCHES.<pid>.pkl``."""
import atexit
import functools
import os
import pickle

import numba
from numba.cuda.simulator import kernel as simulated

_seen: set = set()
_call = simulated.FakeCUDAKernel.__call__


def _numba_type(arg):
    array = getattr(arg, "_ary", None)  # a simulated device array: the NumPy array it wraps
    return numba.typeof(array if array is not None else arg)


def _recording_call(self, *args):
    if not (self._device or simulated._kernel_context):  # a launch, not a device function's call
        try:
            sig = tuple(_numba_type(a) for a in args)
        except Exception as exc:  # noqa: BLE001 - recorded, the launch goes on
            sig = ("untypable", repr(exc)[:200])
        what = getattr(self, "_nk_factory", None) or ("function", self.fn.__module__, self.fn.__qualname__)
        _seen.add((what, sig))
    return _call(self, *args)


def _tag_factory(module, name):
    """Wrap ``module.name`` (an lru-cached kernel factory) so that its kernels carry their recipe."""
    factory = getattr(module, name)
    inner = getattr(factory, "__wrapped__", factory)

    @functools.lru_cache(maxsize=None)
    def tagged(*args):
        kernel = inner(*args)
        kernel._nk_factory = ("factory", module.__name__, name, tuple(tuple(a) if isinstance(a, tuple) else a
                                                                       for a in args))
        return kernel

    setattr(module, name, tagged)


#: the kernel factories of nkernels: generated GEMMs and split-K reduces, and kernels sized at run time
FACTORIES = (("nkernels.kernels.cuda.gemm", "gemm_kernel"), ("nkernels.kernels.cuda.gemm", "splitk_reduce_kernel"),
             ("nkernels.kernels.cuda.gemm", "_column_sums_kernel"), ("nkernels.kernels.cuda.gemm", "_row_sums_kernel"),
             ("nkernels.kernels.cuda.loss", "_count_correct_kernel"), ("nkernels.kernels.cuda.loss", "_sce_forward_kernel"))


def pytest_configure(config):
    """Start recording (the simulator must be on)."""
    import importlib

    simulated.FakeCUDAKernel.__call__ = _recording_call
    for module, name in FACTORIES:
        _tag_factory(importlib.import_module(module), name)


@atexit.register
def _write():
    if _seen:
        with open(f"{os.environ.get('NKERNELS_LAUNCHES', 'launches')}.{os.getpid()}.pkl", "wb") as f:
            pickle.dump(_seen, f)
