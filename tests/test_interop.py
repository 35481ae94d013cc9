"""Zero-copy input from other libraries: __cuda_array_interface__ and DLPack (nkernels.runtime.interop).

Under the CUDA simulator (CI) "device" memory is host memory, so a producer of GPU arrays is
simulated by objects that describe NumPy memory as CUDA memory, exactly as CuPy and PyTorch
describe theirs. With ``NKERNELS_REAL_GPU=1`` the last test uses real PyTorch CUDA tensors.
"""
import ctypes
import gc
import os

import numpy as np
import pytest

import nkernels as nk
from nkernels.runtime import devices, interop

pytestmark = pytest.mark.cuda
L = nk.layers
REAL_GPU = os.environ.get("NKERNELS_REAL_GPU") == "1"

_capsule_new = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)(
    ("PyCapsule_New", ctypes.pythonapi))
_NAME = b"dltensor"
#: the fake producers below hand out host memory as "device" memory, which only the simulator reads
host_memory_as_device = pytest.mark.skipif(
    not devices.simulator(), reason="a fake producer of host memory; on a real GPU, "
    "test_pytorch_cuda_tensors_through_both_protocols runs real CUDA tensors through both protocols")


class CuPyLike:
    """A GPU array as CuPy shows it: only ``__cuda_array_interface__`` (version 3)."""

    def __init__(self, array, readonly=False):
        self.array, self.readonly = array, readonly

    @property
    def __cuda_array_interface__(self):
        a = self.array
        return {"shape": a.shape, "strides": None if a.flags.c_contiguous else a.strides, "typestr": a.dtype.str,
                "data": (a.ctypes.data, self.readonly), "version": 3, "stream": None}


