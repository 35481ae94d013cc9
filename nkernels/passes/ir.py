"""The vocabulary of a pass description: kernel calls on symbolic operands.

A layer, a loss or an optimizer states each of its passes once, as a tuple of :class:`Call`
records. The layer-by-layer path runs them one Python call at a time
(:mod:`nkernels.passes.interpret`); the compiled path renders the same records into the source of
one Numba function (:mod:`nkernels.compiled`). Neither path has a description of its own, so the
two cannot drift apart.

Operands:

:class:`Ref`
    an array by role and name: the input ``X`` and output ``Y``, their gradients ``DX`` and
    ``DY``, a parameter :func:`param` and its gradient :func:`grad`, a workspace :func:`work`
    (declared with its shape in :class:`LayerPasses`), a buffer :func:`buffer` (state that
    outlives a step: a random-number counter, running statistics), a loss's ``TARGET``, an
    optimizer's :func:`state`. ``ref.flat`` views it as 1-D, ``ref.rows`` as 2-D (the first
    axis, the rest) and ``ref.vectors`` as 2-D by its last axis (every other axis, the last: the
    tokens of a (N, T, D) sequence as N*T rows).
:class:`Const`
    a number or a flag that shapes the computation (a stride, a kernel size, a variant switch):
    written into the compiled source as a typed literal by the renderer.
:class:`Scalar`
    a number that may change from run to run (a dropout rate, a learning rate, a slope): read
    from the owner's ``scalars()`` when the pass runs, and an argument of the compiled step, so a
    new value compiles nothing new.
:class:`Local`
    a scalar a call returns (``result=``) and later calls read, e.g. a sum of squares.
``STEP``, ``NEED_DX``, ``FRESH``, ``INDEX``
    the training step (from 1); whether the input's gradient is wanted (the first layer's is
    not, unless a scheme asks); whether the forward's workspaces are untouched since it ran (a
    second backward after one forward must rebuild them); where a loss writes its value.

Example, the description of a dense layer::

    from nkernels.passes import (DX, DY, NEED_DX, X, Y, Call, LayerPasses, grad, param)

    LayerPasses(
        forward=(Call("dense_forward", X, param("weight"), param("bias"), Y),),
        backward=(Call("dense_backward", X, DY, param("weight"), NEED_DX, DX, grad("weight"),
                       grad("bias")),),
    )
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Union

import numpy as np

#: the roles of a Ref and what they name
ROLES = {
    "x": "the input of the pass (a layer's input, a loss's outputs)",
    "y": "the output of a layer's forward",
    "dx": "the gradient with respect to the input",
    "dy": "the gradient with respect to the output",
    "param": "a parameter, by name",
    "grad": "a parameter's gradient, by name",
    "work": "a workspace declared in LayerPasses.workspaces, by name",
    "buffer": "a buffer of the layer (state that outlives a step), by name",
    "target": "a loss's targets",
    "losses": "a loss's float64 results, one per batch, at INDEX",
    "counts": "a classifier loss's int64 correct counts, one per batch, at INDEX",
    "state": "an optimizer's state array for the current parameter, by name",
    "other_grad": "the split mode's gradient of the other half batch",
}
VIEWS = ("", "flat", "rows", "vectors")


@dataclass(frozen=True)
class Ref:
    """An array operand: ``role`` (see :data:`ROLES`), ``name`` for named roles, ``view``."""

    role: str
    name: str = ""
    view: str = ""

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"unknown operand role {self.role!r}; roles: {', '.join(ROLES)}")
        if self.view not in VIEWS:
            raise ValueError(f"unknown view {self.view!r}; views: 'flat', 'rows', 'vectors' or none")

    @property
    def flat(self) -> "Ref":
        """The same array as a 1-D view."""
        return Ref(self.role, self.name, "flat")

    @property
    def rows(self) -> "Ref":
        """The same array as a 2-D view: the first axis, then everything else."""
        return Ref(self.role, self.name, "rows")

    @property
    def vectors(self) -> "Ref":
        """The same array as a 2-D view by its last axis: every other axis flattened into the
        rows, the last axis the columns ((N, T, D) as (N*T, D); a 2-D array as it is)."""
        return Ref(self.role, self.name, "vectors")


@dataclass(frozen=True)
class Const:
    """A literal that shapes the computation: a bool, an int or a finite float.

    NumPy scalars are accepted and kept as the Python value of their kind, so ``repr`` of a
    NumPy type never reaches generated source.

    ``specialize`` (ints and bools): True compiles the kernel of a compiled step for this very
    value (Numba types it as a literal: constant trip counts, pruned branches; one compile per
    value); False passes it as a plain ``int64`` or ``bool``, one compile for every value, the one
    the layer-by-layer path uses too. False suits options of large kernels whose code does not
    gain from the value, such as a convolution's strides and paddings. Floats are never literals.
    """

    value: Union[bool, int, float]
    specialize: bool = True

    def __post_init__(self):
        if not isinstance(self.specialize, (bool, np.bool_)):
            raise TypeError(f"a Const's specialize must be a bool, got {self.specialize!r}")
        object.__setattr__(self, "specialize", bool(self.specialize))
        value = self.value
        if isinstance(value, (bool, np.bool_)):
            object.__setattr__(self, "value", bool(value))
        elif isinstance(value, (int, np.integer)):
            object.__setattr__(self, "value", int(value))
        elif isinstance(value, (float, np.floating)) and math.isfinite(value):
            object.__setattr__(self, "value", float(value))
        else:
            raise TypeError(f"a Const must be a bool, an int or a finite float, got {value!r}")


@dataclass(frozen=True)
class Scalar:
    """A number read from the owner's ``scalars()[name]`` each time the pass runs (float64)."""

    name: str


