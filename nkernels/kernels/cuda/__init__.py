"""CUDA kernels (``@cuda.jit``) and launchers, mirroring :mod:`nkernels.kernels.cpu` name for name."""
