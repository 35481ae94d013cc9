"""Pass descriptions: each pass of a layer, a loss or an optimizer, stated once as data.

A layer returns :class:`LayerPasses` from ``passes(input_shape)``; a loss
:class:`LossPasses` from ``passes()``; an optimizer a tuple of :class:`Phase` from ``phases()``.
The layer-by-layer path runs the calls (:func:`nkernels.passes.interpret.run`) and the compiled
path renders them into one Numba function (:mod:`nkernels.compiled`). See
:mod:`nkernels.passes.ir` for the vocabulary, with an example.
"""
from .interpret import Frame, run
from .ir import (
    COUNTS, DX, DY, FRESH, INDEX, LOSSES, NEED_DX, STEP, TARGET, VIEW, X, Y, Call, Const, LayerPasses, Local,
    LossPasses, Phase, Ref, Scalar, Workspace, buffer, grad, param, state, work)

__all__ = ["Call", "Const", "Scalar", "Local", "Ref", "Workspace", "LayerPasses", "LossPasses", "Phase", "VIEW",
           "X", "Y", "DX", "DY", "TARGET", "LOSSES", "COUNTS", "STEP", "NEED_DX", "FRESH", "INDEX", "param", "grad",
           "work", "buffer", "state", "Frame", "run"]
