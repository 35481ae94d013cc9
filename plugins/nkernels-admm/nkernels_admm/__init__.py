"""nkernels-admm: train Dense/ReLU chains without gradients, by ADMM (Taylor et al., ICML 2016).

Registers the scheme ``admm`` through the ``nkernels`` entry point::

    nk.train(model, X, y, scheme="admm", epochs=20, workers=2)

Importing this package is cheap: Numba, SciPy and Dask load only when a run starts.
"""
import nkernels as nk

from .scheme import ADMM


@nk.hookimpl
def nkernels_register_schemes():
    """The schemes of this plugin by registry name."""
    return {"admm": ADMM}


__all__ = ["ADMM"]
