"""Datasets made once and read back: ``.npz`` files under ``<nkernels cache dir>/datasets``.

Reading a cached split costs milliseconds where making it again costs seconds (importing
scikit-learn for the digits, running the ``mnist1d`` generator). Files are read without pickle,
written atomically, and a damaged file or one of other shapes is simply made again.
"""
from __future__ import annotations

import os
import tempfile
import warnings
import zipfile

import numpy as np

#: the arrays of a cached split
SPLIT = ("X_train", "y_train", "X_test", "y_test")


def dataset_path(name: str) -> str:
    """The cache file ``name`` (a file name that says what made it: versions, seeds, sizes)."""
    from ..runtime.cache import cache_dir

    return os.path.join(cache_dir(), "datasets", name)


def read_split(path: str, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray] | None:
    """The cached arrays of ``shapes`` (name -> shape), or None when the file is missing, damaged or
    holds other shapes (it is then made and written again)."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in shapes}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if any(arrays[name].shape != tuple(shape) for name, shape in shapes.items()):
        return None
    return arrays


def write_split(path: str, arrays: dict[str, np.ndarray], what: str) -> None:
    """Save ``arrays`` atomically (a reader never sees half a file); a cache that cannot be written only
    warns, naming ``what`` will be made again next time."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)  # type: ignore[arg-type]  # the stub reads the names as its allow_pickle
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        warnings.warn(f"could not cache {what} in {path} ({exc}); it will be made again next time", stacklevel=3)
