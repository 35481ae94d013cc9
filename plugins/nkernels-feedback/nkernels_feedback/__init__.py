"""nkernels-feedback: training without transported weights, registered through the ``nkernels`` entry point.

- ``dfa``: direct feedback alignment (Nøkland 2016). A fixed random matrix projects the output
  error straight to each hidden layer.
- ``fa``: feedback alignment (Lillicrap et al. 2016). The error travels down layer by layer, but
  through fixed random matrices instead of the transposed forward weights.

Both train chains of Dense layers, each followed by at most one ReLU, Sigmoid or Tanh. The plugin
uses nkernels' public API only; importing it loads no Numba code.
"""
import nkernels as nk

from .scheme import DFA, FA, FeedbackAlignment


@nk.hookimpl
def nkernels_register_schemes():
    """The schemes of this plugin by registry name."""
    return {"dfa": DFA, "fa": FA}


__all__ = ["DFA", "FA", "FeedbackAlignment"]
