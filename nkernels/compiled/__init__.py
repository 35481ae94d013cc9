"""The compiled path: whole training steps (and epochs) run in one Numba call.

:mod:`nkernels.compiled.step` generates the source of that call from the pass descriptions of
the layers, the loss and the optimizer (:mod:`nkernels.passes`), rendered operand by operand by
:mod:`nkernels.compiled.render`; :class:`nkernels.trainers.CompiledTrainer` runs it. A model
holding a layer without a description falls back to the layer-by-layer path, with the same
numbers. :class:`CompiledOp` string templates, the earlier form, still work for one release.
"""
from .legacy import CompiledOp

__all__ = ["CompiledOp"]
