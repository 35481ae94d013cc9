"""Where nkernels keeps generated code and Numba keeps compiled kernels."""
from __future__ import annotations

import os


def cache_dir() -> str:
    """nkernels' cache directory: ``NKERNELS_CACHE_DIR``, else ``$XDG_CACHE_HOME/nkernels``, else ``~/.cache/nkernels``."""
    explicit = os.environ.get("NKERNELS_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "nkernels")


def numba_cache_dir() -> str:
    """Where Numba writes ``cache=True`` results: ``NUMBA_CACHE_DIR``, else ``__pycache__`` beside each module."""
    return os.environ.get("NUMBA_CACHE_DIR") or "__pycache__ beside each kernel module"
