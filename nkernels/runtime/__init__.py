"""What the library runs on: devices and moving arrays (:mod:`~nkernels.runtime.devices`), thread
pools (:mod:`~nkernels.runtime.threads`), the cache of generated code
(:mod:`~nkernels.runtime.cache`), array interop with CuPy, PyTorch and DLPack
(:mod:`~nkernels.runtime.interop`) and Dask scale-out (:mod:`~nkernels.runtime.distributed`).
"""
