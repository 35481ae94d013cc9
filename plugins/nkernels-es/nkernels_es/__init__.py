"""nkernels-es: OpenAI evolution strategies as the training scheme ``es``.

Whole-population Numba kernels evaluate every member of a population in one call, members are
offsets into a shared noise table, and Dask workers can evaluate slices of the population. Only
nkernels' public API is used; numba is imported when a run starts, not when the plugin loads.
"""
import nkernels as nk
from nkernels.plugins import Deferred, lazy_attributes

# the public names import their modules on first use, so that loading the plugin imports none of them
__getattr__ = lazy_attributes(__name__, {"EvolutionStrategies": ".scheme"})


@nk.hookimpl
def nkernels_register_schemes():
    """This plugin's training scheme by registry name."""
    return {"es": Deferred("nkernels_es.scheme:EvolutionStrategies")}


__all__ = ["EvolutionStrategies"]
