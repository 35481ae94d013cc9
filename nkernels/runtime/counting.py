"""Count what a piece of GPU code asks of the device: launches, allocations, copies, host syncs.

:func:`count_device_work` patches numba.cuda for the length of a ``with`` block and tallies every
kernel launch, device allocation, host-to-device and device-to-host copy (a device-to-host copy
waits for the device: it is a host sync too) and explicit synchronization. It works on a real GPU
(the driver's allocator and copy functions are patched, so nothing escapes) and under the CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``: the simulator's array constructors, copies and kernel
calls), which is how the tests check that a training epoch allocates nothing and never waits for
the device.

A NumPy array handed straight to a kernel is copied over and back by numba behind the caller's
back; such launches are counted in ``implicit_copies``.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, fields
from typing import Any, Iterator

import numpy as np

from .devices import simulator

_lock = threading.Lock()


@dataclass
class DeviceCounts:
    """What ran on the device inside a :func:`count_device_work` block."""

    launches: int = 0
    allocations: int = 0
    host_to_device: int = 0
    device_to_host: int = 0
    syncs: int = 0
    implicit_copies: int = 0

    @property
    def host_waits(self) -> int:
        """Every point where the host waited for the device: syncs and device-to-host copies."""
        return self.syncs + self.device_to_host

    def as_dict(self) -> dict[str, int]:
        """The counts by name (``host_waits`` included)."""
        return {**{f.name: getattr(self, f.name) for f in fields(self)}, "host_waits": self.host_waits}

    def __sub__(self, other: "DeviceCounts") -> "DeviceCounts":
        return DeviceCounts(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)})

    def copy(self) -> "DeviceCounts":
        """A snapshot of the counts so far."""
        return DeviceCounts(**{f.name: getattr(self, f.name) for f in fields(self)})


def _wrap(owner: Any, name: str, before, patches: list) -> None:
    original = getattr(owner, name)

    def counted(*args, **kwargs):
        before(*args, **kwargs)
        return original(*args, **kwargs)

    patches.append((owner, name, original))
    setattr(owner, name, counted)


def _has_host_array(args) -> bool:
    return any(isinstance(a, np.ndarray) and a.ndim > 0 for a in args)


def _simulator_targets(counts: DeviceCounts, patches: list) -> None:
    from numba import cuda
    from numba.cuda.simulator import api, kernel
    from numba.cuda.simulator.cudadrv import devicearray

    def alloc(*a, **k):
        counts.allocations += 1

    def upload(*a, **k):
        counts.allocations += 1
        counts.host_to_device += 1

    def sync(*a, **k):
        counts.syncs += 1

    def to_host(self, *a, **k):
        counts.device_to_host += 1

    def copy_in(self, ary, *a, **k):
        if isinstance(ary, devicearray.FakeCUDAArray):
            return
        counts.host_to_device += 1

    for module in {cuda, devicearray}:
        for name in ("device_array", "device_array_like", "pinned_array", "mapped_array", "managed_array"):
            if hasattr(module, name):
                _wrap(module, name, alloc, patches)
        _wrap(module, "to_device", upload, patches)
    _wrap(cuda, "synchronize", sync, patches)
    if hasattr(api, "synchronize") and api.synchronize is not cuda.synchronize:
        _wrap(api, "synchronize", sync, patches)
    _wrap(devicearray.FakeCUDAArray, "copy_to_host", to_host, patches)
    _wrap(devicearray.FakeCUDAArray, "copy_to_device", copy_in, patches)

    def launch(self, *args):
        if not self._device and not kernel._kernel_context:  # a launch, not a device function's call
            counts.launches += 1
            if _has_host_array(args):
                counts.implicit_copies += 1

    _wrap(kernel.FakeCUDAKernel, "__call__", launch, patches)


def _driver_targets(counts: DeviceCounts, patches: list) -> None:
    from numba.cuda import dispatcher
    from numba.cuda.cudadrv import driver

    def alloc(*a, **k):
        counts.allocations += 1

    def upload(*a, **k):
        counts.host_to_device += 1

    def download(*a, **k):
        counts.device_to_host += 1

    def sync(*a, **k):
        counts.syncs += 1

    def launch(self, args, *a, **k):
        counts.launches += 1
        if _has_host_array(args):
            counts.implicit_copies += 1

    _wrap(driver.Context, "memalloc", alloc, patches)
    _wrap(driver, "host_to_device", upload, patches)
    _wrap(driver, "device_to_host", download, patches)
    _wrap(driver.Context, "synchronize", sync, patches)
    _wrap(driver.Stream, "synchronize", sync, patches)
    _wrap(dispatcher._Kernel, "launch", launch, patches)


@contextlib.contextmanager
def count_device_work() -> Iterator[DeviceCounts]:
    """``with count_device_work() as counts: ...``: the launches, allocations, copies and syncs
    of the block, in ``counts`` (a :class:`DeviceCounts`). One block at a time per process;
    numba.cuda is restored when it ends. A pool's reuse of freed memory is still an allocation
    here only when it reaches the driver (numba's default allocator frees nothing early)."""
    counts = DeviceCounts()
    patches: list = []
    with _lock:
        try:
            (_simulator_targets if simulator() else _driver_targets)(counts, patches)
            yield counts
        finally:
            for owner, name, original in reversed(patches):
                setattr(owner, name, original)


__all__ = ["DeviceCounts", "count_device_work"]
