"""What the asv suite shares: the one place it reaches into nkernels' internals, the skip reasons, and
the allocation measurement.

asv runs this checkout's suite against every commit it measures (``asv continuous`` builds an
older commit and runs today's benchmarks on it). So an internal module is looked up here, in every
place it has lived, and a benchmark module never imports one itself. A benchmark whose plugin or
peer is missing raises NotImplementedError (asv's "skipped") from its ``setup``, with a message
that says why: not installed, or installed but failed to load (with the error).
"""
import importlib
import tracemalloc

#: internal modules the suite uses -> where they have lived, newest first
_INTERNAL = {
    "bench": ("nkernels.cli.bench", "nkernels.bench"),
    "threads": ("nkernels.runtime.threads", "nkernels.threads"),
}

#: peer module -> (its name, how to install it)
PEERS = {
    "torch": ("PyTorch", "pip install 'nkernels[bench]' (the pinned CPU build, torch==2.13.0)"),
    "jax": ("JAX", "pip install 'jax[cpu]'"),
}


def internal(key):
    """The nkernels module ``key`` of :data:`_INTERNAL`, from the first place it imports from."""
    for name in _INTERNAL[key]:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not (name == exc.name or name.startswith(f"{exc.name}.")):
                raise  # the module is there and one of its own imports is missing: a real error
    raise ImportError(f"none of {', '.join(_INTERNAL[key])} exists in this nkernels")


def bench():
    """nkernels' benchmark cases and timing functions (``nkernels bench``)."""
    return internal("bench")


def blas_single_threaded():
    """A context in which BLAS runs on one thread, as every compiled loop of nkernels runs it."""
    return internal("threads").blas_single_threaded()


def _import_error(name):
    """None when module ``name`` imports; else why not: not installed, or the error it failed with."""
    try:
        importlib.import_module(name)
    except Exception as exc:  # a broken install may raise anything at import
        if isinstance(exc, ModuleNotFoundError) and exc.name == name:
            return "not installed"
        return f"installed but failed to import ({type(exc).__name__}: {exc})"
    return None


def require_peer(name):
    """The peer module ``name`` (``"torch"`` or ``"jax"``); NotImplementedError naming why it is missing."""
    error = _import_error(name)
    if error is not None:
        label, install = PEERS[name]
        raise NotImplementedError(f"{label} is {error}: {install}")
    return importlib.import_module(name)


def require_registered(kind, name):
    """Skip unless the ``kind`` registry (``"schemes"``, ``"extractors"``, ...) has ``name``.

    The reason comes from nkernels' plugin records: the distribution that provides it is not
    installed, or it is installed but failed to load (its error), or NKERNELS_DISABLE_PLUGINS skips it.
    """
    from nkernels import plugins, registry

    if name in getattr(registry, kind):
        return
    hint = getattr(plugins, "missing_name_hint", lambda kind, name: "")(kind, name)
    raise NotImplementedError(hint or f"no {kind[:-1]} {name!r} is registered (is its plugin installed?)")


def require_plugin_module(kind, name, module):
    """The module ``module`` of the plugin that registers ``name`` in ``kind``; skip (why) if absent."""
    require_registered(kind, name)
    return importlib.import_module(module)


def _enable_numba_allocation_stats():
    """Switch on the Numba runtime's allocation counters (NUMBA_NRT_STATS=1 does it at import)."""
    from numba.core.runtime import _nrt_python

    if not _nrt_python.memsys_stats_enabled():
        _nrt_python.memsys_enable_stats()


def allocations(run):
    """What one call of ``run`` allocates: ``(peak_bytes, numba_allocations)``.

    ``peak_bytes`` is the peak of the memory allocated during the call and not yet freed, as
    tracemalloc traces it: Python objects, NumPy arrays and, since Numba's runtime allocates
    through CPython's raw allocator (numba 0.68 calls ``memsys_use_cpython_allocator``), the
    arrays compiled code allocates too, in Numba's worker threads as well. A workspace that
    doubles shows here. ``numba_allocations`` counts the allocations of Numba's runtime during
    the call (``rtsys.get_allocation_stats()``): compiled code that allocates more often shows
    there, even when the sizes stay the same.
    """
    from numba.core.runtime import rtsys

    _enable_numba_allocation_stats()
    before = rtsys.get_allocation_stats().alloc
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, rtsys.get_allocation_stats().alloc - before
