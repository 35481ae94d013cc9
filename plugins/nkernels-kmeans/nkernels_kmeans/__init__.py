"""nkernels-kmeans: k-means feature extractors, registered through the ``nkernels`` entry point.

- ``kmeans``: k-means on flat vectors (k-means++, Lloyd or mini-batch, spherical), triangle or
  hard codes;
- ``conv-kmeans``: the single-layer image pipeline of Coates, Lee and Ng (2011);
- ``stacked-kmeans``: several such stages, each learning on the pooled maps of the one below,
  with the receptive-field grouping of Coates and Ng as an option.

Each fitted extractor can sit in a model as ``nk.layers.Frozen(extractor)``, be saved with it and
be exported with it by ``nk.export_onnx`` (the exporters are in :mod:`nkernels_kmeans.exporters`).
Importing this package compiles nothing and does not import Numba: the kernels load on first use.
"""
import nkernels as nk

from .conv import ConvKMeans
from .kmeans import KMeans
from .stacked import StackedKMeans


@nk.hookimpl
def nkernels_register_extractors():
    """The extractors of this plugin by registry name."""
    return {"kmeans": KMeans, "conv-kmeans": ConvKMeans, "stacked-kmeans": StackedKMeans}


@nk.hookimpl
def nkernels_register_exporters():
    """The ONNX exporters of this plugin's extractors, by class (``nk.layers.Frozen`` dispatches to them)."""
    from . import exporters

    return {KMeans: exporters.export_kmeans, ConvKMeans: exporters.export_conv_kmeans,
            StackedKMeans: exporters.export_stacked_kmeans}


__all__ = ["KMeans", "ConvKMeans", "StackedKMeans"]
