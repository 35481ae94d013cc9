"""The calling thread's Numba thread count, callable from cached ``@njit`` code, and the even split of a
batch into chunks for the threads (:func:`even_chunk_count`) and the sum of their partial results
(:func:`add_in_chunk_order`).

Kernels that share their work between two threads do so only when the calling thread has them:
inside the compiled trainer's split mode each half runs on one thread
(``numba.set_num_threads(1)``, which is per thread), where halving a kernel's work again would only
make its GEMMs smaller. ``numba.get_num_threads()`` inside ``@njit`` makes the caller uncacheable
(it calls the threading layer through a ctypes pointer held as a global), so :func:`thread_count`
calls the threading layer's ``get_num_threads`` by the symbol Numba registers with LLVM when its
pool starts: cached callers link by name in every new process. Importing this module starts the
pool (:func:`nkernels.runtime.threads.start_parallel_runtime`), so the symbol exists before any
caller is linked.
"""
from llvmlite import ir
from numba import config as numba_config
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ...runtime.threads import start_parallel_runtime

__all__ = ["add_in_chunk_order", "even_chunk_count", "thread_count"]

start_parallel_runtime()


@intrinsic
def _get_num_threads(typingctx):
    """The threading layer's ``get_num_threads()`` (a C ``int``), as an ``intp``."""
    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []), "get_num_threads")
        return builder.sext(builder.call(fn, []), context.get_value_type(types.intp))

    return types.intp(), codegen


@njit(cache=True)
def thread_count():
    """Numba's thread count for the calling thread (``numba.set_num_threads``), from cached code too."""
    return _get_num_threads()


if numba_config.DISABLE_JIT:  # the kernel coverage run (plain Python, no intrinsics)
    def thread_count():  # noqa: F811
        import numba

        return numba.get_num_threads()


@njit(cache=True, error_model="numpy")
def even_chunk_count(n_size, per_sample, budget):
    """How many chunks a batch of ``n_size`` samples runs in, side by side on the threads: enough that none
    holds more than ``budget`` entries of work space at ``per_sample`` a sample (unless one sample alone
    does), rounded up to an even count where there are samples enough, so that two threads get as many
    chunks each. It depends on the shapes only, never on the thread count, so that sums over chunks
    added in chunk order give the same bits on any number of threads."""
    if n_size == 0:
        return 0
    per_chunk = max(1, min(n_size, budget // max(1, per_sample)))
    count = (n_size + per_chunk - 1) // per_chunk
    if count % 2 == 1 and count < n_size:
        count += 1
    return count


@njit(cache=True, error_model="numpy")
def add_in_chunk_order(partials):
    """Add every chunk's partial sum (``partials``: (chunks, ...) C-contiguous) into the first, in chunk
    order, so that the total does not depend on the thread count; a partial sum at a time, so that the loop
    over its entries vectorizes."""
    sums = partials.reshape(partials.shape[0], -1)
    total = sums[0]
    for k in range(1, sums.shape[0]):
        row = sums[k]
        for i in range(total.shape[0]):
            total[i] += row[i]
