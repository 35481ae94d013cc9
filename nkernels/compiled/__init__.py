"""The compiled path: whole training steps (and epochs) run in one Numba call.

Built-in layers, losses and optimizers describe their part as a :class:`CompiledOp`; the step
builder generates one function from the layer list. A model holding a layer without one falls
back to the layer-by-layer path, with the same numbers.
"""
from .spec import CompiledOp

__all__ = ["CompiledOp"]
