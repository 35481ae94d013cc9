"""Numba's threading layers and the process's thread settings.

The split mode never takes the process down on Numba's ``workqueue`` layer (which aborts when two
threads run parallel kernels at once), ``nkernels info`` names the layer in use, and training leaves
the OpenMP, BLAS and environment settings of the process as the user had them (PyTorch imported
afterwards runs on the same OpenMP runtime). The abort cases run in a child process, where an
abort fails the test instead of ending pytest.
"""
import json
import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from numba import njit, prange

import nkernels as nk
from nkernels.cli import main
from nkernels.trainers import CompiledTrainer
from nkernels.plugins.kernels import kernel
from nkernels.kernels.cpu import conv as conv_kernels
from nkernels.losses import SoftmaxCrossEntropy
from nkernels.optimizers import Adam
from nkernels.runtime import threads as threads_module
from nkernels.runtime.threads import THREAD_SAFE_LAYERS, calls_parallel_code, threading_layer

from children import ROOT, last_json_line, run_child


# -- item 1: the split mode on the workqueue layer ------------------------------------------------
SPLIT_ON_WORKQUEUE = """
import contextlib, io, json
import numpy as np, numba
import nkernels as nk
from nkernels.cli import main
from nkernels.trainers import CompiledTrainer
from nkernels.losses import SoftmaxCrossEntropy
from nkernels.optimizers import Adam

L = nk.layers
rng = np.random.default_rng(0)
X, y = rng.standard_normal((1024, 1, 8, 8)).astype("float32"), rng.integers(0, 10, 1024)
result = {}
# the issue's case: a conv model at a batch the automatic mode splits on a thread-safe layer (1024: 24M
# multiply-adds a batch)
history = nk.train(nk.presets.build("cnn", (1, 8, 8), 10, seed=0), X, y, epochs=1, batch_size=1024, seed=0)
result["loss"] = history["loss"][-1]
cnn = nk.presets.build("cnn", (1, 8, 8), 10, seed=0)
result["auto_split"] = CompiledTrainer.build(cnn, SoftmaxCrossEntropy(), Adam(), (1, 8, 8), 1024).split
try:
    CompiledTrainer.build(cnn, SoftmaxCrossEntropy(), Adam(), (1, 8, 8), 1024, split_batches=True)
except ValueError as exc:
    result["forced_error"] = str(exc)
# the LSTM's kernels run parallel regions too (two halves of a batch): refused split, it trains whole
Xs = rng.standard_normal((64, 5, 3))
lstm = nk.Sequential([L.LSTM(3, 6), L.Dense(6, 4)], seed=0, dtype="float64")
try:
    CompiledTrainer.build(lstm, SoftmaxCrossEntropy(), Adam(lr=1e-2), (5, 3), 16, split_batches=True)
except ValueError as exc:
    result["lstm_forced_error"] = str(exc)
trainer = CompiledTrainer.build(lstm, SoftmaxCrossEntropy(), Adam(lr=1e-2), (5, 3), 16)
losses, _, done = trainer.run(Xs.reshape(64, -1), y[:64] % 4, np.arange(64), 0, 4, 16)
result.update(lstm_split=trainer.split, lstm_done=done, lstm_finite=bool(np.isfinite(losses).all()))
with contextlib.redirect_stdout(io.StringIO()) as info:
    main(["info"])
result["info"] = " ".join(info.getvalue().split())
result["layer"] = numba.threading_layer()
print(json.dumps(result))
"""


def test_split_mode_never_aborts_on_the_workqueue_layer():
    result = last_json_line(run_child(SPLIT_ON_WORKQUEUE, NUMBA_THREADING_LAYER="workqueue", COLUMNS="400"))
    assert result["layer"] == "workqueue"
    assert np.isfinite(result["loss"])
    assert result["auto_split"] is False  # the automatic mode keeps whole batches there
    message = result["forced_error"]  # a forced split is refused, naming the layer and the ways out
    assert "split_batches=True" in message and "'workqueue'" in message
    assert "tbb" in message and "omp" in message and "split_batches=False" in message
    assert "'workqueue'" in result["lstm_forced_error"]
    assert result["lstm_split"] is False and result["lstm_done"] == 4 and result["lstm_finite"]
    assert "threading layer workqueue in use" in result["info"]


