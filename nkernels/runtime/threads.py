"""Thread pools: keep BLAS and Numba's parallel kernels from fighting over the cores.

OpenBLAS and Numba's ``prange`` each keep a pool of spinning threads. When a training step
alternates between them, each pool's spinning threads starve the other's workers: on 2 cores a
digits CNN step ran about 100x slower than with either pool alone. nkernels therefore runs its
training and inference loops with BLAS on one thread and gives the cores to Numba's kernels.
(Letting BLAS keep 2 threads in a step with only serial kernels made the digits MLP step 25%
faster in most runs, but about one process in four then stalled at ~70 ms a step; on
2026-11-23 the same stalls, 70 to 250 ms a step for the MLP and the LSTMs, came back with
Numba's pool cut to one thread, so they are OpenBLAS's own spin-waiting on a busy machine.)
The GEMMs use the other cores through Numba's threads instead: the dense and recurrent kernels run
their products as single-threaded BLAS calls side by side (``nkernels.kernels.cpu.dense``), and the
compiled trainer's split mode (:class:`nkernels.trainers.CompiledTrainer`) runs the halves of big
batches on threads that block rather than spin.

Whatever nkernels changes here it gives back: the BLAS limit lasts as long as the block, and
starting Numba's pool leaves the OpenMP settings of the caller's thread as they were (see
:func:`start_parallel_runtime`), so that PyTorch, JAX or scikit-learn in the same process run
as fast as they would alone.
"""
from __future__ import annotations

import os
import threading
import types
from contextlib import contextmanager, nullcontext
from typing import Any, ContextManager, Iterator

#: Numba's threading layers on which two Python threads may run parallel kernels at the same time
#: (Numba's docs: omp and tbb are thread-safe); ``workqueue`` aborts the process instead
#: ("Concurrent access has been detected")
THREAD_SAFE_LAYERS = ("omp", "tbb")
#: the way out, for messages about a layer that is not thread-safe
THREAD_SAFE_LAYER_HINT = ("install TBB (pip install tbb) and set NUMBA_THREADING_LAYER=tbb, or use an OpenMP "
                          "runtime (NUMBA_THREADING_LAYER=omp; libgomp on Linux, intel-openmp on macOS)")

_controller = None
_parallel_runtime_started = False
_start_lock = threading.Lock()


def start_parallel_runtime() -> None:
    """Start Numba's pool of ``prange`` threads, once per process.

    A function loaded from Numba's cache that calls a ``parallel=True`` kernel does not start the
    pool itself, and segfaults if nothing else started it first (numba/numba#8578): the compiled
    training step of a conv model did, in a process whose first Numba call was that step.

    The pool is started from a short-lived thread of its own. Numba's ``omp`` layer switches on
    nested parallelism (``omp_set_nested(1)``) and sets the OpenMP thread count for the thread that
    starts it, and that OpenMP runtime is the one PyTorch runs on when torch is imported later (the
    dynamic loader shares ``libgomp.so.1`` by soname). With nesting on, every parallel region
    PyTorch reached inside another started a new team of threads (900 threads created in 140 MLP
    steps), and its MLP step ran 4-7x slower. Started elsewhere, those settings stay on that thread
    and end with it; Numba's kernels pass their thread count to every region and do not nest.
    """
    global _parallel_runtime_started
    if _parallel_runtime_started:
        return
    with _start_lock:
        if _parallel_runtime_started:
            return
        import numba

        failure: list[Exception] = []

        def start() -> None:
            try:
                numba.get_num_threads()  # starts the threading layer
            except Exception as exc:  # e.g. a NUMBA_THREADING_LAYER that is not installed
                failure.append(exc)

        starter = threading.Thread(target=start, name="nkernels-start-numba-pool")
        starter.start()
        starter.join()
        if failure:
            raise failure[0]
        _parallel_runtime_started = True


