"""nkernels-pmi: stacked factorization of pointwise-mutual-information matrices, as feature extractors.

- ``pmi-factorization`` (:class:`PMIFactorization`): one stage: co-activation statistics of the
  input locations, their (positive, smoothed) PMI matrix, its truncated SVD (or NMF), the
  projections of the inputs, rectified into positive and negative parts;
- ``stacked-pmi`` (:class:`StackedPMI`): several stages, each on the features of the one below.

Each fitted extractor can sit in a model as ``nk.layers.Frozen(extractor)``, be saved with it and
exported with it by ``nk.export_onnx`` (:mod:`nkernels_pmi.exporters`). Importing this package
compiles nothing and does not import Numba: the kernels load on first use.
"""
import nkernels as nk

from .pmi import PMIFactorization
from .stacked import StackedPMI


@nk.hookimpl
def nkernels_register_extractors():
    """The extractors of this plugin by registry name."""
    return {"pmi-factorization": PMIFactorization, "stacked-pmi": StackedPMI}


@nk.hookimpl
def nkernels_register_exporters():
    """The ONNX exporters of this plugin's extractors, by class (``nk.layers.Frozen`` dispatches to them)."""
    from . import exporters

    return {PMIFactorization: exporters.export_pmi, StackedPMI: exporters.export_stacked_pmi}


__all__ = ["PMIFactorization", "StackedPMI"]
