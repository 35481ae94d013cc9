"""The pull-request gate: a short subset with real repeats and spreads (README.md, "Benchmarks").

    asv continuous --bench bench_gate main HEAD

Five figures cover the kernels every model uses: the forward and backward of Dense, Conv2D and
LSTM (digits sizes, the layer API a custom loop calls) and a training epoch of the mlp and cnn
presets on digits (``nk.train``, the compiled step). They use public API only, so they run on any
commit ``asv continuous`` builds.

Each sample averages ``number`` calls, ``repeat`` gives 10 to 30 samples per round and ``rounds``
two processes per commit, which ``asv continuous`` interleaves between the two commits; asv then
reports a change only when it passes its statistical test on those samples as well as
``--factor``. There is no ``setup`` method on purpose: with one, asv_runner 0.3 times a single
call per sample (or re-runs setup between the calls of a sample). The state is built on the
first call instead, during the warm-up that precedes the samples, which also compiles the
kernels (or loads them from Numba's cache) outside the figures.

Everything runs on one thread (Numba's and BLAS's), so that the figures follow the code and not
the machine: on the shared 2-core machine, with other jobs running (load 5), the digits Conv2D
pass took 40-65 ms with Numba's two threads (a parallel region waits for a descheduled worker)
and 1.2-1.7 ms with one. How the kernels scale over threads is the full suite's business.
"""
import functools

import numpy as np

import nkernels as nk

from .bench_layers import SHAPES
from .common import blas_single_threaded


class _Gate:
    number = 20
    repeat = (10, 30, 1.0)  # at least 10 samples, at most 30 or 1 s, per round
    rounds = 2
    warmup_time = 0.3
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
