"""CPU kernels (``@njit``), one module per layer family. See :mod:`nkernels.kernels`."""
