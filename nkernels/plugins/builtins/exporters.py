"""Registers the ONNX exporters of the built-in layers (``onnx`` itself is imported only on export)."""
from ..marker import hookimpl


@hookimpl
def nkernels_register_exporters():
    """The built-in layers' ONNX exporters by layer registry name."""
    from ...export.onnx_layers import BUILTIN_EXPORTERS

    return dict(BUILTIN_EXPORTERS)
