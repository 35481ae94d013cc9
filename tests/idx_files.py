"""Small MNIST-format folders for the tests: IDX files written here, plain or gzipped."""
import gzip

import numpy as np

from nkernels.datasets.mnist import FILES


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """``array`` (as unsigned bytes) in the IDX format; ``magic`` overrides the header's magic number."""
    magic = (0x08 << 8 | array.ndim) if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write(folder, name, payload: bytes, gz: bool = False):
    """Write ``payload`` to ``folder/name`` (``name.gz``, compressed, with ``gz``); the path."""
    path = folder / (name + ".gz" if gz else name)
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def write_mnist_folder(folder, n_train: int = 12, test_labels=(9, 0, 3, 3, 7)):
    """An MNIST folder of random images: the training files gzipped, the test files plain. Returns
    ``{"train": (images, labels), "test": (images, labels)}`` as written (uint8 images, int labels)."""
    rng = np.random.default_rng(0)
    arrays = {"train": (rng.integers(0, 256, (n_train, 28, 28)), np.arange(n_train) % 10),
              "test": (rng.integers(0, 256, (len(test_labels), 28, 28)), np.array(test_labels))}
    for (split, (images, labels)), (images_file, labels_file) in zip(arrays.items(), [FILES[:2], FILES[2:]]):
        write(folder, images_file, idx_bytes(images), gz=split == "train")
        write(folder, labels_file, idx_bytes(labels), gz=split == "train")
    return arrays
