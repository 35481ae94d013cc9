"""Where nkernels keeps generated code and Numba keeps compiled kernels."""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from types import ModuleType


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


def load_generated_module(source: str, subdir: str, prefix: str) -> ModuleType:
    """Import generated ``source`` from a file in ``cache_dir()/subdir`` named by its content hash.

    The file is written once (atomically) and left alone while it holds exactly ``source``:
    Numba's on-disk cache is keyed on the file and its timestamp, so ``cache=True`` in generated
    code then holds across runs. A file at that path with other contents (cut short by a full
    disk, edited by hand) is never imported: it is written anew, which also retires Numba's
    cache entries of the old one.
    """
    name = f"{prefix}_{hashlib.sha256(source.encode()).hexdigest()[:20]}"
    if name in sys.modules:
        return sys.modules[name]
    directory = os.path.join(cache_dir(), subdir)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name + ".py")
    if _read(path) != source:  # missing, or not what the name promises (truncated, edited): write it anew
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(source)
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the generated module {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


def _read(path: str) -> str | None:
    """The text of the file at ``path``, or None when it cannot be read."""
    try:
        with open(path) as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None
