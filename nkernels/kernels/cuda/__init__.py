"""CUDA kernels (``@cuda.jit``) and launchers, mirroring :mod:`nkernels.kernels.cpu` name for name.

For every CPU kernel ``f`` in ``nkernels/kernels/cpu/<family>.py``, ``nkernels/kernels/cuda/<family>.py``
has a launcher ``f`` with the same name and signature. It takes device arrays in place of NumPy
arrays (numba device arrays, or anything with ``__cuda_array_interface__``: CuPy arrays, PyTorch
CUDA tensors, viewed without a copy), launches one or more ``@cuda.jit`` kernels and writes its
outputs in place on the device, so layer code calls ``kernel(op, device)(...)`` unchanged on
either device. Each family module lists its launchers in ``__all__``. Besides the kernels the
modules re-export the CPU module's pure-Python helpers (shape and workspace helpers) and
array-free scalar functions (``clip_factor``, ``translation_shift``, ``hash_uniform`` ...), which
are the same on either device.

Conventions beyond :mod:`nkernels.kernels`:

* Launches are asynchronous (default stream). Kernels returning a scalar (the mean losses,
  ``count_correct``, ``sum_of_squares``) reduce on the device in two deterministic passes and
  return a Python number after copying one float64 to the host, which synchronizes.
* float32 and float64; the arithmetic runs in the arrays' dtype except where the CPU kernel
  widens (float64 sums and scale factors), so results match the CPU kernels to a few ulp, and
  bit for bit where the arithmetic is integer or exact (dropout masks, the counter-based RNG,
  translations, gathers, copies, max pooling's forward).
* Memory-bound kernels are grid-stride loops sized to one wave of resident blocks
  (:mod:`.launch`); the elementwise ones (activations, dropout, the reshape gathers) come from
  one generator, :func:`.elementwise.elementwise`, which plugins use for their own twins.
  GEMM-bound ones (Dense, Conv via im2col, LSTM/GRU) use the register-blocked, shared-memory
  tiled GEMM of :mod:`.gemm`. Both are generated as Python source into the nkernels cache
  directory (``NKERNELS_CACHE_DIR``) so that ``cache=True`` holds across runs.
* ``cache=True`` on every kernel (numba-cuda's on-disk cache); nothing is compiled and no CUDA
  context is created at import, so these modules import on machines without a GPU.
* Under the simulator (``NUMBA_ENABLE_CUDASIM=1``) the launchers shrink their grids and GEMM
  tiles (each simulated thread is a Python thread), and float scalars meant to be float64 are
  passed as ``np.float64`` and accumulators start as ``np.float64(0.0)``: under NumPy 2's
  promotion rules a Python float meeting a float32 would make the simulated arithmetic float32,
  unlike the compiled kernel's.

Helper modules: :mod:`.launch` (device arrays, grid sizing, dtypes, cached scratch buffers),
:mod:`.elementwise` (the elementwise kernel generator), :mod:`.gemm` (the tiled GEMM, split-K,
row/column sums), :mod:`.reduce` (two-pass reductions).
"""
from numba.cuda.core.caching import CacheImpl as _CUDACacheImpl

from ...runtime.cache_stamps import stamp_numba_caches

stamp_numba_caches(_CUDACacheImpl)  # numba-cuda's locators, as the CPU ones (nkernels.kernels)
