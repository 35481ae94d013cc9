"""Numba cache entries of nkernels' code that go stale with any code they compiled in.

Numba stamps a ``cache=True`` entry with the content hash of its own source file only. A kernel
compiles the kernels it calls into its own machine code, so after an upgrade of nkernels (or an
edit of one kernel module) a plugin's fused run, a compiled trainer's generated step or a kernel
calling :mod:`~nkernels.kernels.cpu.blas` would load the machine code of the old callee from its
unchanged file's entry, silently. :func:`stamp_numba_caches` puts locators in front of Numba's
(and numba-cuda's) own that serve the files of nkernels, of its installed plugins and of its
generated modules: the same cache folders, with a stamp that adds :func:`code_fingerprint`, the
hash of every source file of nkernels and of those plugins. Entries written under another
fingerprint no longer match; they are compiled anew and overwritten in place, as Numba does for
an edited file. Other code's entries are left to Numba's locators.
"""
from __future__ import annotations

import functools
import hashlib
import os
from typing import Any

from .cache import cache_dir, package_sources

__all__ = ["SERVED_FOLDERS_VARIABLE", "code_fingerprint", "code_paths", "serve_folder", "serves", "source_digest",
           "stamp_numba_caches"]

#: the environment variable listing folders outside nkernels and its plugins whose cache entries carry the
#: fingerprint too (separated by ``os.pathsep``): :func:`serve_folder` adds to it, so that the processes it
#: starts afterwards stamp those entries alike (one that did not would compile them anew and overwrite them)
SERVED_FOLDERS_VARIABLE = "NKERNELS_SERVED_FOLDERS"


@functools.lru_cache(maxsize=None)
def code_paths() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(folders, files)``: the code of nkernels and of every installed plugin (a package's folder, a
    single-module plugin's file), found once a process."""
    folders, files = [], []
    for top, module in package_sources():
        if module:
            files.append(os.path.join(top, module + ".py"))
        else:
            folders.append(top)
    return tuple(folders), tuple(files)


def serve_folder(path: str) -> None:
    """Stamp the cache entries of ``@njit(cache=True)`` functions in the files under ``path`` with the
    fingerprint as well: code outside nkernels and its plugins that compiles nkernels' code into its
    own (a test suite's helpers, a project's kernels) is then compiled anew when that code changes,
    rather than loading its old machine code from its own unchanged file's entry. Call it before the
    modules defining those functions are imported, since Numba picks a function's cache when it
    decorates it (nkernels' own ``tests/conftest.py`` does, for its tests); the processes started
    afterwards inherit it (:data:`SERVED_FOLDERS_VARIABLE`)."""
    folder = os.path.abspath(path)
    if not os.path.isdir(folder):
        raise ValueError(f"serve_folder takes a folder of Python files, got {path!r}")
    served = _served_folders()
    if folder not in served:
        os.environ[SERVED_FOLDERS_VARIABLE] = os.pathsep.join([*served, folder])
    stamp_numba_caches()


def _served_folders() -> tuple[str, ...]:
    return tuple(folder for folder in os.environ.get(SERVED_FOLDERS_VARIABLE, "").split(os.pathsep) if folder)


def serves(py_file: str) -> bool:
    """Whether cache entries of functions in ``py_file`` carry the fingerprint: code of nkernels, of a
    plugin (:func:`code_paths`), of a generated module (in :func:`~nkernels.runtime.cache.cache_dir`) or
    of a folder given to :func:`serve_folder`."""
    folders, files = code_paths()
    path = os.path.abspath(py_file)
    generated = os.path.abspath(cache_dir())
    return path in files or any(path.startswith(folder + os.sep)
                                for folder in (*folders, generated, *_served_folders()))


def _source_files() -> list[str]:
    """Every ``.py`` file of :func:`code_paths`, sorted. Generated modules are left out: each is
    stamped by its own content already, and no other code imports them."""
    folders, files = code_paths()
    found = list(files)
    for folder in folders:
        for here, dirs, names in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            found.extend(os.path.join(here, n) for n in names if n.endswith(".py"))
    return sorted(found)


def source_digest(paths, seed: str = "") -> str:
    """A digest of ``seed`` and the paths and contents of the files at ``paths`` (in sorted order; a file
    that cannot be read counts as empty), 20 hex digits."""
    digest = hashlib.sha256(seed.encode())
    for path in sorted(set(paths)):
        digest.update(path.encode())
        try:
            with open(path, "rb") as f:
                digest.update(hashlib.sha256(f.read()).digest())
        except OSError:
            digest.update(b"-")
    return digest.hexdigest()[:20]


@functools.lru_cache(maxsize=None)
def code_fingerprint() -> str:
    """The :func:`source_digest` of every source file of nkernels and its plugins, computed once a process."""
    return source_digest(_source_files())


def _stamped(locator_class: type) -> type:
    """A subclass of one of Numba's locators that serves only what :func:`serves` accepts and adds the fingerprint
    to the stamp; the cache folder and file names stay the base class's."""

    def from_function(cls, py_func, py_file):
        if not serves(py_file):
            return None
        return super(stamped, cls).from_function(py_func, py_file)

    def get_source_stamp(self):
        return super(stamped, self).get_source_stamp(), code_fingerprint()

    stamped = type("Fingerprinted" + locator_class.__name__.lstrip("_"), (locator_class,), {
        "from_function": classmethod(from_function), "get_source_stamp": get_source_stamp,
        "__doc__": f"{locator_class.__name__} for nkernels' code, stamped with the code fingerprint."})
    return stamped


def stamp_numba_caches(cache_impl: Any = None) -> None:
    """Put fingerprinted locators before the ones of ``cache_impl`` (a Numba ``CacheImpl`` class; default
    Numba's CPU one). Idempotent; a CacheImpl of another layout is left as it is."""
    if cache_impl is None:
        from numba.core import caching

        cache_impl = caching.CacheImpl
    classes = getattr(cache_impl, "_locator_classes", None)
    if not isinstance(classes, list) or getattr(cache_impl, "_nkernels_stamped", False):
        return
    cache_impl._locator_classes = [_stamped(c) for c in classes] + classes
    cache_impl._nkernels_stamped = True
