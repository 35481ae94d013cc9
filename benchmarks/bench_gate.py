"""The pull-request gate: a short subset with real repeats and spreads (README.md, "Benchmarks").

    asv continuous --launch-method forkserver --interleave-rounds --bench bench_gate main HEAD

Five figures cover the kernels every model uses: the forward and backward of Dense, Conv2D and
LSTM (digits sizes, the layer API a custom loop calls) and a training epoch of the mlp and cnn
presets on digits (``nk.train``, the compiled step). They use public API only, so they run on any
commit ``asv continuous`` builds.

Each sample averages ``number`` calls, ``repeat`` gives 3 to 6 samples per round and ``rounds``
eight processes per commit, which ``--interleave-rounds`` alternates between the two commits
(ABBAABBA...); asv then reports a change only when it passes its statistical test on those
samples as well as ``--factor``. Many short rounds rather than a few long ones, because on the
shared machine the level is a property of the process: samples within one process agreed to a
few per cent while whole processes ran up to 50% slower (one of eight in a row of identical
processes, every figure in it). With four rounds and the commits run one after the other, two
identical trees differed by 15-19% in three of five figures; with eight interleaved rounds by at
most 5% (benchmarks/RESULTS.md, "asv as a pull-request gate"). There is no ``setup`` method on purpose: with one, asv_runner 0.3 times a single
call per sample (or re-runs setup between the calls of a sample). The state is built on the
first call instead, during the warm-up that precedes the samples, which also compiles the
kernels (or loads them from Numba's cache) outside the figures.

The figures follow the code rather than the machine's other jobs, which a shared 2-core machine
always has:

- Everything runs on one thread (Numba's and BLAS's). With other jobs running (load 5), the
  digits Conv2D pass took 40-65 ms with Numba's two threads (a parallel region waits for a
  descheduled worker) and 1.2-1.7 ms with one. How kernels scale over threads is the full suite's
  business.
- The clock (:func:`wall_less_waiting`) is the wall clock less the time the thread waited for a
  CPU while runnable, which Linux counts per thread (``/proc/thread-self/schedstat``). A busy loop
  of 0.76 s wall time had waited 0.23 s of it at load 3. Sleeping, blocking and computing all
  count, as on an idle machine; only the time other processes held the CPU does not. Where that
  file is missing (not Linux), it is the plain wall clock.
"""
import functools
import os
import time

import numpy as np

import nkernels as nk

from .bench_layers import SHAPES
from .common import blas_single_threaded


@functools.lru_cache(maxsize=None)
def _schedstat():
    """A file descriptor on the calling thread's scheduler statistics, or None where there are none."""
    try:
        return os.open("/proc/thread-self/schedstat", os.O_RDONLY)
    except OSError:
        return None


def wall_less_waiting():
    """Seconds: ``time.perf_counter()`` less the time this thread has waited on a run queue (the
    second field of ``/proc/thread-self/schedstat``, in nanoseconds); the plain wall clock where
    the kernel does not offer it. Called from the benchmark's thread only, as asv's timer is."""
    fd = _schedstat()
    if fd is None:
        return time.perf_counter()
    now = time.perf_counter()
    return now - int(os.pread(fd, 128, 0).split()[1]) * 1e-9


class _Gate:
    timer = staticmethod(wall_less_waiting)
    number = 20
    repeat = (3, 6, 0.25)  # at least 3 samples, at most 6 or 0.25 s, per round
    rounds = 8  # processes per commit: a process's level can differ by up to 50% here, so many count
    warmup_time = 0.2
    timeout = 300  # a fresh environment compiles the kernels once


@functools.lru_cache(maxsize=None)
def _one_thread():
    """Numba and BLAS on one thread for the rest of this benchmark process (entered once: entering
    the BLAS limit per call would cost more than a small layer's pass)."""
    import numba

    numba.set_num_threads(1)
    context = blas_single_threaded()
    context.__enter__()
    return context


@functools.lru_cache(maxsize=None)
def _layer_case(layer):
    """The layer at digits size, its input and output gradient, compiled by a first pass."""
    _one_thread()
    make, shape = SHAPES[layer]["digits"]
    module = make()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(module.output_shape(shape)).astype(np.float32)
    module.forward(x, training=True)
    module.backward(dy)
    return module, x, dy


@functools.lru_cache(maxsize=None)
def _epoch_case(preset):
    """The preset's model and the digits training split in the preset's input form."""
    from nkernels import presets

    _one_thread()
    form = presets.input_form(preset)
    X, y, _, _ = nk.datasets.load("digits", flat=form == "flat")
    X = presets.prepare_inputs(form, X)
    return presets.build(preset, X.shape[1:], 10), X, y


class GateLayer(_Gate):
    """A training-mode forward and backward of one layer at digits size."""

    params = ["dense", "conv2d", "lstm"]
    param_names = ["layer"]

    def time_forward_backward(self, layer):
        module, x, dy = _layer_case(layer)
        module.forward(x, training=True)
        module.backward(dy)


class GateEpoch(_Gate):
    """One epoch of backprop (Adam, batch 32) of a preset on the digits training split."""

    params = ["mlp", "cnn"]
    param_names = ["preset"]
    number = 2

    def time_epoch(self, preset):
        model, X, y = _epoch_case(preset)
        nk.train(model, X, y, epochs=1, batch_size=32, seed=0)