@dataclass(frozen=True)
class Local:
    """A scalar local to one run of the passes: written by a call's ``result``, read by later calls."""

    name: str


@dataclass(frozen=True)
class Special:
    """A value the running path supplies: see ``STEP``, ``NEED_DX``, ``FRESH`` and ``INDEX``."""

    name: str


STEP = Special("step")
NEED_DX = Special("need_dx")
FRESH = Special("fresh")
INDEX = Special("index")

X, Y, DX, DY, TARGET = Ref("x"), Ref("y"), Ref("dx"), Ref("dy"), Ref("target")
LOSSES, COUNTS = Ref("losses"), Ref("counts")

Operand = Union[Ref, Const, Scalar, Local, Special]


def param(name: str) -> Ref:
    """The parameter ``name`` of the layer."""
    return Ref("param", name)


def grad(name: str) -> Ref:
    """The gradient of the parameter ``name``."""
    return Ref("grad", name)


def work(name: str) -> Ref:
    """The workspace ``name`` (declared in :attr:`LayerPasses.workspaces`)."""
    return Ref("work", name)


def buffer(name: str) -> Ref:
    """The buffer ``name`` of the layer (``layer.buffers[name]``)."""
    return Ref("buffer", name)


def state(name: str) -> Ref:
    """The optimizer's state array ``name`` for the parameter being updated (flat)."""
    return Ref("state", name)


@dataclass(frozen=True, init=False)
class Call:
    """One kernel call: ``op`` (resolved through ``nk.registry.kernels`` on the running device)
    with ``args``; ``result`` names a :class:`Local` that receives the kernel's return value
    (added to it when ``accumulate``)."""

    op: str
    args: tuple
    result: Local | None = None
    accumulate: bool = False

    def __init__(self, op: str, *args: Any, result: Local | None = None, accumulate: bool = False):
        if not isinstance(op, str) or not op.isidentifier():
            raise ValueError(f"a kernel op must be an identifier, got {op!r}")
        for arg in args:
            if not isinstance(arg, (Ref, Const, Scalar, Local, Special)):
                raise TypeError(f"argument {arg!r} of {op}: operands are Ref, Const, Scalar, Local or one of "
                                f"STEP, NEED_DX, FRESH, INDEX (wrap numbers in Const or Scalar)")
        if result is not None and not isinstance(result, Local):
            raise TypeError(f"result of {op} must be a Local, got {result!r}")
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "args", tuple(args))
        object.__setattr__(self, "result", result)
        object.__setattr__(self, "accumulate", bool(accumulate))


