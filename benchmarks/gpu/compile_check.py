"""Compile every CUDA kernel the simulated test suite launches, as a real GPU would, without a GPU.

    NUMBA_ENABLE_CUDASIM=1 python benchmarks/gpu/compile_check.py [pytest arguments]   # default: -m cuda

The simulator runs kernels as Python, so a kernel numba-cuda cannot compile (a NumPy ufunc called in a
device function, a module attribute as a shared array's size) passes every simulated test and fails
only on a GPU. This runs the CUDA tests under the simulator with ``record_launches`` (each launch's
kernel and argument types), then compiles each recorded kernel with numba-cuda's real compiler to PTX
for sm_90, in its real-GPU variant (generated GEMMs rebuilt with ``real_gpu=True``). Needs a CUDA
toolkit's NVVM and ptxas (:func:`benchmarks.gpu.compile_without_gpu`); a development aid, not in CI.
Kernels defined inside test functions are skipped and counted; elementwise kernels are imported from
the cache, where the recording wrote them. Exit status 1 if any kernel fails to compile.
"""
from __future__ import annotations

import glob
import importlib
import os
import pickle
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def record(pytest_args: list[str], prefix: str) -> set:
    """Run the simulated tests with the recorder; the recorded (what, argument types) pairs."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", NKERNELS_LAUNCHES=prefix,
               PYTHONPATH=os.pathsep.join([HERE, ROOT, os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-m", "pytest", "-p", "record_launches", "-p", "no:cacheprovider", "-q",
                    *(pytest_args or ["-m", "cuda and not slow"])], cwd=ROOT, env=env, check=False)
    seen: set = set()
    for path in glob.glob(prefix + ".*.pkl"):
        with open(path, "rb") as f:
            seen |= pickle.load(f)
    return seen


def kernel_of(what):
    """The real-GPU dispatcher a record names, or None for one that cannot be rebuilt here."""
    if what[0] == "function":
        _, module, qualname = what
        if "<locals>" in qualname:
            return None
        try:
            obj = importlib.import_module(module)
        except ImportError:  # an elementwise kernel's module, generated into the cache by content hash
            from nkernels.runtime.cache import cache_dir, load_generated_module

            path = os.path.join(cache_dir(), "cuda", module + ".py")
            if not os.path.exists(path):
                return None
            with open(path) as f:
                obj = load_generated_module(f.read(), "cuda", module.rsplit("_", 1)[0])
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj
    _, module, name, args = what
    if name == "gemm_kernel":
        from nkernels.kernels.cuda.gemm import GemmConfig

        args = (GemmConfig(*args[0]), *args[1:])
    return getattr(importlib.import_module(module), name)(*args)


def main(argv=None) -> int:
    pytest_args = sys.argv[1:] if argv is None else argv
    with tempfile.TemporaryDirectory(prefix="nkernels-launches-") as tmp:
        seen = record(pytest_args, os.path.join(tmp, "launches"))
    os.environ["NUMBA_ENABLE_CUDASIM"] = "0"
    sys.path[:0] = [ROOT, os.path.dirname(HERE)] + sorted(glob.glob(os.path.join(ROOT, "plugins", "*", "")))
    from gpu import compile_without_gpu

    compile_without_gpu()
    from numba import cuda

    from nkernels.kernels.cuda import launch

    launch._sm_count = 132  # the H200's: kernels sized from the device see a real GPU's numbers
    compiled, skipped, failures = 0, 0, {}
    for what, sig in sorted(seen, key=str):
        kernel = None if sig and sig[0] == "untypable" else kernel_of(what)
        if kernel is None:
            skipped += 1
            continue
        try:
            cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0), fastmath=kernel.targetoptions.get("fastmath", False),
                             launch_bounds=kernel.targetoptions.get("launch_bounds"))
            compiled += 1
        except Exception as exc:  # noqa: BLE001 - every failure is reported
            failures.setdefault(what, (sig, f"{type(exc).__name__}: {str(exc)[-800:]}"))
    print(f"compiled {compiled} kernel signatures for sm_90, {len(failures)} kernels failed, {skipped} skipped")
    for what, (sig, error) in failures.items():
        print(f"== {what}\n   {sig}\n   {error}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
