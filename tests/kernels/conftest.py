"""Shared setup of the kernel tests (tests/kernels): the ``needs_jit`` marker.

The kernel coverage run (``scripts/kernel_coverage.py``) sets ``NUMBA_DISABLE_JIT=1``, so that every
``@njit`` kernel runs as plain Python, where coverage sees its lines. A test marked
``@pytest.mark.needs_jit("why")`` is skipped there, with its reason in the report: it checks what only
the compiled code does (Numba's typing of scalars, ``.py_func``, integer wrap-around), or it runs sizes
that take minutes as plain Python (the statistical tests of the random generator). In the default suite
the marker changes nothing.

This file imports no numba: ``cuda/conftest.py`` may still have to switch the simulator off first.
"""
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    from numba import config as numba_config

    if not numba_config.DISABLE_JIT:
        return
    for item in items:
        if HERE not in item.path.parents:  # the hook sees the whole session's items
            continue
        marker = item.get_closest_marker("needs_jit")
        if marker is not None:
            reason = marker.args[0] if marker.args else marker.kwargs.get("reason", "")
            if not reason:
                raise pytest.UsageError(f"{item.nodeid}: needs_jit takes a reason, the one the skip reports")
            item.add_marker(pytest.mark.skip(reason=f"NUMBA_DISABLE_JIT=1: {reason}"))
        # As plain Python the kernels' scalar arithmetic does what it does compiled, but NumPy warns: the uint64
        # arithmetic of the counter-based generator wraps (nkernels/kernels/cpu/random.py), and the pooling
        # kernels let NaNs propagate through arithmetic to find them (nkernels/kernels/cpu/pool.py).
        item.add_marker(pytest.mark.filterwarnings("ignore:overflow encountered in scalar:RuntimeWarning"))
        item.add_marker(pytest.mark.filterwarnings("ignore:invalid value encountered in scalar:RuntimeWarning"))



@pytest.fixture
def on_one_thread():
    """``run(fn, *args)``: ``fn(*args)`` with Numba's thread count set to 1 (restored after), to compare a
    kernel's results on one thread with those on all of them."""
    import numba

    def run(fn, *args):
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            return fn(*args)
        finally:
            numba.set_num_threads(threads)
    return run
