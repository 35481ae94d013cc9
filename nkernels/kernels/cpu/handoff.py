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

The second thread may also stay in compiled code between runs (:func:`wait_for_post`): the words
after ``STOP`` hold its ``STATE`` (``WAITING`` for a run, ``POSTED`` a run, ``GONE``), the runs it
has finished (``DONE``) and the next run's start, batches and step (``RUN``). The first thread
posts a run with a compare-and-exchange from ``WAITING`` to ``POSTED`` (:func:`post_run`), so a
run is either taken by a waiting thread or refused by one that has gone; waking a sleeping
thread (~20 µs to hand it a task, ~15 µs more before it starts on this machine) and taking the
interpreter's lock back from it are left out of every run after the first.

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

__all__ = ["HALVES", "JOINED", "STOP", "STATE", "DONE", "RUN", "WAITING", "POSTED", "GONE", "CONTROL_SIZE", "SLOT",
           "signal", "wait_until", "post_run", "retire", "wait_for_post", "finish_run", "wait_for_run"]

#: int64 entries from one counter to the next: 64 bytes, a cache line
SLOT = 8
#: the counters of a control array: each role's halves computed (role 0's at ``HALVES``, role 1's
#: ``SLOT`` further), each role's joins of both halves' gradients (likewise from ``JOINED``), the stop
HALVES, JOINED, STOP = 0, 2 * SLOT, 4 * SLOT
#: the words of a second thread that waits for runs: its state, the runs it finished, and the next
#: run's start, number of batches and step at ``RUN``, ``RUN + 1`` and ``RUN + 2``
STATE, DONE, RUN = 5 * SLOT, 6 * SLOT, 7 * SLOT
#: the states: waiting for a run, a run posted (the waiting thread takes it), gone (it takes no more)
WAITING, POSTED, GONE = 0, 1, 2
#: the length of a control array
CONTROL_SIZE = 8 * SLOT

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


@intrinsic
def _compare_exchange(typingctx, control, index, expected, value):
    """``control[index] = value`` if it holds ``expected``, as one atomic step; whether it did."""
    if control != types.Array(types.int64, 1, "C"):
        return None

    def codegen(context, builder, signature, args):
        expected, value = (context.cast(builder, a, t, types.int64) for a, t in zip(args[2:], signature.args[2:]))
        exchanged = builder.cmpxchg(_element_pointer(context, builder, signature, args), expected, value,
                                    "acq_rel", "acquire")
        return builder.extract_value(exchanged, 1)

    return types.boolean(control, index, expected, value), codegen


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


@njit(cache=True, nogil=True)
def post_run(control, start, n_batches, step):
    """Hand a waiting second thread the run of ``n_batches`` from ``start`` at ``step`` (True), or
    nothing when it has gone or has a run (False: the posted run's words stay). One thread posts."""
    if _load_acquire(control, STATE) != WAITING:
        return False
    control[RUN], control[RUN + 1], control[RUN + 2] = start, n_batches, step
    return _compare_exchange(control, STATE, WAITING, POSTED)


@njit(cache=True, nogil=True)
def retire(control):
    """Tell a waiting second thread to go (True), or nothing when it has gone or has a run (False)."""
    return _compare_exchange(control, STATE, WAITING, GONE)


@njit(cache=True, nogil=True)
def wait_for_post(control, polls):
    """The second thread's wait for its next run: True once one is posted, False when it was told
    to go, or after ``polls`` reads (a yield of the CPU between two) with none, when it goes."""
    for _ in range(polls):
        state = _load_acquire(control, STATE)
        if state != WAITING:
            return state == POSTED
        _yield_cpu()
    if _compare_exchange(control, STATE, WAITING, GONE):
        return False
    return _load_acquire(control, STATE) == POSTED


@njit(cache=True, nogil=True)
def finish_run(control, runs):
    """The second thread finished its ``runs``-th run and waits for the next."""
    _store_release(control, STATE, WAITING)
    _store_release(control, DONE, runs)


@njit(cache=True, nogil=True)
def wait_for_run(control, runs):
    """Wait until the second thread has finished ``runs`` runs (True), or has gone without (False:
    it failed)."""
    while _load_acquire(control, DONE) < runs:
        if _load_acquire(control, STATE) == GONE:
            return _load_acquire(control, DONE) >= runs
        _yield_cpu()
    return True


if numba_config.DISABLE_JIT:  # plain Python (the kernel coverage run): the functions above on NumPy's reads
    import threading  # and writes, a lock for the exchange, and sleep(0)

    _exchange_lock = threading.Lock()

    def _load_acquire(control, index):  # noqa: F811
        return control[index]

    def _store_release(control, index, value):  # noqa: F811
        control[index] = value

    def _compare_exchange(control, index, expected, value):  # noqa: F811
        with _exchange_lock:
            if control[index] != expected:
                return False
            control[index] = value
            return True

    def _yield_cpu():  # noqa: F811
        time.sleep(0)
