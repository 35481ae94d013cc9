"""Generated steps call their kernels by address (nkernels.compiled.kernel_calls)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import nkernels as nk
from nkernels.compiled.kernel_calls import KernelByAddress
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
    trainer = _conv_trainer()
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 16)).astype(np.float32), rng.integers(0, 10, 16)
    trainer.run(X, y, np.arange(16), 0, 2, 8)
    ir = "\n".join(trainer.function.inspect_llvm().values())
    defined = [line for line in ir.splitlines() if line.startswith("define") and "conv2d_forward" in line]
    declared = [line for line in ir.splitlines() if line.startswith("declare") and
                "nkernels.kernel.nkernels.kernels.cpu.conv.conv2d_forward." in line]
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


def test_a_cached_step_without_its_list_of_kernels_is_compiled_anew(tmp_path):
    """A cached step is loaded only after the kernels it calls are registered: loaded without its
    list (a process stopped between Numba's save and the list's), it called a null address."""
    env = dict(os.environ, NKERNELS_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_CACHE_DIR", None)  # Numba's index then sits beside the generated step

    def run():
        child = subprocess.run([sys.executable, "-c", CACHED_STEP], env=env, capture_output=True, text=True)
        assert child.returncode == 0, child.stderr[-2000:]
        losses, hits = child.stdout.rsplit(" ", 1)
        return losses, int(hits)

    first = run()
    lists = list((tmp_path / "steps").glob("__pycache__/*.kernels"))
    assert first[1] == 0 and len(lists) == 1
    lists[0].write_bytes(b"not a pickle")  # as unreadable as a missing one
    assert run() == (first[0], 0)  # compiled anew, and its list written again
    assert run() == (first[0], 1)  # loaded from the cache, with its list
