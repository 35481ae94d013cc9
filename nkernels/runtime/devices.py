"""Devices: where arrays live (``"cpu"`` for NumPy, ``"cuda"`` for GPU device arrays) and moving them.

Everything CUDA is imported on first use, so ``import nkernels`` never touches numba.cuda. Under
``NUMBA_ENABLE_CUDASIM=1`` the CUDA device is Numba's simulator (device arrays live in host
memory and kernels run in Python): the same code paths, slowly, which is how CI tests them.
"""
from __future__ import annotations

import ctypes
import math
import sys
from typing import Any

import numpy as np

from ..errors import DeviceUnavailableError

DEVICES = ("cpu", "cuda")


def check_device(device: Any) -> str:
    """``device`` as ``"cpu"`` or ``"cuda"``; a ValueError for anything else."""
    if device not in DEVICES:
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return device


def simulator() -> bool:
    """Whether Numba's CUDA simulator stands in for the GPU (``NUMBA_ENABLE_CUDASIM=1``)."""
    from numba import config

    return bool(getattr(config, "ENABLE_CUDASIM", 0))


def cuda_status() -> tuple[bool, str]:
    """Whether a CUDA device is usable, and a one-line reason (the GPU's name when it is)."""
    try:
        from numba import cuda
    except Exception as exc:  # numba-cuda missing or broken
        return False, (f"numba.cuda cannot be imported ({exc}); install the CUDA extra: "
                       f'pip install "nkernels[cuda]"')
    try:
        if cuda.is_available():
            if simulator():
                return True, "the Numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1): correct but slow"
            name = cuda.get_current_device().name
            return True, name.decode() if isinstance(name, bytes) else str(name)
        return False, "no CUDA driver or GPU found (numba.cuda.is_available() is False)"
    except Exception as exc:
        return False, f"CUDA initialisation failed: {exc}"


def require_cuda() -> None:
    """Raise a DeviceUnavailableError that says why, unless a CUDA device is usable."""
    usable, reason = cuda_status()
    if not usable:
        raise DeviceUnavailableError(f"device 'cuda' is not usable: {reason}. Use device='cpu', or run "
                                     f"`nkernels info` for details")


def is_device_array(a: Any) -> bool:
    """True for a GPU array: a numba device array or any object with ``__cuda_array_interface__``."""
    if isinstance(a, np.ndarray):
        return False
    if hasattr(a, "__cuda_array_interface__"):
        return True
    cuda = sys.modules.get("numba.cuda")  # no device array can exist before numba.cuda is imported
    return cuda is not None and cuda.devicearray.is_cuda_ndarray(a)


def device_of(a: Any) -> str:
    """``"cuda"`` for a GPU array, ``"cpu"`` otherwise."""
    return "cuda" if is_device_array(a) else "cpu"


def as_device_array(a: Any, what: str = "array") -> Any:
    """``a`` as a numba device array, without a copy.

    Accepts numba device arrays (returned as they are) and any object with
    ``__cuda_array_interface__`` (CuPy arrays, PyTorch CUDA tensors), viewed through
    ``cuda.as_cuda_array``. A NumPy array or anything else is a TypeError naming ``what``: the
    CUDA kernels write their outputs in place on the device, and a silent host round trip would
    hide that (:func:`to_device` copies a host array over).
    """
    if isinstance(a, np.ndarray):
        raise TypeError(f"{what} is a NumPy array; the CUDA kernels take device arrays "
                        f"(numba.cuda.to_device(...), CuPy, PyTorch CUDA tensors)")
    from numba import cuda

    if cuda.devicearray.is_cuda_ndarray(a):
        return a
    if hasattr(a, "__cuda_array_interface__"):
        return cuda.as_cuda_array(a)
    raise TypeError(f"{what} must be a device array (with __cuda_array_interface__), got {type(a).__name__}")


def to_device(a: Any) -> Any:
    """``a`` on the GPU: a NumPy array is copied over; a GPU array is returned without a copy."""
    if is_device_array(a):
        return as_device_array(a)
    from numba import cuda

    return cuda.to_device(np.ascontiguousarray(a))


