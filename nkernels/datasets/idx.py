"""The IDX file format of MNIST and Fashion-MNIST: read and validate one file, plain or gzipped.

An IDX file is a 4-byte big-endian magic number (two zero bytes, a type code, the number of
dimensions), one big-endian int32 per dimension, then the values in C order, big-endian. MNIST's
images are type 0x08 (unsigned bytes) with 3 dimensions, magic number 2051 (0x00000803); its
labels have 1 dimension, magic number 2049 (0x00000801).
"""
from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

#: IDX type code -> NumPy dtype (big-endian, as the format stores values)
IDX_DTYPES: dict[int, np.dtype] = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: str) -> bytes:
    """The file's contents, decompressed when it is gzipped (told by its first bytes, not by its name:
    some downloads keep the ``.gz`` name on a file the browser already unpacked)."""
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: a damaged or incomplete gzip file ({exc}); download it again") from None


def describe_magic(magic: int) -> str:
    """An IDX magic number in words: ``2051 (unsigned bytes, 3 dimensions)``."""
    code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    kind = str(IDX_DTYPES[code]).lstrip(">|") if code in IDX_DTYPES else f"unknown type code 0x{code:02x}"
    return f"{magic} ({kind}, {ndim} dimension{'s' if ndim != 1 else ''})"


def read_idx(path: str, magic: int | None = None) -> np.ndarray:
    """The array stored in the IDX file at ``path`` (plain or gzipped), in native byte order.

    ValueError, naming the file and what was expected, when the header is not an IDX header, the
    magic number differs from ``magic`` (when given), or the data is shorter or longer than the
    dimensions in the header say.
    """
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path}: {len(data)} bytes, too short for an IDX header (a 4-byte magic number, then "
                         f"4 bytes per dimension)")
    found = int.from_bytes(data[:4], "big")
    code, ndim = data[2], data[3]
    if data[:2] != b"\x00\x00" or code not in IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file: its first 4 bytes are {data[:4].hex()}, expected two zero "
                         f"bytes, a type code ({', '.join(f'0x{c:02x}' for c in IDX_DTYPES)}) and the number of "
                         f"dimensions" + (f"; magic number {describe_magic(magic)}" if magic is not None else ""))
    if magic is not None and found != magic:
        raise ValueError(f"{path}: magic number {describe_magic(found)}, expected {describe_magic(magic)}; "
                         f"is it another of the dataset's files?")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: the header names {ndim} dimensions ({header} bytes) but the file holds "
                         f"{len(data)} bytes")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"{path}: the header says {' x '.join(map(str, shape))} values of {dtype.itemsize} byte(s) "
                         f"({expected:,} bytes after the header), the file holds {len(data) - header:,}; "
                         f"{'cut short: download it again' if len(data) - header < expected else 'extra bytes'}")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def find_file(folder: str, name: str) -> str | None:
    """``folder/name`` if it exists, else ``folder/name.gz`` if that does, else None."""
    for candidate in (name, name + ".gz"):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None