class DLPackProducer:
    """A DLPack producer (as JAX on a GPU): a ``DLManagedTensor`` over ``array``'s memory, reported on
    ``device_type`` (CUDA by default), with a deleter that counts its calls."""

    def __init__(self, array, device_type=interop.DL_CUDA, code=2, offset=0):
        self.array, self.device_type, self.code, self.offset = array, device_type, code, offset
        self.deleted, self.streams = 0, []
        ndim = array.ndim
        self._shape = (ctypes.c_int64 * ndim)(*array.shape)
        self._strides = (ctypes.c_int64 * ndim)(*(s // array.itemsize for s in array.strides))
        self._deleter = dict(interop.DLManagedTensor._fields_)["deleter"](self._delete)

    def _delete(self, managed):
        self.deleted += 1

    def __dlpack_device__(self):
        return self.device_type, 0

    def __dlpack__(self, stream=None):
        self.streams.append(stream)
        managed = self._managed = interop.DLManagedTensor()
        t = managed.dl_tensor
        t.data = self.array.ctypes.data - self.offset  # the producer may point before the data
        t.byte_offset = self.offset
        t.device = interop.DLDevice(self.device_type, 0)
        t.ndim = self.array.ndim
        t.dtype = interop.DLDataType(self.code, self.array.itemsize * 8, 1)
        t.shape = ctypes.cast(self._shape, ctypes.POINTER(ctypes.c_int64))
        t.strides = ctypes.cast(self._strides, ctypes.POINTER(ctypes.c_int64))
        managed.deleter = self._deleter
        return _capsule_new(ctypes.addressof(managed), _NAME, None)


def dense_reference(layer, x):
    """x @ W.T + b in float64."""
    return np.asarray(x, np.float64) @ layer.params["weight"].astype(np.float64).T + layer.params["bias"]


def test_cpu_tensors_from_pytorch_are_used_without_a_copy():
    import torch
    tensor = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    array = interop.as_device_input(tensor)
    assert isinstance(array, np.ndarray) and np.shares_memory(array, tensor.numpy())
    model = nk.Sequential([L.Dense(4, 2)], seed=0)
    np.testing.assert_allclose(model.forward(array), dense_reference(model[0], tensor.numpy()), rtol=1e-6)
    plain = np.zeros(3)
    assert interop.as_device_input(plain) is plain
    np.testing.assert_array_equal(interop.as_device_input([[1, 2]]), [[1, 2]])


def test_the_dlpack_reader_agrees_with_real_producers():
    """NumPy's and PyTorch's own capsules: the pointer, shape, strides (bytes) and dtype they describe."""
    import torch
    x = np.arange(6.0).reshape(2, 3)
    interface, device, owner = interop.read_dlpack_capsule(x.__dlpack__())
    assert device == (interop.DL_CPU, 0)
    assert interface["data"][0] == x.ctypes.data and interface["shape"] == (2, 3)
    assert interface["strides"] is None and np.dtype(interface["typestr"]) == np.float64
    transposed = torch.arange(12, dtype=torch.float32).reshape(3, 4).T
    interface, _, owner = interop.read_dlpack_capsule(transposed.__dlpack__())
    assert interface["data"][0] == transposed.data_ptr()
    assert interface["shape"] == (4, 3) and interface["strides"] == (4, 16)
    capsule = x.__dlpack__()
    interop.read_dlpack_capsule(capsule)
    with pytest.raises(ValueError, match="consumed already"):
        interop.read_dlpack_capsule(capsule)


@host_memory_as_device
def test_cuda_array_interface_input_is_used_without_a_copy():
    base = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    on_gpu = interop.as_device_input(CuPyLike(base))
    assert devices.is_device_array(on_gpu)
    model = nk.Sequential([L.Dense(5, 2)], seed=0)
    expected = dense_reference(model[0], base)
    model.to("cuda")
    out = model.forward(on_gpu)
    assert devices.is_device_array(out)  # a GPU array in: a device array out
    np.testing.assert_allclose(devices.to_host(out), expected, rtol=1e-5, atol=1e-6)
    flat = nk.Sequential([L.Flatten()]).to("cuda").forward(interop.as_device_input(CuPyLike(base[:, None, :])))
    base[1, 2] = 42.0  # the model's output views the producer's memory: no copy on the way
    assert devices.to_host(flat)[1, 2] == 42.0


@host_memory_as_device
def test_read_only_and_strided_interfaces():
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    view = interop.as_device_input(CuPyLike(base[:, ::2]))
    np.testing.assert_array_equal(devices.to_host(view), base[:, ::2])
    frozen = interop.as_device_input(CuPyLike(base, readonly=True))
    with pytest.raises(ValueError, match="read-only"):
        frozen[0, 0] = 1.0


@host_memory_as_device
def test_dlpack_cuda_input_is_used_without_a_copy_and_released():
    base = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    producer = DLPackProducer(base, offset=8)
    on_gpu = interop.as_device_input(producer)
    assert devices.is_device_array(on_gpu) and producer.deleted == 0
    assert producer.streams == [None]  # the simulator has no streams; a real GPU asks for the default stream
    model = nk.Sequential([L.Dense(3, 2)], seed=1)
    expected = dense_reference(model[0], base)
    out = model.to("cuda").forward(on_gpu)
    np.testing.assert_allclose(devices.to_host(out), expected, rtol=1e-5, atol=1e-6)
    base[0, 0] = 7.0
    assert devices.to_host(on_gpu)[0, 0] == 7.0
    del on_gpu, out
    gc.collect()
    assert producer.deleted == 1  # the producer's deleter runs once the last view is gone


@pytest.mark.parametrize("producer, error, match", [
    (lambda a: DLPackProducer(a, device_type=10), TypeError, "DLPack device type 10"),  # ROCm
    (lambda a: DLPackProducer(a, code=4), TypeError, "bfloat"),
    (lambda a: object(), TypeError, "does not implement the DLPack protocol"),
])
def test_dlpack_inputs_nkernels_cannot_read_are_refused(producer, error, match):
    with pytest.raises(error, match=match):
        interop.from_dlpack(producer(np.zeros((2, 2), np.float32)))


def test_gpu_inputs_need_a_cuda_model():
    on_gpu = interop.as_device_input(CuPyLike(np.zeros((2, 3), np.float32)))
    with pytest.raises(TypeError, match="GPU array but this layer is on the CPU"):
        nk.Sequential([L.Dense(3, 2)]).forward(on_gpu)


@pytest.mark.skipif(not REAL_GPU, reason="needs a real GPU with PyTorch CUDA (NKERNELS_REAL_GPU=1)")
def test_pytorch_cuda_tensors_through_both_protocols():
    import torch
    x = torch.randn(5, 3, device="cuda")
    model = nk.Sequential([L.Dense(3, 2)], seed=0)
    expected = dense_reference(model[0], x.cpu().numpy())
    model.to("cuda")
    for out in (model.forward(x), model.forward(interop.from_dlpack(x))):
        np.testing.assert_allclose(devices.to_host(out), expected, rtol=1e-5, atol=1e-5)
    back = torch.as_tensor(model.forward(x), device="cuda")  # and back to PyTorch without a copy
    assert back.shape == (5, 2)