def test_the_same_conv_step_runs_split_on_a_thread_safe_layer():
    """The workqueue test's conv model at batch 1024 is one the automatic mode splits where that is safe."""
    cnn = nk.presets.build("cnn", (1, 8, 8), 10, seed=0)
    trainer = CompiledTrainer.build(cnn, SoftmaxCrossEntropy(), Adam(), (1, 8, 8), 1024)
    assert trainer.split is (threading_layer() in THREAD_SAFE_LAYERS)


@njit(parallel=True)
def _parallel_fill(x):
    for i in prange(x.shape[0]):
        x[i] = i


@njit
def _calls_parallel_through_a_global(x):
    _parallel_fill(x)


@njit
def _calls_parallel_through_a_module(x, w, out):
    conv_kernels.conv2d_forward(x, w, out)


@njit
def _serial(x):
    x[:] = 0


def _calling_through_a_closure():
    inner = _calls_parallel_through_a_global

    @njit
    def outer(x):
        inner(x)

    return outer


def test_calls_parallel_code_follows_the_numba_calls():
    assert calls_parallel_code(_parallel_fill)
    assert calls_parallel_code(_calls_parallel_through_a_global)
    assert calls_parallel_code(_calls_parallel_through_a_module)
    assert calls_parallel_code(_calling_through_a_closure())
    assert not calls_parallel_code(_serial)
    assert calls_parallel_code(kernel("conv2d_forward", "cpu"))  # im2col runs in prange
    assert calls_parallel_code(kernel("maxpool2d_forward", "cpu"))
    for op in ("dense_forward", "dense_backward", "lstm_forward", "lstm_backward", "gru_backward"):
        assert calls_parallel_code(kernel(op, "cpu")), op  # two threads share a big product or batch
    for op in ("adam_update", "relu_forward", "softmax_cross_entropy_backward"):
        assert not calls_parallel_code(kernel(op, "cpu")), op


