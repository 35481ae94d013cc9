"""MNIST and Fashion-MNIST from the four IDX files they are distributed as, in a local folder."""
from __future__ import annotations

import os

import numpy as np

from .idx import find_file, read_idx

#: the magic numbers of the image files (unsigned bytes, 3 dimensions) and label files (1 dimension)
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
IMAGE_SIDE = 28
N_CLASSES = 10
#: the four files of each dataset, as distributed (each also found with ``.gz`` appended)
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
#: dataset name -> (its title, where its files are downloaded from)
SOURCES = {
    "mnist": ("MNIST", "https://ossci-datasets.s3.amazonaws.com/mnist/ (a mirror of yann.lecun.com/exdb/mnist)"),
    "fashion-mnist": ("Fashion-MNIST", "https://github.com/zalandoresearch/fashion-mnist (folder data/fashion)"),
}


def _where_to_get(name: str) -> str:
    title, url = SOURCES[name]
    return (f"download {title}'s four files ({', '.join(f + '.gz' for f in FILES)}) from {url} and put them, "
            f"gzipped as downloaded or unpacked, in one folder")


def _folder(name: str, path: str | os.PathLike | None) -> str:
    if path is None:
        raise ValueError(f"load({name!r}) needs path=DIR (on the command line --data-path DIR): {_where_to_get(name)}")
    folder = os.path.expanduser(os.fspath(path))
    if not os.path.isdir(folder):
        problem = "is a file, not a folder" if os.path.exists(folder) else "does not exist"
        raise FileNotFoundError(f"{name} folder {folder} {problem}: {_where_to_get(name)}")
    return folder


def _split(name: str, folder: str, images_file: str, labels_file: str, flat: bool) -> tuple[np.ndarray, np.ndarray]:
    """One split's images as float32 in [0, 1] and labels as int64, checked against each other."""
    paths = []
    for file in (images_file, labels_file):
        path = find_file(folder, file)
        if path is None:
            raise FileNotFoundError(f"{folder} has no {file} (nor {file}.gz): {_where_to_get(name)}")
        paths.append(path)
    images_path, labels_path = paths
    images = read_idx(images_path, IMAGES_MAGIC)
    if images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise ValueError(f"{images_path}: images of {images.shape[1]}x{images.shape[2]} pixels, expected "
                         f"{IMAGE_SIDE}x{IMAGE_SIDE}")
    labels = read_idx(labels_path, LABELS_MAGIC)
    if len(labels) != len(images):
        raise ValueError(f"{labels_path} holds {len(labels):,} labels but {images_path} holds {len(images):,} "
                         f"images; the two files must come from the same split of the same dataset")
    if len(labels) and labels.max() >= N_CLASSES:
        bad = int(np.argmax(labels >= N_CLASSES))
        raise ValueError(f"{labels_path}: label {labels[bad]} at index {bad}, expected classes 0-{N_CLASSES - 1}")
    shape = (len(images), IMAGE_SIDE * IMAGE_SIDE) if flat else (len(images), 1, IMAGE_SIDE, IMAGE_SIDE)
    X = images.reshape(shape).astype(np.float32)
    X /= 255.0
    return X, labels.astype(np.int64)


def _load_idx_dataset(name: str, path: str | os.PathLike | None, flat: bool = True
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X_train, y_train, X_test, y_test)`` of ``name`` (a key of :data:`SOURCES`) from the IDX files in ``path``."""
    folder = _folder(name, path)
    X_train, y_train = _split(name, folder, FILES[0], FILES[1], flat)
    X_test, y_test = _split(name, folder, FILES[2], FILES[3], flat)
    return X_train, y_train, X_test, y_test


def load_mnist(path: str | os.PathLike | None = None, flat: bool = True
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST's handwritten digits from its IDX files in the folder ``path``, plain or gzipped.

    Returns ``(X_train, y_train, X_test, y_test)``, the published 60,000/10,000 split: X as float32
    in [0, 1], (N, 784) when ``flat`` and (N, 1, 28, 28) images otherwise; y as int64 labels 0-9.
    The folder holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each as it is or with ``.gz``.
    Every file is checked (magic number, 28x28 images, as many values as its header says, as many
    labels as images, labels 0-9); a ValueError names the file and what was expected, a
    FileNotFoundError what to download and where to put it. Nothing is downloaded.
    """
    return _load_idx_dataset("mnist", path, flat)


def load_fashion_mnist(path: str | os.PathLike | None = None, flat: bool = True
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST (Zalando's 28x28 clothing images, 10 classes) from its IDX files in ``path``.

    The same file names, format, checks and return values as :func:`load_mnist`.
    """
    return _load_idx_dataset("fashion-mnist", path, flat)
