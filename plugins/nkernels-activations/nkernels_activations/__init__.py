"""nkernels-activations: LeakyReLU and ELU layers, registered through the ``nkernels`` entry point.

It uses nkernels' public API only: the Layer base class, CompiledOp and KernelRecord.
"""
import nkernels as nk

from .layers import ELU, LeakyReLU


@nk.hookimpl
def nkernels_register_layers():
    """The layers of this plugin by registry name."""
    return {"leaky_relu": LeakyReLU, "elu": ELU}


@nk.hookimpl
def nkernels_register_kernels():
    """This plugin's kernels, so that the compiled training step can call them by op name."""
    from nkernels.kernel_registry import records_from_module

    return records_from_module("nkernels_activations.kernels", "cpu")


__all__ = ["LeakyReLU", "ELU"]