def test_info_shows_the_threading_layer_in_use(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["info"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"threading layer {numba.threading_layer()} in use" in out  # not the configured "default"
    assert f"NUMBA_THREADING_LAYER={numba.config.THREADING_LAYER}" in out


# -- item 13: what training leaves behind ---------------------------------------------------------
SETTINGS_AFTER_TRAIN = """
import ctypes, json, os, threading
import threadpoolctl  # sets KMP_DUPLICATE_LIB_OK on import (for Intel's OpenMP): its own, not nkernels'
import scipy.linalg.cython_blas  # the OpenBLAS Numba calls, loaded now so that its setting is seen before
from threadpoolctl import threadpool_info

WATCHED = ("OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "NUMBA_")
def environment():
    return {k: v for k, v in os.environ.items() if k.startswith(WATCHED)}
def blas_threads():
    return {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
env_before, blas_before = environment(), blas_threads()

import numpy as np, numba
import nkernels as nk
from nkernels import bench
for name in ("mlp", "cnn"):  # the CNN's kernels run parallel regions on this thread
    case = bench.CASES[name]
    X, y = bench.data(case, 4)
    nk.train(case.build(), X, y, epochs=1, batch_size=case.batch_size, seed=0)

def openmp_settings():
    out = {}
    for info in threadpool_info():
        if info["user_api"] == "openmp":
            lib = ctypes.CDLL(info["filepath"])
            out[info["filepath"]] = [lib.omp_get_max_active_levels(), lib.omp_get_nested(),
                                     lib.omp_get_max_threads(), lib.omp_get_dynamic()]
    return out
this_thread, new_thread = openmp_settings(), []
thread = threading.Thread(target=lambda: new_thread.append(openmp_settings()))
thread.start(); thread.join()
print(json.dumps({"layer": numba.threading_layer(), "this_thread": this_thread, "new_thread": new_thread[0],
                  "env_before": env_before, "env_after": environment(), "blas_before": blas_before,
                  "blas_after": blas_threads(), "numba_threads": numba.get_num_threads()}))
"""


def test_training_leaves_the_openmp_blas_and_environment_settings_as_they_were():
    """Numba's OpenMP layer switches on nested parallelism for the thread that starts its pool; when that was
    the user's thread, PyTorch imported later (on the same runtime) started a new team for every region it
    reached inside another, and trained 4-7x slower. After nk.train, the calling thread has the OpenMP
    runtime's own settings (those of a new thread), BLAS its thread counts, the environment what the user
    set, and Numba its configured thread count."""
    run = run_child(SETTINGS_AFTER_TRAIN, NUMBA_THREADING_LAYER="omp", NUMBA_NUM_THREADS="2", OMP_NESTED=None,
                    OMP_MAX_ACTIVE_LEVELS=None)
    if run.returncode != 0 and "No threading layer could be loaded" in run.stderr:
        pytest.skip("Numba's omp threading layer is not available here (no OpenMP runtime)")
    result = last_json_line(run)
    assert result["layer"] == "omp"
    assert result["this_thread"], "no OpenMP runtime loaded"
    assert result["this_thread"] == result["new_thread"]
    for max_active_levels, nested, _, _ in result["this_thread"].values():
        assert max_active_levels == 1 or not nested  # no nested teams unless the user asked for them
    assert result["env_after"] == result["env_before"]
    assert {k: result["blas_after"][k] for k in result["blas_before"]} == result["blas_before"]
    assert result["numba_threads"] == 2


# -- layer by layer, a kernel loaded from Numba's cache as the first parallel code of a process ----------------
LAYER_PASS = """
import sys
import numpy as np
import nkernels as nk

L = nk.layers
x = np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype("float32")
if sys.argv[1] == "convtranspose":
    layer = L.ConvTranspose2D(2, 3, 3)
    layer.backward(np.ones(layer.forward(x, training=True).shape, np.float32))
else:
    print(float(nk.Sequential([L.Conv2D(2, 3, 3)], seed=0).forward(x).sum()))
"""


def test_a_layer_whose_cached_kernel_needs_numbas_threads_runs_as_the_first_parallel_code(tmp_path):
    """Numba caches a kernel without the call that starts its threads when every parallel function it calls
    came from the cache when it was compiled (numba/numba#8578). Conv2D's forward compiled after
    ConvTranspose2D's kernels had cached the im2col and layout helpers the two share, then loaded from the
    cache in a fresh process, segfaulted on the layer-by-layer path until every CPU kernel lookup started
    the threads."""
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba"), "NKERNELS_CACHE_DIR": str(tmp_path / "nkernels")}

    def run(which):
        return subprocess.run([sys.executable, "-c", LAYER_PASS, which], capture_output=True, text=True,
                              env={**os.environ, **env, "PYTHONPATH": os.pathsep.join(
                                  filter(None, [ROOT, os.environ.get("PYTHONPATH")]))})

    runs = [run("convtranspose"), run("conv"), run("conv")]  # the last one loads Conv2D's forward from the cache
    for child in runs:
        assert child.returncode == 0, f"the child process ended with {child.returncode}: {child.stderr[-2000:]}"
    assert runs[1].stdout == runs[2].stdout


def blas_threads():
    """{library file: its thread count} for every loaded BLAS library (SciPy's, which the kernels call, loaded)."""
    from threadpoolctl import threadpool_info

    import scipy.linalg.cython_blas  # noqa: F401  (Numba's and nkernels' BLAS: load it, as the kernels do)

    return {info["filepath"]: info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}


def test_a_models_forward_and_backward_run_blas_on_one_thread_and_restore_it():
    """The conv kernels alternate BLAS calls and prange regions; with a multithreaded BLAS beside Numba's
    threads a 32-channel conv's forward took 122 ms instead of 2 ms on two cores. Training and predict
    pinned BLAS already; a plain forward/backward did not."""
    model = nk.Sequential([nk.layers.Dense(4, 3)], seed=0)
    seen = []
    layer = model.layers[0]
    forward, backward = layer.forward, layer.backward
    layer.forward = lambda *a, **k: (seen.append(blas_threads()), forward(*a, **k))[1]
    layer.backward = lambda *a, **k: (seen.append(blas_threads()), backward(*a, **k))[1]
    outside = blas_threads()
    out = model.forward(np.ones((2, 4), np.float32), training=True)
    model.backward(np.ones_like(out))
    assert len(seen) == 2 and all(set(threads.values()) == {1} for threads in seen), seen
    assert blas_threads() == outside


def test_a_layer_called_on_its_own_runs_blas_on_one_thread_and_restores_it(monkeypatch):
    """A layer's own forward/backward (``layer(x)``, as a scheme or a user calls it) ran its kernels with
    BLAS on as many threads as the process had: the resnet preset's layers, called one by one on two
    cores, took 668 ms a forward + backward instead of 6.8 ms."""
    from threadpoolctl import threadpool_limits

    from nkernels.layers import base

    seen = []
    run = base.run
    monkeypatch.setattr(base, "run", lambda *a: (seen.append(blas_threads()), run(*a))[1])
    layer = nk.layers.Conv2D(2, 3, 3, padding=1)
    with threadpool_limits(limits=2, user_api="blas"):
        outside = blas_threads()
        out = layer(np.ones((2, 2, 5, 5), np.float32), training=True)
        layer.backward(np.ones_like(out))
        assert blas_threads() == outside
    assert len(seen) == 2 and all(set(threads.values()) == {1} for threads in seen), seen
    assert set(outside.values()) == {2}


# -- which BLAS kernels the products run on -------------------------------------------------------
AVX512_CPU = {feature: True for feature in threads_module.AVX512_FEATURES}


@pytest.mark.parametrize("cores, features, coretype, expected", [
    (["Haswell"], AVX512_CPU, "Haswell", "as OPENBLAS_CORETYPE=Haswell in the environment tells it"),
    (["Haswell", "SkylakeX"], AVX512_CPU, "", "this OpenBLAS did not recognize the CPU"),
    (["Zen"], AVX512_CPU, "", "its Zen kernels"),
    (["SkylakeX", "Cooperlake"], AVX512_CPU, "", ""),                     # AVX-512 kernels already
    (["Haswell"], {**AVX512_CPU, "avx512bw": False}, "Haswell", ""),     # the CPU lacks part of AVX-512
    (["Haswell"], {"avx2": True}, "", ""),                              # an AVX2 CPU: Haswell's kernels fit
    ([], AVX512_CPU, "Haswell", ""),                                    # no OpenBLAS loaded
])
@pytest.mark.parametrize("tiles", [True, False])
def test_the_blas_note_says_when_openblas_runs_below_the_cpu(cores, features, coretype, expected, tiles):
    note = threads_module.blas_kernels_note(cores, features, coretype, tiles)
    if not expected:
        assert note == ""
    else:
        assert expected in note and "AVX-512" in note and "SkylakeX" in note
        assert ("own AVX-512 tiles compute the products of training steps" in note) == tiles


def test_the_blas_note_reads_this_process_by_default():
    import scipy.linalg.cython_blas  # noqa: F401  (the OpenBLAS nkernels' products call)
    from threadpoolctl import threadpool_info

    from nkernels.kernels.cpu.blas import SMALL_KERNEL_CORES

    cores = [info["architecture"] for info in threadpool_info() if info.get("internal_api") == "openblas"]
    note = threads_module.blas_kernels_note()
    from nkernels.kernels.cpu.avx512 import tiles_in_use

    assert note == threads_module.blas_kernels_note(cores, None, os.environ.get("OPENBLAS_CORETYPE", ""),
                                                    tiles_in_use())
    if all(core in SMALL_KERNEL_CORES for core in cores):
        assert note == ""


def test_info_and_bench_print_the_blas_note(capsys, monkeypatch):
    from nkernels.cli import bench

    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.setattr(threads_module, "blas_kernels_note", lambda: "OpenBLAS runs its Haswell kernels (test)")
    assert main(["info"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "blas note" in out and "OpenBLAS runs its Haswell kernels (test)" in out
    row = {"case": "mlp", "description": "MLP", "nkernels_us": 1.0, "torch_us": 2.0, "torch_speedup": 2.0,
           "jax_us": None, "jax_speedup": None}
    monkeypatch.setattr(bench, "speedups", lambda *a, **k: [row])
    assert main(["bench", "--models", "mlp", "--repeat", "1"]) == 0
    assert "note: OpenBLAS runs its Haswell kernels (test)" in " ".join(capsys.readouterr().out.split())
    assert main(["bench", "--models", "mlp", "--repeat", "1", "--json"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out) == [row] and "note: OpenBLAS runs its Haswell kernels (test)" in printed.err
