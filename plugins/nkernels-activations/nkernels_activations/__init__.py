"""nkernels-activations: LeakyReLU and ELU layers, registered through the ``nkernels`` entry point.

It uses nkernels' public API only: the Layer base class, the pass vocabulary of
nkernels.passes and KernelRecord.
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
    from nkernels.plugins.kernels import records_from_module

    return records_from_module("nkernels_activations.kernels", "cpu")


def export_leaky_relu(layer, graph, x, input_shape):
    """LeakyReLU as ONNX ``LeakyRelu(alpha=negative_slope)``."""
    return graph.node("LeakyRelu", [x], alpha=layer.negative_slope)


def export_elu(layer, graph, x, input_shape):
    """ELU as ONNX ``Elu(alpha=alpha)``."""
    return graph.node("Elu", [x], alpha=layer.alpha)


@nk.hookimpl
def nkernels_register_exporters():
    """ONNX exporters of this plugin's layers, so that ``nk.export_onnx`` writes models holding them."""
    return {"leaky_relu": export_leaky_relu, "elu": export_elu}


__all__ = ["LeakyReLU", "ELU"]
