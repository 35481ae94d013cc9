"""Registers the built-in datasets."""
from ...datasets import load_digits
from ..marker import hookimpl


@hookimpl
def nkernels_register_datasets():
    """The built-in datasets by name."""
    return {"digits": load_digits}
