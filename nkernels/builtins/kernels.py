"""Registers every built-in CPU kernel at priority 0."""
from ..kernel_registry import records_from_module
from ..plugin_marker import hookimpl

CPU_KERNEL_MODULES = ("activation", "augment", "batching", "conv", "dense", "dropout", "loss", "norms", "optim",
                      "pool", "random", "recurrent", "reshape")


@hookimpl
def nkernels_register_kernels():
    """A record for each kernel of each module in ``nkernels.kernels.cpu``."""
    return [record for name in CPU_KERNEL_MODULES
            for record in records_from_module(f"nkernels.kernels.cpu.{name}", "cpu")]
