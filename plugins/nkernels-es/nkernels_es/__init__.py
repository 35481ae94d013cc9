"""nkernels-es: OpenAI evolution strategies as the training scheme ``es``.

Whole-population Numba kernels evaluate every member of a population in one call, members are
offsets into a shared noise table, and Dask workers can evaluate slices of the population. Only
nkernels' public API is used; numba is imported when a run starts, not when the plugin loads.
"""
import nkernels as nk

from .scheme import EvolutionStrategies


@nk.hookimpl
def nkernels_register_schemes():
    """This plugin's training scheme by registry name."""
    return {"es": EvolutionStrategies}


__all__ = ["EvolutionStrategies"]