def threading_layer() -> str:
    """The threading layer Numba's pool runs on: ``"omp"``, ``"tbb"`` or ``"workqueue"``.

    Numba knows it only once its pool has started (before that there is just the configured
    choice, such as ``"default"``), so this starts the pool.
    """
    import numba

    start_parallel_runtime()
    return numba.threading_layer()


def calls_parallel_code(function) -> bool:
    """Whether the Numba function ``function``, or a Numba function it calls (directly or through
    others), is compiled with ``parallel=True``: whether calling it enters Numba's threading layer.

    Read from the Python code of the functions: the Numba functions each one names as a global, as
    an attribute of a module it names, or in its closure; the Numba function a wrapper names as its
    ``__wrapped__`` (a :class:`~nkernels.kernels.calls.KernelByAddress`) counts too.
    """
    from numba.core.dispatcher import Dispatcher

    seen: set[int] = set()
    pending = [function]
    while pending:
        fn = pending.pop()
        if not isinstance(fn, Dispatcher):  # (a Dispatcher's own __wrapped__ is its Python function)
            fn = getattr(fn, "__wrapped__", fn)
        if id(fn) in seen or not isinstance(fn, Dispatcher):
            continue
        seen.add(id(fn))
        if fn.targetoptions.get("parallel"):
            return True
        py_func = fn.py_func
        names: set[str] = set()
        codes = [py_func.__code__]
        while codes:  # the function's code and that of functions defined in it
            code = codes.pop()
            names.update(code.co_names)
            codes += [const for const in code.co_consts if isinstance(const, types.CodeType)]
        referenced = [py_func.__globals__.get(name) for name in names]
        for cell in py_func.__closure__ or ():
            try:
                referenced.append(cell.cell_contents)
            except ValueError:  # an empty cell
                pass
        for obj in referenced:
            if isinstance(obj, types.ModuleType):
                pending += [getattr(obj, name, None) for name in names]
            else:
                pending.append(obj)
    return False


@contextmanager
def blas_single_threaded() -> Iterator[None]:
    """Within the block, BLAS libraries (OpenBLAS, MKL) use one thread; restored afterwards.

    Every compiled loop of nkernels runs inside this block, so it also starts Numba's parallel
    runtime (:func:`start_parallel_runtime`). A few microseconds: it sets each library's thread
    count directly (threadpoolctl's ``limit`` costs ~50 µs), so ``Sequential.forward`` can use it,
    and each layer's pass inside it opens one of its own (that one finds BLAS on one thread already
    and changes nothing: about 3 µs).
    """
    global _controller
    start_parallel_runtime()
    if _controller is None:
        # Numba's np.dot and nkernels.kernels.cpu.blas call SciPy's OpenBLAS, not NumPy's: load it first, or
        # the controller (a snapshot of the libraries loaded when it is made) would leave it multithreaded.
        import scipy.linalg.cython_blas  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController().select(user_api="blas")
    changed = [(lib, n) for lib in _controller.lib_controllers if (n := lib.num_threads) != 1]
    for lib, _ in changed:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in changed:
            lib.set_num_threads(n)


@contextmanager
def one_kernel_thread() -> Iterator[None]:
    """Within the block, Numba's parallel kernels run on the calling thread alone; restored afterwards.

    For work between the split mode's runs (:class:`nkernels.trainers.CompiledTrainer`), whose two
    threads keep Numba's pool idle: the pool's OpenMP threads spin for milliseconds after a parallel
    region and take a core from the next run's halves. A 20-epoch digits MLP run with a
    300-sample validation set took 150-197 ms with its evaluations on two threads, 58-60 ms on one
    (42-49 ms without validation; the evaluations took 14-28 ms either way).
    """
    import numba

    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(threads)


def kernel_threads(device: str) -> ContextManager[Any]:
    """The threads a pass of nkernels' kernels runs with on ``device``: on the CPU, BLAS on one
    thread (:func:`blas_single_threaded`), since the conv kernels alternate BLAS calls and ``prange``
    regions and a multithreaded BLAS's spinning threads then fight Numba's for the cores (a
    32-channel 3x3 conv's forward: 122 ms instead of 2 ms); nothing to change on a GPU."""
    return blas_single_threaded() if device == "cpu" else nullcontext()


