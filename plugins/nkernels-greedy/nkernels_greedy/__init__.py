"""nkernels-greedy: greedy layer-wise training, registered through the ``nkernels`` entry point.

- scheme ``greedy``: each block of a chain trained in turn on the output of the frozen blocks
  below it, unsupervised (autoencoder or RBM pretraining, Hinton et al. 2006, Bengio et al. 2007)
  or supervised with auxiliary heads (Belilovsky et al. 2019), then optional fine-tuning.
- scheme ``autoencoder``: any chain trained to reconstruct its input (MSE or binary cross-entropy),
  optionally denoising (Vincent et al. 2008); its ``encoder`` is a feature extractor. It corrupts its
  inputs with the same kernel as the ``autoencoder`` extractor.
- extractors ``autoencoder`` and ``rbm``: scikit-learn style ``fit``/``transform``, stackable, with
  ONNX exporters so that ``nk.export_onnx`` writes them inside ``nk.layers.Frozen``.

The plugin uses nkernels' public API only; importing it loads no Numba code.
"""
import nkernels as nk

from .autoencoding import AutoencoderScheme
from .extractors import EXPORTERS, RBM, Autoencoder
from .scheme import Greedy


@nk.hookimpl
def nkernels_register_schemes():
    """The schemes of this plugin by registry name."""
    return {"greedy": Greedy, "autoencoder": AutoencoderScheme}


@nk.hookimpl
def nkernels_register_extractors():
    """The feature extractors of this plugin by registry name."""
    return {"autoencoder": Autoencoder, "rbm": RBM}


@nk.hookimpl
def nkernels_register_exporters():
    """The ONNX exporters of this plugin's extractors, by class (``nk.layers.Frozen`` dispatches to them)."""
    return dict(EXPORTERS)


__all__ = ["Greedy", "AutoencoderScheme", "Autoencoder", "RBM"]
