"""The vendor GEMM plugin's tests run under the CUDA simulator, with a fake CuPy where they need one."""
import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