def blas_libraries() -> list[str]:
    """One line per loaded BLAS library: its file, the kernels it chose (architecture) and its threads."""
    from threadpoolctl import threadpool_info

    return [f"{os.path.basename(info['filepath'])}: {info.get('architecture') or '?'} kernels, "
            f"{info['num_threads']} threads" for info in threadpool_info() if info.get("user_api") == "blas"]


#: the CPU features of OpenBLAS's AVX-512 kernels (its SkylakeX core type and the ones after it)
AVX512_FEATURES = ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")


def blas_kernels_note(architectures: list[str] | None = None, cpu_features: Any = None,
                      coretype: str | None = None, tiles: bool | None = None) -> str:
    """Why nkernels' products run slower than this CPU allows, or "" when nothing says so.

    OpenBLAS picks its kernels once, as it loads: by ``OPENBLAS_CORETYPE`` when the environment sets
    it, else from the CPU. When an OpenBLAS in use runs kernels without AVX-512 (Haswell's, say) on a
    CPU that has it, its products run about half as fast. nkernels' own AVX-512 tiles
    (:mod:`nkernels.kernels.cpu.avx512`), which the setting does not reach, compute the products of
    training steps on such CPUs; the products left to OpenBLAS (larger ones, see
    :func:`nkernels.kernels.cpu.blas.tiles_take`) pay it. Without the tiles every product pays (on a Zen 5
    machine with ``OPENBLAS_CORETYPE=Haswell`` the digits MLP's step took 81 µs instead of 42,
    LSTM(16->128)'s 7.1 ms instead of 3.2). nkernels never changes the setting; this says what it costs.
    ``architectures`` (the core type of each OpenBLAS loaded), ``cpu_features`` (a mapping of LLVM's
    feature names to whether this CPU has them), ``coretype`` and ``tiles`` (whether the tiles are in
    use) default to this process's.
    """
    from ..kernels.cpu.blas import SMALL_KERNEL_CORES, openblas_cores  # (those cores' kernels use AVX-512)

    if architectures is None:
        import scipy.linalg.cython_blas  # noqa: F401  (the OpenBLAS nkernels' products call, loaded first)

        architectures = openblas_cores()
    if cpu_features is None:
        import llvmlite.binding as llvm

        cpu_features = llvm.get_host_cpu_features()
    if coretype is None:
        coretype = os.environ.get("OPENBLAS_CORETYPE", "")
    if tiles is None:
        from ..kernels.cpu.avx512 import tiles_in_use

        tiles = tiles_in_use()
    slower = sorted({core for core in architectures if core not in SMALL_KERNEL_CORES})
    if not slower or not all(cpu_features.get(feature, False) for feature in AVX512_FEATURES):
        return ""
    kernels = f"OpenBLAS runs its {', '.join(slower)} kernels, without AVX-512, on a CPU that has AVX-512"
    cost = ("nkernels' own AVX-512 tiles compute the products of training steps, and the products left to "
            "OpenBLAS (larger ones) run about half as fast") if tiles else (
            "nkernels' products run about half as fast (training steps took 1.3-2.7x as long on a Zen 5 machine)")
    if coretype:
        return (f"{kernels}, as OPENBLAS_CORETYPE={coretype} in the environment tells it: {cost}; unset it (or set "
                "OPENBLAS_CORETYPE=SkylakeX) for its AVX-512 kernels")
    return (f"{kernels}: this OpenBLAS did not recognize the CPU (a release older than the CPU may not; "
            f"OpenBLAS issue 6029 is AMD's Zen 5): {cost}; OPENBLAS_CORETYPE=SkylakeX in the environment selects "
            "its AVX-512 kernels")
