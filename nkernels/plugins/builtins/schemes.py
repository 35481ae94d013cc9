"""Registers the built-in ``backprop`` scheme."""
from ..marker import hookimpl
from ...schemes.backprop import Backprop


@hookimpl
def nkernels_register_schemes():
    """The built-in schemes by name."""
    return {"backprop": Backprop}
