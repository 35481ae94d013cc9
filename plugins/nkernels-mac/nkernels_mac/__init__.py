"""nkernels-mac: train Dense/activation chains by the method of auxiliary coordinates (MAC,
Carreira-Perpiñán and Wang, AISTATS 2014), distributed on Dask as ParMAC does.

Registers the scheme ``mac`` through the ``nkernels`` entry point::

    nk.train(model, X, y, scheme="mac", epochs=30, workers=2)

Importing this package is cheap: the kernels compile (or load from Numba's cache) when a run starts.
"""
import nkernels as nk
from nkernels.plugins import Deferred, lazy_attributes

# the public names import their modules on first use, so that loading the plugin imports none of them
__getattr__ = lazy_attributes(__name__, {"MAC": ".scheme"})


@nk.hookimpl
def nkernels_register_schemes():
    """The schemes of this plugin by registry name."""
    return {"mac": Deferred("nkernels_mac.scheme:MAC")}


__all__ = ["MAC"]
