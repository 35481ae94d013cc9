"""nkernels-sg: synthetic gradients (Jaderberg et al. 2017), registered through the ``nkernels`` entry point.

- ``sg``: after each hidden block (a Dense layer and the activation after it) a linear model
  predicts the gradient of the loss with respect to the block's output, from that output and, by
  default, the one-hot label. Each block updates at once from its prediction; the predictors
  learn from the gradients that arrive from the block above.

The trained model is the ordinary chain (the predictors are used in training only). The plugin
uses nkernels' public API only; importing it loads no Numba code.
"""
import nkernels as nk
from nkernels.plugins import Deferred, lazy_attributes

# the public names import their modules on first use, so that loading the plugin imports none of them
__getattr__ = lazy_attributes(__name__, {"SyntheticGradients": ".scheme"})


@nk.hookimpl
def nkernels_register_schemes():
    """The schemes of this plugin by registry name."""
    return {"sg": Deferred("nkernels_sg.scheme:SyntheticGradients")}


__all__ = ["SyntheticGradients"]
