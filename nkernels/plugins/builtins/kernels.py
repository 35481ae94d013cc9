"""Registers every built-in CPU kernel, and its CUDA twin, at priority 0."""
from ..kernels import KernelRecord, LazyKernel, records_from_module
from ..marker import hookimpl

CPU_KERNEL_MODULES = ("activation", "augment", "batching", "conv", "dense", "dropout", "loss", "norms", "optim",
                      "pool", "random", "recurrent", "reshape", "normalization", "attention", "embedding")


@hookimpl
def nkernels_register_kernels():
    """A record for each kernel of each module in ``nkernels.kernels.cpu``, and one for its twin of
    the same name in ``nkernels.kernels.cuda`` (imported on first call); and the CUDA GEMM
    (``("gemm", "cuda")``: :func:`nkernels.kernels.cuda.gemm.tiled_gemm`)."""
    records = []
    for family in CPU_KERNEL_MODULES:
        for record in records_from_module(f"nkernels.kernels.cpu.{family}", "cpu"):
            records.append(record)
            records.append(KernelRecord(record.op, "cuda", LazyKernel(f"nkernels.kernels.cuda.{family}", record.op)))
    # the layers' CUDA GEMM, which a vendor GEMM plugin may outrank (nkernels.kernels.cuda.gemm.gemm)
    records.append(KernelRecord("gemm", "cuda", LazyKernel("nkernels.kernels.cuda.gemm", "tiled_gemm")))
    return records
