"""nkernels-admm: train Dense/ReLU chains without gradients, by ADMM (Taylor et al., ICML 2016).

Registers the scheme ``admm`` through the ``nkernels`` entry point::

    nk.train(model, X, y, scheme="admm", epochs=20, workers=2)

Importing this package is cheap: Numba, SciPy and Dask load only when a run starts.
"""
import nkernels as nk
from nkernels.plugins import Deferred, lazy_attributes

# the public names import their modules on first use, so that loading the plugin imports none of them
__getattr__ = lazy_attributes(__name__, {"ADMM": ".scheme"})


@nk.hookimpl
def nkernels_register_schemes():
    """The schemes of this plugin by registry name."""
    return {"admm": Deferred("nkernels_admm.scheme:ADMM")}


__all__ = ["ADMM"]
