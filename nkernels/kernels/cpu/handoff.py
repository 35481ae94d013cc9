"""Two threads handing work to each other through an int64 control array, from ``nogil`` compiled code.

The compiled trainer's split mode (:class:`nkernels.trainers.compiled.CompiledTrainer`) runs a batch's
two halves on two threads, once per batch. Waking a sleeping thread costs ~50 µs on a small virtual
machine, as much as a digits MLP's whole half batch, so within a run of batches the threads wait for
each other by polling a counter: :func:`signal` publishes a value (a release store, so the arrays
written before it are seen by the thread that reads it), and :func:`wait_until` reads the counter
(an acquire load) until it reaches a value, giving the CPU away (``sched_yield``) between two reads,
so that a busy machine's other threads still run. A spin on the CPU's ``pause`` hint instead
(2,000 pauses between yields) was slower on this KVM guest (KVM may trap a guest's pause loops):
the digits MLP's split step took a median of ~128 µs against ~105 µs over 14 processes each, with
one process in 14 at ~290 µs. The counters lie 64 bytes apart (:data:`SLOT`), so that the two
threads writing their counters never share a cache line.

Each thread publishes two counters: the half batches it computed (``HALVES``: the other may join
them) and the joins of both halves it made (``JOINED``: the other may overwrite its half's
gradients). A fifth counter, ``STOP``, ends both sides' waits: the trainer sets it when either side
stops early (a loss that is not finite, an exception), so neither thread waits forever for the other.

Everything is callable from ``@njit(cache=True)`` code: the loads and stores are LLVM atomics and the
yield is called by a symbol registered with LLVM when this module is imported (as :mod:`.blas`
registers BLAS), so cached callers link by name in every new process.
"""
import ctypes
import os
import time

import llvmlite.binding as llvm
from llvmlite import ir
from numba import config as numba_config
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["HALVES", "JOINED", "STOP", "CONTROL_SIZE", "SLOT", "signal", "wait_until"]

#: int64 entries from one counter to the next: 64 bytes, a cache line
SLOT = 8
#: the counters of a control array: each role's halves computed (role 0's at ``HALVES``, role 1's
#: ``SLOT`` further), each role's joins of both halves' gradients (likewise from ``JOINED``), the stop
HALVES, JOINED, STOP = 0, 2 * SLOT, 4 * SLOT
#: the length of a control array
CONTROL_SIZE = 5 * SLOT

_YIELD_SYMBOL = "nkernels_yield_cpu"


def _yield_address() -> int:
    if os.name == "nt":
        return ctypes.cast(ctypes.windll.kernel32.SwitchToThread, ctypes.c_void_p).value  # type: ignore[attr-defined]
    return ctypes.cast(ctypes.CDLL(None).sched_yield, ctypes.c_void_p).value


llvm.add_symbol(_YIELD_SYMBOL, _yield_address())


def _element_pointer(context, builder, signature, args):
    array = context.make_array(signature.args[0])(context, builder, args[0])
    return cgutils.get_item_pointer(context, builder, signature.args[0], array, [args[1]])


@intrinsic
def _load_acquire(typingctx, control, index):
    """``control[index]`` (int64, C-contiguous 1-D) as an atomic acquire load."""
    if control != types.Array(types.int64, 1, "C"):
        return None

    def codegen(context, builder, signature, args):
        return builder.load_atomic(_element_pointer(context, builder, signature, args), "acquire", 8)

    return types.int64(control, index), codegen


@intrinsic
def _store_release(typingctx, control, index, value):
    """``control[index] = value`` as an atomic release store."""
    if control != types.Array(types.int64, 1, "C"):
        return None

    def codegen(context, builder, signature, args):
        value = context.cast(builder, args[2], signature.args[2], types.int64)
        builder.store_atomic(value, _element_pointer(context, builder, signature, args), "release", 8)
        return context.get_dummy_value()

    return types.none(control, index, value), codegen


@intrinsic
def _yield_cpu(typingctx):
    """``sched_yield()`` (``SwitchToThread()`` on Windows), by its registered symbol."""
    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []), _YIELD_SYMBOL)
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.none(), codegen


@njit(cache=True, nogil=True)
def signal(control, counter, value):
    """Publish ``value`` in the counter at ``control[counter]``, after every write made before it."""
    _store_release(control, counter, value)


@njit(cache=True, nogil=True)
def wait_until(control, counter, value):
    """Wait until ``control[counter] >= value`` (True), or until ``control[STOP]`` is set (then whether
    the counter had reached the value), yielding the CPU between reads."""
    while _load_acquire(control, counter) < value:
        if _load_acquire(control, STOP) != 0:  # the counter may have been published just before the stop
            return _load_acquire(control, counter) >= value
        _yield_cpu()
    return True


if numba_config.DISABLE_JIT:  # plain Python (the kernel coverage run): NumPy's reads and writes, and sleep(0)
    def signal(control, counter, value):  # noqa: F811
        control[counter] = value

    def wait_until(control, counter, value):  # noqa: F811
        while control[counter] < value:
            if control[STOP] != 0:
                return control[counter] >= value
            time.sleep(0)
        return True
