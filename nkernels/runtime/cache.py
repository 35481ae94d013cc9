"""Where nkernels keeps generated code and Numba keeps compiled kernels, and clearing both."""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
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


# ---- clearing the caches (``nkernels cache clear``) ------------------------------------------------------------
#
# Numba writes a ``cache=True`` function's machine code beside its module (``__pycache__``), or into
# NUMBA_CACHE_DIR, or into its user-wide cache when the module's folder is not writable. Those files are
# made at run time, so no installer's record lists them: ``pip uninstall`` of a plugin leaves its package
# folder behind with only them inside, and that folder, now a namespace package, shadows a later
# (editable) install of the plugin. Numba offers no per-package cache location that the plugins could
# use through public API, so nkernels clears them on request instead.

NUMBA_CACHE_SUFFIXES = (".nbi", ".nbc")
_COMPILED_SUFFIXES = NUMBA_CACHE_SUFFIXES + (".pyc",)
_GENERATED_NAME = re.compile(r"^\w+_[0-9a-f]{20}\.")  # load_generated_module's file names


@dataclass(frozen=True)
class Removal:
    """One thing ``nkernels cache clear`` removes: what it is (``kind``), where, and how many files."""

    kind: str
    path: str
    files: int
    #: a single-module plugin's name: only its files in ``path`` (else every matching file there)
    module: str | None = None


def package_sources() -> list[tuple[str, str | None]]:
    """Where the code of nkernels and of every installed plugin lies, found without importing any
    plugin: ``(folder, None)`` for a package (the whole tree), ``(folder, module)`` for a
    single-module plugin (that module's files only)."""
    from importlib import metadata

    tops = {"nkernels"} | {ep.value.split(":")[0].split(".")[0].strip()
                           for ep in metadata.entry_points(group="nkernels")}
    sources: set[tuple[str, str | None]] = set()
    for top in tops:
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        if spec.submodule_search_locations:
            sources.update((os.path.abspath(p), None) for p in spec.submodule_search_locations)
        elif spec.origin and os.path.isfile(spec.origin):
            sources.add((os.path.dirname(os.path.abspath(spec.origin)), top))
    return sorted(sources, key=lambda source: (source[0], source[1] or ""))


def _numba_cache_roots() -> list[str]:
    """NUMBA_CACHE_DIR and Numba's user-wide cache folder: where Numba caches a module it cannot
    cache beside itself, in one subfolder per source folder."""
    import numba
    from numba.misc.appdirs import AppDirs

    roots = [numba.config.CACHE_DIR] if numba.config.CACHE_DIR else []
    return roots + [AppDirs(appname="numba", appauthor=False).user_cache_dir]


def _numba_subfolder(root: str, source_dir: str) -> str:
    """Numba's folder under ``root`` for the modules of ``source_dir`` (its ``get_suitable_cache_subpath``)."""
    source_dir = os.path.abspath(source_dir)
    digest = hashlib.sha1(source_dir.encode()).hexdigest()
    return os.path.join(root, f"{os.path.basename(source_dir)}_{digest}")


def _files(folder: str, keep) -> list[str]:
    """The files directly in ``folder`` whose names ``keep`` accepts (none if it does not exist)."""
    try:
        return [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if keep(n)
                and os.path.isfile(os.path.join(folder, n))]
    except OSError:
        return []


def numba_cache_removals(sources: list[tuple[str, str | None]] | None = None) -> list[Removal]:
    """The Numba cache files of the code in ``sources`` (default: :func:`package_sources`), one
    :class:`Removal` per cache folder that holds some: in-tree ``__pycache__`` folders, and the
    matching folders of NUMBA_CACHE_DIR and of Numba's user-wide cache."""
    roots = _numba_cache_roots()
    removals = []
    for top, module in package_sources() if sources is None else sources:
        folders = [top] if module else [here for here, _, _ in os.walk(top)
                                        if os.path.basename(here) != "__pycache__"]
        for here in folders:
            for folder in [os.path.join(here, "__pycache__")] + [_numba_subfolder(r, here) for r in roots]:
                found = _files(folder, _numba_file(module))
                if found:
                    removals.append(Removal("numba cache", folder, len(found), module))
    return removals


def _numba_file(module: str | None):
    """A test of file names: Numba's cache files (of ``module`` only, when given)."""
    return lambda name: name.endswith(NUMBA_CACHE_SUFFIXES) and (module is None or name.startswith(f"{module}."))


def _only_compiled(folder: str) -> bool:
    """Whether ``folder`` holds no file but compiled ones inside ``__pycache__`` folders, at least one
    of them Numba's: what pip leaves of an uninstalled package whose Numba cache lay beside it."""
    numba_files = 0
    for here, _, names in os.walk(folder):
        if not names:
            continue
        if os.path.basename(here) != "__pycache__" or not all(n.endswith(_COMPILED_SUFFIXES) for n in names):
            return False
        numba_files += sum(n.endswith(NUMBA_CACHE_SUFFIXES) for n in names)
    return numba_files > 0


def leftover_removals(path: list[str] | None = None) -> list[Removal]:
    """Package folders on ``path`` (default ``sys.path``) that hold nothing but compiled files, at least
    one of them Numba's. No source is left, so neither Python nor Numba reads those files again, and the
    folder, imported as a namespace package, would shadow a later install of the same name."""
    removals = []
    for entry in sys.path if path is None else path:
        entry = os.path.abspath(entry or os.curdir)
        try:
            children = sorted(os.scandir(entry), key=lambda e: e.name)
        except OSError:
            continue
        for child in children:
            if child.is_dir() and child.name != "__pycache__" and _only_compiled(child.path):
                count = sum(len(names) for _, _, names in os.walk(child.path))
                removals.append(Removal("leftover package folder", child.path, count))
    return removals


def _generated_file(name: str) -> bool:
    """Whether a file in the cache directory is a generated module or its compiled code."""
    return bool(_GENERATED_NAME.match(name))


def generated_removals() -> list[Removal]:
    """The generated modules in :func:`cache_dir` (compiled steps, CUDA GEMMs) and their compiled
    files, one :class:`Removal` per folder; other files there are left alone."""
    removals = []
    for here, _, _ in os.walk(cache_dir(), topdown=False):  # a __pycache__ before its parent
        found = _files(here, _generated_file)
        if found:
            removals.append(Removal("generated modules", here, len(found)))
    return removals


def clear(dry_run: bool = False) -> list[Removal]:
    """Remove the Numba cache files of nkernels and of its installed plugins, the leftover folders of
    uninstalled packages (see :func:`leftover_removals`) and nkernels' generated modules; return what
    was (with ``dry_run``: would be) removed. Everything removed is rebuilt on next use."""
    leftovers = leftover_removals()
    inside = tuple(removal.path + os.sep for removal in leftovers)
    removals = [r for r in numba_cache_removals() if not r.path.startswith(inside)] + leftovers + generated_removals()
    if dry_run:
        return removals
    for removal in removals:
        if removal.kind == "leftover package folder":
            shutil.rmtree(removal.path, ignore_errors=True)
            continue
        keep = _numba_file(removal.module) if removal.kind == "numba cache" else _generated_file
        for file in _files(removal.path, keep):
            os.remove(file)
        _remove_if_empty(removal.path)
    return removals


def _remove_if_empty(folder: str) -> None:
    try:
        os.rmdir(folder)
    except OSError:
        pass
