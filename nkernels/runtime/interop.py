"""Arrays from other libraries as nkernels input, without a copy: ``__cuda_array_interface__`` and DLPack.

A CUDA model (``model.to("cuda")``) takes CuPy arrays, PyTorch CUDA tensors and numba device
arrays as they are: they carry ``__cuda_array_interface__``, which :mod:`nkernels.runtime.devices`
reads. :func:`as_device_input` also takes arrays that speak only DLPack (JAX on the GPU, or any
``__dlpack__`` producer), and CPU tensors (PyTorch, JAX, ...) for a CPU model::

    out = model.forward(nk.interop.as_device_input(jax_array))   # a numba device array
    torch.as_tensor(out, device="cuda")                          # back to PyTorch, no copy

Under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) "device" memory is host memory, so the
same calls build simulated device arrays over the producer's memory: that is how CI tests them.

Weights travel to and from PyTorch models of the same architecture with
:func:`to_torch_state_dict` and :func:`from_torch_state_dict` (:mod:`nkernels.runtime.torch_state`
holds the name mapping of every built-in layer).
"""
from __future__ import annotations

import ctypes
import sys
from typing import Any

import numpy as np

from . import devices
from .torch_state import from_torch_state_dict, to_torch_state_dict

#: DLPack device types (dlpack.h) that nkernels reads from
DL_CPU, DL_CUDA, DL_CUDA_HOST, DL_CUDA_MANAGED = 1, 2, 3, 13
#: DLPack type codes (dlpack.h) and the NumPy kinds they map to
_DL_KINDS = {0: "i", 1: "u", 2: "f", 5: "c", 6: "b"}
_DL_CODE_NAMES = {3: "opaque handle", 4: "bfloat"}


class DLDevice(ctypes.Structure):
    """``DLDevice`` of dlpack.h."""

    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    """``DLDataType`` of dlpack.h."""

    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    """``DLTensor`` of dlpack.h (``strides`` in elements, NULL for C order)."""

    _fields_ = [("data", ctypes.c_void_p), ("device", DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class DLManagedTensor(ctypes.Structure):
    """``DLManagedTensor`` of dlpack.h: the tensor, its producer's context and deleter."""


DLManagedTensor._fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p),
                            ("deleter", ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensor)))]

_CAPSULE_NAME, _USED_CAPSULE_NAME = b"dltensor", b"used_dltensor"  # module constants: the C API keeps the pointer
_capsule_is_valid = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_IsValid", ctypes.pythonapi))
_capsule_get_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi))
_capsule_set_name = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_SetName", ctypes.pythonapi))


class _DLPackOwner:
    """Owns a consumed DLManagedTensor and calls its producer's deleter when the last view goes."""

    def __init__(self, managed: Any):  # a ctypes.POINTER(DLManagedTensor)
        self.managed = managed

    def __del__(self) -> None:
        managed, self.managed = self.managed, None
        if managed and managed.contents.deleter:
            managed.contents.deleter(managed)


#: whether numba's CUDA simulator stands in for the GPU (``NUMBA_ENABLE_CUDASIM=1``)
simulated = devices.simulator


def _dtype_of(dl: DLDataType) -> np.dtype:
    kind = _DL_KINDS.get(dl.code)
    if kind is None or dl.lanes != 1 or dl.bits % 8:
        what = _DL_CODE_NAMES.get(dl.code, f"type code {dl.code}")
        raise TypeError(f"DLPack tensor of {what} with {dl.bits} bits x {dl.lanes} lanes has no NumPy dtype; "
                        f"nkernels takes float32 or float64 arrays")
    return np.dtype("?" if kind == "b" else f"{kind}{dl.bits // 8}")


def read_dlpack_capsule(capsule: Any) -> tuple[dict[str, Any], tuple[int, int], _DLPackOwner]:
    """Consume a ``"dltensor"`` capsule: ``(cuda-array-interface dict, (device type, id), owner)``.

    The capsule is renamed ``"used_dltensor"`` as the DLPack protocol asks, and ``owner`` calls
    the producer's deleter when it is garbage-collected: keep it alive as long as the memory is used.
    """
    if not _capsule_is_valid(capsule, _CAPSULE_NAME):
        raise ValueError("expected an unused DLPack capsule named 'dltensor' (was it consumed already?)")
    managed = ctypes.cast(_capsule_get_pointer(capsule, _CAPSULE_NAME), ctypes.POINTER(DLManagedTensor))
    _capsule_set_name(capsule, _USED_CAPSULE_NAME)
    owner = _DLPackOwner(managed)
    t = managed.contents.dl_tensor
    dtype = _dtype_of(t.dtype)
    shape = tuple(int(t.shape[i]) for i in range(t.ndim))
    strides = None
    if t.strides and t.ndim:
        strides = tuple(int(t.strides[i]) * dtype.itemsize for i in range(t.ndim))
        if strides == _c_strides(shape, dtype.itemsize):
            strides = None
    interface = {"shape": shape, "strides": strides, "typestr": dtype.str,
                 "data": ((t.data or 0) + int(t.byte_offset), False), "version": 3, "stream": None}
    return interface, (int(t.device.device_type), int(t.device.device_id)), owner


