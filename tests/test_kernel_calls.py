"""Numba code calls kernels by address (nkernels.kernels.calls): generated steps, and kernels calling kernels."""
import os
import subprocess
import sys

import numpy as np
import pytest

import nkernels as nk
from nkernels.kernels.calls import KernelByAddress, by_address
from nkernels.kernels.cpu.activation import relu_forward
from nkernels.kernels.cpu.conv import conv2d_forward
from nkernels.losses import SoftmaxCrossEntropy
from nkernels.optimizers import Adam
from nkernels.runtime.threads import calls_parallel_code
from nkernels.trainers import make_trainer

pytestmark = pytest.mark.needs_jit("reads the machine code Numba compiles for a step")

L = nk.layers


def _conv_trainer():
    model = nk.Sequential([L.Conv2D(1, 4, 3, padding=1), L.ReLU(), L.Flatten(), L.Dense(64, 10)], seed=0)
    return make_trainer(model, SoftmaxCrossEntropy(), Adam(lr=1e-3), (1, 4, 4), 8, split_batches=False)


def test_a_step_holds_its_own_code_and_calls_its_kernels_by_address(tmp_path, monkeypatch):
    """Each new step compiled its kernels' whole call trees in again (~5 s for a small conv model whose
    kernels were cached); the step's machine code now declares the kernels and defines none of them."""
    monkeypatch.setenv("NKERNELS_CACHE_DIR", str(tmp_path))
    for name in [name for name in sys.modules if name.startswith("nkernels_step_")]:
        # an earlier test of this process may have loaded the same step from Numba's disk cache, whose
        # code cannot be inspected: compile it afresh from the new cache directory
        monkeypatch.delitem(sys.modules, name)
    trainer = _conv_trainer()
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 16)).astype(np.float32), rng.integers(0, 10, 16)
    trainer.run(X, y, np.arange(16), 0, 2, 8)
    ir = "\n".join(trainer.function.inspect_llvm().values())
    defined = [line for line in ir.splitlines() if line.startswith("define") and "conv2d_forward" in line]
    declared = [line for line in ir.splitlines() if line.startswith("declare") and
                "nkernels.kernel:nkernels.kernels.cpu.conv:conv2d_forward:" in line]
    assert declared and not defined


def test_a_wrapped_kernel_is_its_kernel_to_python_and_to_the_thread_check():
    wrapped = KernelByAddress(relu_forward)
    assert wrapped.kernel is relu_forward and "relu_forward" in repr(wrapped)
    x = np.array([-1.0, 0.5, 2.0], np.float32)
    out = np.empty_like(x)
    wrapped(x, out)
    np.testing.assert_array_equal(out, [0.0, 0.5, 2.0])
    assert calls_parallel_code(KernelByAddress(conv2d_forward)) and calls_parallel_code(conv2d_forward)


CACHED_STEP = """
import numpy as np, nkernels as nk
L = nk.layers
X, y, _, _ = nk.datasets.load("digits")
model = nk.Sequential([L.Dense(64, 32), L.ReLU(), L.Dense(32, 10)], seed=0)
h = nk.train(model, X[:256], y[:256], epochs=2, batch_size=32, seed=0)
import sys
hits = [m for name, m in sys.modules.items() if name.startswith("nkernels_step_")]
print(repr(h["loss"]), sum(n for m in hits for n in m.run_batches.stats.cache_hits.values()))
"""


def _run_child(code, env):
    child = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert child.returncode == 0, child.stderr[-2000:]
    return child.stdout


def test_a_cached_step_finds_the_kernels_it_calls_in_a_fresh_process(tmp_path):
    """A step loaded from the cache calls kernels that nothing in its process compiled or loaded yet:
    their symbols are registered from the names in its machine code before it is loaded."""
    env = dict(os.environ, NKERNELS_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_CACHE_DIR", None)  # Numba's index then sits beside the generated step

    def run():
        losses, hits = _run_child(CACHED_STEP, env).rsplit(" ", 1)
        return losses, int(hits)

    first = run()
    assert first[1] == 0
    assert run() == (first[0], 1)  # loaded from the cache, the same numbers


CACHED_CALLER = """
import numpy as np
from numba import njit
from nkernels.kernels.cpu.dense import dense_forward

@njit(cache=True)
def caller(x, w, b, out):  # a plugin's own Numba code compiling a built-in kernel in
    dense_forward(x, w, b, out)
    return out.sum()

rng = np.random.default_rng(0)
x, w = rng.standard_normal((3, 5)), rng.standard_normal((4, 5))
total = caller(x, w, np.zeros(4), np.empty((3, 4)))
print(repr(total), sum(caller.stats.cache_hits.values()))
"""


def test_cached_code_that_compiles_in_a_kernel_calling_by_address_loads_in_a_fresh_process(tmp_path):
    """dense_forward calls its parallel GEMM pair by address, so any cached function that compiles it in
    calls that by address too: loaded where the pair was never compiled or loaded before, it called a
    null address unless the symbol was registered first."""
    (tmp_path / "caller.py").write_text(CACHED_CALLER)
    env = dict(os.environ, NKERNELS_CACHE_DIR=str(tmp_path / "nk"), NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    code = f"import runpy; runpy.run_path({str(tmp_path / 'caller.py')!r}, run_name='caller')"
    first, hits = _run_child(code, env).split()
    assert hits == "0"
    assert _run_child(code, env).split() == [first, "1"]


def test_a_kernel_called_by_address_must_be_found_by_its_name():
    from numba import njit

    @njit
    def local(x):
        return x

    with pytest.raises(TypeError, match="top level of its module"):
        by_address(local)
    wrapped = by_address(relu_forward)
    assert by_address(wrapped).kernel is relu_forward and wrapped.py_func is relu_forward.py_func


CALLEE = """
from numba import njit

@njit(cache=True)
def scale(x):
    return {body}
"""

CALLER = """
from numba import njit
from nkernels.kernels.calls import by_address
import nkfake_callee

scale = by_address(nkfake_callee.scale)

@njit(cache=True)
def caller(x):
    return scale(x) + 1.0

print(caller(2.0))
"""


def test_cached_code_whose_callee_no_longer_compiles_raises_a_clear_error(tmp_path):
    """A cached caller outside nkernels (not retired by nkernels' cache stamps) whose by-address callee
    changed so that it no longer compiles for the cached types: a Python error that says what to do,
    never a call through a null address."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"), PYTHONPATH=os.pathsep.join(
        filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    (tmp_path / "nkfake_callee.py").write_text(CALLEE.format(body="2.0 * x"))
    (tmp_path / "nkfake_caller.py").write_text(CALLER)
    assert _run_child("import nkfake_caller", env).strip() == "5.0"
    (tmp_path / "nkfake_callee.py").write_text(CALLEE.format(body="x.no_such_attribute"))
    child = subprocess.run([sys.executable, "-c", "import nkfake_caller"], env=env, capture_output=True, text=True)
    assert child.returncode == 1, child.stderr[-2000:]
    assert "cached Numba code calls the kernel nkfake_callee.scale" in child.stderr
    assert "nkernels cache clear" in child.stderr
