"""nkernels-feedback: training without transported weights, registered through the ``nkernels`` entry point.

- ``dfa``: direct feedback alignment (Nøkland 2016). A fixed random matrix projects the output
  error straight to each hidden layer.
- ``fa``: feedback alignment (Lillicrap et al. 2016). The error travels down layer by layer, but
  through fixed random matrices instead of the transposed forward weights.

Both train chains of Dense layers, each followed by at most one ReLU, Sigmoid or Tanh. The plugin
uses nkernels' public API only; importing it loads no Numba code.
"""
import nkernels as nk
from nkernels.plugins import Deferred, lazy_attributes

# the public names import their modules on first use, so that loading the plugin imports none of them
__getattr__ = lazy_attributes(__name__, {"DFA": ".scheme", "FA": ".scheme", "FeedbackAlignment": ".scheme"})


@nk.hookimpl
def nkernels_register_schemes():
    """The schemes of this plugin by registry name."""
    return {"dfa": Deferred("nkernels_feedback.scheme:DFA"), "fa": Deferred("nkernels_feedback.scheme:FA")}


__all__ = ["DFA", "FA", "FeedbackAlignment"]