def _c_strides(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    strides, step = [], itemsize
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def _simulated_device_array(interface: dict[str, Any], owner: Any) -> Any:
    """A simulated device array over the host memory an interface describes (the simulator's GPU)."""
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    dtype = np.dtype(interface["typestr"])
    shape = tuple(interface["shape"])
    strides = tuple(interface.get("strides") or _c_strides(shape, dtype.itemsize))
    if any(s < 0 for s in strides):
        raise ValueError(f"arrays with negative strides are not supported, got strides {strides}")
    if 0 in shape:
        return FakeCUDAArray(np.empty(shape, dtype))
    extent = sum((n - 1) * s for n, s in zip(shape, strides)) + dtype.itemsize
    buffer = (ctypes.c_char * extent).from_address(interface["data"][0])
    buffer._nkernels_owner = owner  # the producer's memory lives as long as the array built on it
    view = np.ndarray(shape, dtype, buffer=buffer, strides=strides)
    view.flags.writeable = not interface["data"][1]
    return FakeCUDAArray(view)


def device_array_from_interface(interface: dict[str, Any], owner: Any = None) -> Any:
    """A numba device array viewing the memory that a ``__cuda_array_interface__`` dict describes (no copy).

    ``owner`` is kept alive as long as the array. Under the simulator the pointer is host memory
    and the result a simulated device array.
    """
    if simulated():
        return _simulated_device_array(interface, owner)
    from numba import cuda

    return cuda.from_cuda_array_interface(interface, owner=owner, sync=True)


def from_dlpack(obj: Any) -> Any:
    """An array with ``__dlpack__`` (PyTorch, JAX, CuPy ...) without a copy.

    Host memory gives a NumPy array (``np.from_dlpack``); CUDA memory a numba device array,
    synchronized with the legacy default stream that nkernels' kernels run on. Other devices
    are a TypeError naming them.
    """
    if not hasattr(obj, "__dlpack__") or not hasattr(obj, "__dlpack_device__"):
        raise TypeError(f"{type(obj).__name__} does not implement the DLPack protocol (__dlpack__)")
    device_type, device_id = (int(v) for v in obj.__dlpack_device__())
    if device_type == DL_CPU:
        return np.from_dlpack(obj)
    if device_type not in (DL_CUDA, DL_CUDA_MANAGED):
        raise TypeError(f"{type(obj).__name__} lives on DLPack device type {device_type}, which nkernels cannot "
                        f"read; it takes CPU ({DL_CPU}) and CUDA ({DL_CUDA}) memory")
    devices.require_cuda()
    if simulated():
        stream = None
    else:
        from numba import config, cuda

        current = cuda.get_current_device().id
        if device_id != current:
            raise ValueError(f"the array is on CUDA device {device_id} but nkernels uses device {current}; "
                             f"select it with numba.cuda.select_device({device_id}) first")
        stream = 2 if config.CUDA_PER_THREAD_DEFAULT_STREAM else 1  # DLPack's codes for the default streams
    interface, _, owner = read_dlpack_capsule(obj.__dlpack__(stream=stream))
    return device_array_from_interface(interface, owner)


def as_device_input(obj: Any) -> Any:
    """``obj`` in a form a model's ``forward`` takes, without copying its memory.

    - NumPy arrays and numba device arrays: as they are;
    - ``__cuda_array_interface__`` (CuPy, PyTorch CUDA tensors): a numba device array view;
    - ``__dlpack__`` (JAX, PyTorch CPU tensors ...): see :func:`from_dlpack`;
    - anything else (lists, ...): ``np.asarray(obj)``.
    """
    if isinstance(obj, np.ndarray):
        return obj
    cuda_module = sys.modules.get("numba.cuda")
    if cuda_module is not None and cuda_module.devicearray.is_cuda_ndarray(obj):
        return obj
    interface = getattr(obj, "__cuda_array_interface__", None)
    if interface is not None:
        return device_array_from_interface(interface, owner=obj) if simulated() else devices.as_device_array(obj)
    if hasattr(obj, "__dlpack__"):
        return from_dlpack(obj)
    return np.asarray(obj)


__all__ = ["to_torch_state_dict", "from_torch_state_dict", "as_device_input", "from_dlpack", "device_array_from_interface", "read_dlpack_capsule", "simulated",
           "DLManagedTensor", "DLTensor", "DLDevice", "DLDataType"]
