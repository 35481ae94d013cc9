"""Training with ``NUMBA_DISABLE_JIT=1``, Numba's debugging mode, in which every kernel runs as plain Python
(a user steps through a kernel with pdb, or reads a traceback with its line). The kernel registry used to
see no CPU kernel at all there (it knew kernels by their Numba dispatcher), the convolution's column
copies formed a negative unsigned index that compiled code wraps and Python refuses, dense's two-thread
path called an intrinsic, and the CUDA attention module read its CPU rows' ``.py_func``."""
import textwrap

import numpy as np

from children import last_json_line, run_child

TRAIN = textwrap.dedent("""
    import numpy as np
    import nkernels as nk


    def losses():
        L = nk.layers
        X = np.random.default_rng(0).standard_normal((32, 1, 6, 6)).astype("float32")
        y = np.arange(32) % 3
        conv = nk.Sequential([L.Conv2D(1, 2, 3, padding=1), L.ReLU(), L.MaxPool2D(2), L.Flatten(),
                              L.Dense(18, 3)], seed=0)
        # 16 x 36 x 256 multiply-adds a product: dense shares them between two threads (NUMBA_NUM_THREADS=2)
        wide = nk.Sequential([L.Flatten(), L.Dense(36, 256), L.ReLU(), L.Dense(256, 3)], seed=0)
        return [nk.train(model, X, y, epochs=2, batch_size=16, seed=0)["loss"] for model in (conv, wide)]
""")


def test_models_train_with_numbas_jit_disabled_as_they_do_compiled():
    """A padded convolution, and products large enough that dense shares them between two threads."""
    plain = last_json_line(run_child(TRAIN + "\nimport json\nprint(json.dumps(losses()))\n", NUMBA_DISABLE_JIT="1",
                                     NUMBA_NUM_THREADS="2"))
    here: dict = {}
    exec(TRAIN, here)  # the same training, compiled, in this process
    # plain Python rounds some float32 products once more or less than compiled code: close, not equal
    np.testing.assert_allclose(plain, here["losses"](), rtol=1e-5)


IMPORT_EVERY_KERNEL_MODULE = textwrap.dedent("""
    import importlib, pkgutil
    import nkernels.kernels.cpu, nkernels.kernels.cuda

    for package in (nkernels.kernels.cpu, nkernels.kernels.cuda):
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")
""")


def test_every_kernel_module_imports_with_the_jit_disabled_and_the_cuda_simulator():
    """What ``scripts/kernel_coverage.py`` runs under (its run is not part of this suite): the CUDA
    attention module once read its CPU twins' ``.py_func``, which plain functions do not have."""
    child = run_child(IMPORT_EVERY_KERNEL_MODULE, NUMBA_DISABLE_JIT="1", NUMBA_ENABLE_CUDASIM="1")
    assert child.returncode == 0, child.stderr[-3000:]