class _View:
    """The pass is a reshape: the output is the input (or dx is dy) seen in another shape, no copy."""

    def __repr__(self) -> str:
        return "VIEW"


#: a pass that reshapes without computing (Flatten; Dropout in evaluation)
VIEW = _View()

Pass = Union[tuple, _View]


@dataclass(frozen=True)
class Workspace:
    """A scratch array a layer's passes use: its shape (``"input"``: the input's), and its
    dtype (None: the layer's)."""

    shape: Any
    dtype: Any = None


def _workspace(spec: Any) -> Workspace:
    """A Workspace from itself, ``"input"`` (the shape of the input, the layer's dtype) or ``(shape, dtype)``."""
    if isinstance(spec, Workspace):
        return spec
    if spec == "input":
        return Workspace("input")
    shape, dtype = spec
    return Workspace(tuple(int(s) for s in shape), dtype)


@dataclass(frozen=True)
class LayerPasses:
    """A layer's passes at one input shape.

    ``forward`` is the training forward, ``inference`` the evaluation forward (the training one
    when None), ``backward`` fills the gradients and ``DX``. Each is a tuple of :class:`Call`
    or :data:`VIEW`. ``workspaces`` maps a name to a :class:`Workspace` (or a ``(shape, dtype)``
    pair), allocated once per batch size on the compiled path and per call on the layer path.
    """

    forward: Pass
    backward: Pass
    inference: Pass | None = None
    workspaces: Mapping[str, Workspace] = field(default_factory=dict)

    def __post_init__(self):
        spaces = {name: _workspace(w) for name, w in dict(self.workspaces).items()}
        object.__setattr__(self, "workspaces", spaces)
        for which in ("forward", "backward", "inference"):
            value = getattr(self, which)
            if value is None or value is VIEW:
                continue
            calls = calls_of(value)
            for call in calls:
                if not isinstance(call, Call):
                    raise TypeError(f"{which} must be a tuple of Call records or VIEW, got {call!r}")
                for arg in call.args:
                    if isinstance(arg, Ref) and arg.role == "work" and arg.name not in spaces:
                        raise ValueError(f"{call.op} uses the workspace {arg.name!r}, which is not declared")
            object.__setattr__(self, which, calls)

    @property
    def evaluation(self) -> Pass:
        """The pass of evaluation mode."""
        return self.forward if self.inference is None else self.inference

    def stateful(self) -> bool:
        """Whether the training forward writes state that outlives a step (it uses a buffer)."""
        return any(isinstance(arg, Ref) and arg.role == "buffer" for call in calls_of(self.forward)
                   for arg in call.args)

    def ops(self) -> set[str]:
        """Every kernel op the passes call."""
        return {call.op for p in (self.forward, self.backward, self.inference) for call in calls_of(p)}


@dataclass(frozen=True)
class LossPasses:
    """A loss's passes: ``forward`` reads ``X`` (the outputs) and ``TARGET`` and writes the batch's
    mean loss to ``LOSSES[INDEX]`` (and a classifier's correct count to ``COUNTS[INDEX]``);
    ``backward`` writes ``DX``. ``workspaces`` as in :class:`LayerPasses`, where the shape
    ``"input"`` means the shape of ``X``."""

    forward: tuple
    backward: tuple
    workspaces: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "forward", tuple(self.forward))
        object.__setattr__(self, "backward", tuple(self.backward))
        object.__setattr__(self, "workspaces", {name: _workspace(w) for name, w in dict(self.workspaces).items()})


@dataclass(frozen=True)
class Phase:
    """A part of an optimizer's step: ``calls`` run once, or once per parameter
    (``per_parameter``, with ``param``, ``grad`` and ``state`` refs of that parameter; ``only``
    ``"constrained"`` limits it to the weights a max-norm constraint applies to)."""

    calls: tuple
    per_parameter: bool = True
    only: str = "all"


def calls_of(passes: Any) -> tuple:
    """The calls of a pass (none for VIEW or None)."""
    return () if passes is None or isinstance(passes, _View) else tuple(passes)
