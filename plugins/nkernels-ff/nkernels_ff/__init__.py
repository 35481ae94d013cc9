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

from .chain import ff_model, read_chain
from .layers import LabelInput
from .predict import goodness, predict, predict_proba
from .scheme import ForwardForward


@nk.hookimpl
def nkernels_register_schemes():
    """The scheme of this plugin by registry name."""
    return {"ff": ForwardForward}


@nk.hookimpl
def nkernels_register_layers():
    """The layer of this plugin by registry name (so that saved forward-forward models load)."""
    return {"ff_label_input": LabelInput}


__all__ = ["ForwardForward", "LabelInput", "ff_model", "read_chain", "goodness", "predict", "predict_proba"]
