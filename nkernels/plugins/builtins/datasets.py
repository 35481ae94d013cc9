"""Registers the built-in datasets."""
from ...datasets import load_digits, load_fashion_mnist, load_mnist, load_mnist1d
from ..marker import hookimpl


@hookimpl
def nkernels_register_datasets():
    """The built-in datasets by name."""
    return {"digits": load_digits, "mnist1d": load_mnist1d, "mnist": load_mnist, "fashion-mnist": load_fashion_mnist}
