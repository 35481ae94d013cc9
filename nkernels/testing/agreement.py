"""CPU/CUDA agreement: a kernel or a layer gives the same numbers on both devices.

Without a GPU, run under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set before numba
is imported) on tiny shapes; on a GPU the same checks run for real.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..runtime import devices
from ..plugins.kernels import kernel
from .gradcheck import GradientMismatch


def _tolerance(dtype: np.dtype, rtol: float | None) -> float:
    if rtol is not None:
        return rtol
    return 1e-4 if np.dtype(dtype) == np.float32 else 1e-10


def _compare(what: str, cpu: Any, cuda: Any, rtol: float) -> float:
    """Max-norm relative difference, checked against ``rtol``; NaN in one result only is a mismatch."""
    cpu, cuda = np.asarray(cpu), devices.to_host(cuda)
    if cpu.shape != cuda.shape:
        raise GradientMismatch(f"{what}: CPU shape {cpu.shape}, CUDA shape {cuda.shape}")
    if not np.array_equal(np.isnan(cpu), np.isnan(cuda)):
        raise GradientMismatch(f"{what}: NaN in one result and not the other")
    if cpu.size == 0:
        return 0.0
    if cpu.dtype.kind in "iub":
        if not np.array_equal(cpu, cuda):
            raise GradientMismatch(f"{what}: integer results differ at {int(np.argmax(cpu != cuda))}")
        return 0.0
    finite = ~np.isnan(cpu)
    scale = max(float(np.max(np.abs(cpu[finite]), initial=0.0)), 1e-30)
    error = float(np.max(np.abs(cpu[finite].astype(np.float64) - cuda[finite]), initial=0.0)) / scale
    if error > rtol:
        raise GradientMismatch(f"{what}: CPU and CUDA differ by {error:.3g} (relative to the largest "
                               f"value), more than the tolerance {rtol:.1g}")
    return error


def check_cpu_cuda_agreement(subject: Any, *args: Any, rtol: float | None = None, seed: int = 0,
                             training: bool = True, dtype: Any = np.float64, inputs: Any = None) -> dict[str, float]:
    """Check that the CUDA twin of a kernel, or a layer on the GPU, matches the CPU.

    **A kernel**: ``check_cpu_cuda_agreement("relu_forward", x, out)`` calls the CPU kernel on
    copies of the NumPy arguments and the CUDA kernel on device copies of the same, then
    compares every array argument afterwards (kernels write their outputs in place) and the
    return value. Fill outputs with NaN to catch elements a kernel fails to write.

    **A layer**: ``check_cpu_cuda_agreement(layer, input_shape)`` builds a CPU and a CUDA copy
    of ``layer`` (same config, same weights, cast to ``dtype``), runs ``forward`` on a random
    input (``training=True`` by default) and ``backward`` on a random output gradient, and
    compares the outputs, the buffers after the forward (running statistics, counters), the
    input gradients and every parameter gradient. ``inputs`` replaces the random input; a layer
    that takes integer indices (an Embedding) needs it.

    Returns the largest relative difference seen per compared name. Raises
    :class:`~nkernels.testing.GradientMismatch` beyond ``rtol`` (default 1e-4 in float32,
    1e-10 in float64), and a DeviceUnavailableError when no CUDA device (or simulator) is usable.
    """
    devices.require_cuda()
    from ..layers.base import Layer

    if isinstance(subject, Layer):
        if len(args) != 1:
            raise TypeError("check_cpu_cuda_agreement(layer, input_shape): give the input shape")
        return _layer_agreement(subject, tuple(args[0]), rtol, seed, training, np.dtype(dtype), inputs)
    if isinstance(subject, str):
        return _kernel_agreement(subject, args, rtol)
    raise TypeError(f"check_cpu_cuda_agreement takes a kernel name or a Layer, got {subject!r}")


def _kernel_agreement(op: str, args: tuple, rtol: float | None) -> dict[str, float]:
    cpu_args = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
    cuda_args = [devices.to_device(a) if isinstance(a, np.ndarray) else a for a in args]
    cpu_result = kernel(op, "cpu")(*cpu_args)
    cuda_result = kernel(op, "cuda")(*cuda_args)
    floats = [a.dtype for a in cpu_args if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    tol = _tolerance(floats[0] if floats else np.dtype(np.float64), rtol)
    compared = {}
    for i, (a, b) in enumerate(zip(cpu_args, cuda_args)):
        if isinstance(a, np.ndarray):
            compared[f"arg{i}"] = _compare(f"{op} argument {i}", a, b, tol)
    if cpu_result is not None or cuda_result is not None:
        compared["result"] = _compare(f"{op} result", np.asarray(cpu_result), np.asarray(cuda_result), tol)
    return compared


def _twin(layer, dtype: np.dtype):
    """A copy of ``layer`` on the CPU (weights, buffers and settings such as a random seed), cast to ``dtype``."""
    from ..model import Sequential

    return Sequential([layer]).copy()[0].to("cpu").astype(dtype)


def _layer_agreement(layer, input_shape: tuple[int, ...], rtol: float | None, seed: int, training: bool,
                     dtype: np.dtype, inputs: Any = None) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    cpu = _twin(layer, dtype)
    gpu = _twin(layer, dtype).to("cuda")
    tol = _tolerance(dtype, rtol)
    if layer.input_dtype is not None:  # indices: given, never drawn or cast
        if inputs is None:
            raise ValueError(f"{type(layer).__name__} takes integer indices: pass inputs=, an array of valid indices")
        x = np.asarray(inputs)
    else:
        x = rng.standard_normal(input_shape) if inputs is None else np.asarray(inputs)
        x = x.astype(dtype)
    y_cpu = cpu.forward(x, training=training)
    y_gpu = gpu.forward(x, training=training)
    compared = {"forward": _compare(f"{type(layer).__name__} forward", y_cpu, y_gpu, tol)}
    for name in cpu.buffers:  # state the forward updates: running statistics, random-number counters
        compared[f"buffer.{name}"] = _compare(f"{type(layer).__name__} buffer {name}", cpu.buffers[name],
                                              gpu.buffers[name], tol)
    if not training:
        return compared
    dy = rng.standard_normal(np.shape(y_cpu)).astype(dtype)
    dx_cpu = cpu.backward(dy)
    dx_gpu = gpu.backward(dy)
    compared["dx"] = _compare(f"{type(layer).__name__} backward (input gradient)", dx_cpu, dx_gpu, tol)
    for name in cpu.grads:
        compared[f"grad.{name}"] = _compare(f"{type(layer).__name__} gradient of {name}", cpu.grads[name],
                                            gpu.grads[name], tol)
    return compared
