"""nkernels-ff: forward-forward training (Hinton 2022), registered through the ``nkernels`` entry point.

- scheme ``ff`` (:class:`ForwardForward`): every Dense + ReLU layer trained on its own goodness
  objective, positive data (the true label joined to the input) against negative data (a wrong
  label), no backward pass through the network;
- layer ``ff_label_input`` (:class:`LabelInput`): the label's slot in front of the first Dense;
- :func:`ff_model` builds a model, :func:`predict`, :func:`predict_proba` and :func:`goodness`
  classify with one.

The plugin uses nkernels' public API only; importing it loads no Numba code.
"""
import nkernels as nk
from nkernels.plugins import Deferred, lazy_attributes

from .chain import ff_model, read_chain
from .predict import goodness, predict, predict_proba  # a submodule's name too, so not lazy (see lazy_attributes)

# the scheme and the layer import their modules on first use, so that loading the plugin imports neither
__getattr__ = lazy_attributes(__name__, {"LabelInput": ".layers", "ForwardForward": ".scheme"})


@nk.hookimpl
def nkernels_register_schemes():
    """The scheme of this plugin by registry name."""
    return {"ff": Deferred("nkernels_ff.scheme:ForwardForward")}


@nk.hookimpl
def nkernels_register_layers():
    """The layer of this plugin by registry name (so that saved forward-forward models load)."""
    return {"ff_label_input": Deferred("nkernels_ff.layers:LabelInput")}


__all__ = ["ForwardForward", "LabelInput", "ff_model", "read_chain", "goodness", "predict", "predict_proba"]
