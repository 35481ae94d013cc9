"""Numba kernels: plain functions on arrays, one module per layer family.

``nkernels.kernels.cpu`` holds the ``@njit`` kernels and ``nkernels.kernels.cuda`` their
``@cuda.jit`` twins, module for module and name for name. Kernels know nothing of layers.

Conventions every kernel follows (plugin kernels should too):

* A kernel is a plain function. Inputs come first, then scalar options, then preallocated
  outputs (and workspaces); it returns ``None`` or a scalar (a loss, a norm).
* Names are ``<op>_forward`` / ``<op>_backward`` (and ``<op>_update`` for optimizers).
* Backward kernels *overwrite* their gradient outputs; they never accumulate.
* Arrays use PyTorch's layouts (NCHW, NCL, batch-first sequences) and C order.
* Every kernel works for float32 and float64; all array arguments share one dtype.
* Kernels never validate: the layer validates shapes and values before calling, so a kernel
  never indexes out of bounds on the arguments it is given.
* ``cache=True`` and ``error_model="numpy"`` everywhere (the default Python error model puts a
  zero check before every division, which stops LLVM from vectorizing: Adam's update ran 30x
  slower with it), and nothing compiled at import. ``parallel=True`` with ``prange``
  only where the work is wide enough, and never a BLAS call (``np.dot``/``@``) inside a
  ``prange`` region: make it one large GEMM outside the parallel loop instead.
"""

from ..runtime.cache_stamps import stamp_numba_caches

stamp_numba_caches()  # before any kernel module: their cache entries go stale with the code they compiled in