def to_host(a: Any) -> np.ndarray:
    """``a`` as a NumPy array: a GPU array is copied back; a NumPy array is returned as it is."""
    if is_device_array(a):
        return as_device_array(a).copy_to_host()
    return np.asarray(a)


def move(a: Any, device: str) -> Any:
    """``a`` on ``device`` (a copy only when it is elsewhere)."""
    return to_device(a) if device == "cuda" else to_host(a)


#: host arrays of at least :data:`ALIGN_MIN_BYTES` start on a multiple of this many bytes: one AVX-512
#: vector, one cache line. NumPy's own start 16 bytes past one (large ones 16 bytes past a page), so every
#: 64-byte load or store of a row spans two lines: one thread's LSTM(16->128) step ran 2.9 ms on NumPy's
#: arrays against 2.66 ms on aligned ones.
ALIGNMENT = 64
#: smaller host arrays are NumPy's own: the aligned allocation costs ~1.6 µs more, which is more than a
#: kernel loses on an array this small
ALIGN_MIN_BYTES = 1 << 14


def _host_empty(shape: Any, dtype: Any, zeroed: bool = False) -> np.ndarray:
    """``np.empty(shape, dtype)`` (``np.zeros`` when ``zeroed``), starting on a multiple of
    :data:`ALIGNMENT` bytes when it is large. A trainer allocates a hundred or more of these on its
    first run, so each step here is the quick one: ~1.5 µs an array where ``np.ndim`` for the shape,
    ``__array_interface__`` for the address and a ``fill`` for the zeros took ~4.5 µs."""
    dtype = np.dtype(dtype)
    if isinstance(shape, (tuple, list)):
        shape = tuple(map(int, shape))
    else:
        shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
    nbytes = math.prod(shape) * dtype.itemsize
    allocate = np.zeros if zeroed else np.empty
    if nbytes < ALIGN_MIN_BYTES:
        return allocate(shape, dtype)
    raw = allocate(nbytes + ALIGNMENT, np.uint8)
    address = ctypes.addressof(ctypes.c_char.from_buffer(raw.data))
    return np.ndarray(shape, dtype, raw, -address % ALIGNMENT)


def empty(shape: Any, dtype: Any, device: str = "cpu") -> Any:
    """An uninitialized array on ``device`` (on the host, a large one starts on a cache line:
    :data:`ALIGNMENT`)."""
    if device == "cpu":
        return _host_empty(shape, dtype)
    from numba import cuda

    return cuda.device_array(shape, dtype=np.dtype(dtype))


def zeros(shape: Any, dtype: Any, device: str = "cpu") -> Any:
    """An array of zeros on ``device`` (on the host, aligned as :func:`empty`'s)."""
    if device == "cpu":
        return _host_empty(shape, dtype, zeroed=True)
    return to_device(np.zeros(shape, dtype))


def copy(a: Any) -> Any:
    """A copy of ``a`` on the same device."""
    if is_device_array(a):
        a = as_device_array(a)
        out = empty(a.shape, a.dtype, "cuda")
        out.copy_to_device(a)
        return out
    return np.array(a, copy=True)


def assign(dst: Any, src: Any) -> None:
    """Copy the values of ``src`` (any device) into ``dst`` in place."""
    if is_device_array(dst):
        dst = as_device_array(dst)
        dst.copy_to_device(src if is_device_array(src) else np.ascontiguousarray(src, dtype=dst.dtype))
    else:
        dst[...] = to_host(src)


def synchronize(device: str) -> None:
    """Wait for the device's queued work (a no-op on the CPU); for timing."""
    if device == "cuda":
        from numba import cuda

        cuda.synchronize()


def flat_view(a: Any) -> Any:
    """A 1-D view of a C-contiguous array on either device (no copy; a 1-D array as it is)."""
    return a if a.ndim == 1 else a.reshape(a.size)
