"""Start-up costs, each in a fresh interpreter: import, cold JIT compilation, a cached first step."""
import os
import shutil
import tempfile

FIRST_STEP = """
import numpy as np
import nkernels as nk
X, y, _, _ = nk.datasets.load("digits")
model = nk.presets.build("mlp", (64,), 10)
nk.train(model, X[:64], y[:64], epochs=1, batch_size=32, seed=0)
"""


def timeraw_import_nkernels():
    """``import nkernels`` (it compiles nothing and loads no plugin)."""
    return "import nkernels"


class ColdCompile:
    """The first training step with an empty Numba cache: every kernel and the step compile."""

    timeout = 600
    number = 1
    repeat = 1

    def setup(self):
        self.cache = tempfile.mkdtemp(prefix="nk-cold-")
        os.environ["NUMBA_CACHE_DIR"] = self.cache
        os.environ["NKERNELS_CACHE_DIR"] = self.cache

    def teardown(self):
        shutil.rmtree(self.cache, ignore_errors=True)

    def timeraw_first_step_cold_cache(self):
        return FIRST_STEP


class CachedStartup:
    """The first training step of a new process whose Numba cache is warm."""

    timeout = 600

    def setup(self):
        import subprocess
        import sys

        subprocess.run([sys.executable, "-c", FIRST_STEP], check=True)  # fill the cache

    def timeraw_first_step_warm_cache(self):
        return FIRST_STEP
