"""Shared setup of the plugins' tests: the CUDA simulator is switched on before numba is imported (as
tests/conftest.py does for the core), so that a plugin's ``cuda`` tests run without a GPU, also when
its test file runs alone. ``NUMBA_ENABLE_CUDASIM=0`` in the environment runs them on a real GPU."""
import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
