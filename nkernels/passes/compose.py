"""Composing pass descriptions: a layer made of layers (a residual block) describes its passes from
its children's, each child's operands renamed into the parent's namespace.

:func:`chain` renders a list of children run one after the other: the first reads the parent's
input (or any array it is given), each later one the workspace holding its predecessor's output;
their parameters, gradients, workspaces, buffers, scalars and locals get the child's prefix. The
backward runs the children in reverse, the gradient of each intermediate output in a workspace of
its own. A child whose pass is a view (Flatten) becomes a copy between the two arrays.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .ir import (NEED_DX, VIEW, Call, Const, LayerPasses, Local, Ref, Scalar, Special, Workspace,
                 calls_of, work)

#: the roles a child's refs keep as they are (its input and output are given by the parent)
_OWN_ROLES = ("param", "grad", "work", "buffer")


@dataclass
class Chained:
    """The calls and workspaces of a chain of children, in the parent's namespace."""

    forward: list = field(default_factory=list)
    inference: list = field(default_factory=list)
    backward: list = field(default_factory=list)
    workspaces: dict = field(default_factory=dict)
    output_shape: tuple = ()


def _rename(call: Call, prefix: str, io: dict[str, Ref], need_dx: Any) -> Call:
    def operand(arg: Any) -> Any:
        if isinstance(arg, Ref):
            if arg.role in io:
                return Ref(io[arg.role].role, io[arg.role].name, arg.view)
            if arg.role in _OWN_ROLES:
                return Ref(arg.role, f"{prefix}.{arg.name}", arg.view)
            raise ValueError(f"a composed layer's child cannot use the operand {arg}")
        if isinstance(arg, Scalar):
            return Scalar(f"{prefix}.{arg.name}")
        if isinstance(arg, Local):
            return Local(f"{prefix.replace('.', '_')}_{arg.name}")
        if isinstance(arg, Special) and arg == NEED_DX:
            return need_dx
        return arg

    result = None if call.result is None else operand(call.result)
    return Call(call.op, *[operand(arg) for arg in call.args], result=result, accumulate=call.accumulate)


def _calls(passes: Any, prefix: str, io: dict[str, Ref], need_dx: Any, source: str, target: str) -> list:
    """A child's calls renamed, or for a view one copy from ``io[source]`` to ``io[target]``."""
    if passes is VIEW:
        return [Call("copy_flat", io[source].flat, io[target].flat)]
    return [_rename(call, prefix, io, need_dx) for call in calls_of(passes)]


def chain(layers: list, prefix: str, input_shape: tuple, x: Ref, dx: Ref, need_dx: Any = NEED_DX,
          y: Ref | None = None, dy: Ref | None = None) -> Chained:
    """The passes of ``layers`` run in order from ``x`` (gradient into ``dx``), each renamed with
    ``prefix.<index>``: outputs into workspaces ``prefix.<index>.out`` (the last one's into ``y``
    when given), their gradients into ``prefix.<index>.dout`` (the last one's read from ``dy``).

    ``need_dx`` is what the first child's ``NEED_DX`` becomes (later ones always need theirs).
    Every child must describe its passes (:meth:`~nkernels.layers.Layer.passes`).
    """
    out = Chained()
    shape = tuple(input_shape)
    current_x, current_dx = x, dx
    n = len(layers)
    for i, layer in enumerate(layers):
        if not layer.described:
            raise TypeError(f"{type(layer).__name__} codes its passes in Python, so it cannot be composed "
                            f"into a layer that describes its passes")
        child = f"{prefix}.{i}"
        passes = layer.passes(shape)
        out_shape = tuple(layer.output_shape(shape))
        last = i == n - 1
        y_ref = y if last and y is not None else work(f"{child}.out")
        dy_ref = dy if last and dy is not None else work(f"{child}.dout")
        if y_ref.role == "work":
            out.workspaces[y_ref.name] = Workspace(out_shape)
        if dy_ref.role == "work":
            out.workspaces[dy_ref.name] = Workspace(out_shape)
        for name, space in passes.workspaces.items():
            out.workspaces[f"{child}.{name}"] = Workspace(shape if space.shape == "input" else space.shape,
                                                          space.dtype)
        io = {"x": current_x, "y": y_ref, "dx": current_dx, "dy": dy_ref}
        child_need = need_dx if i == 0 else Const(True, specialize=False)  # as NEED_DX: plain, one compile
        out.forward += _calls(passes.forward, child, io, child_need, "x", "y")
        out.inference += _calls(passes.evaluation, child, io, child_need, "x", "y")
        out.backward[:0] = _calls(passes.backward, child, io, child_need, "dy", "dx")
        current_x, current_dx = y_ref, dy_ref
        shape = out_shape
    out.output_shape = shape
    return out


def composed(forward: list, backward: list, inference: list, workspaces: dict) -> LayerPasses:
    """A LayerPasses from composed calls (the inference pass kept only when it differs)."""
    return LayerPasses(forward=tuple(forward), backward=tuple(backward),
                       inference=None if inference == forward else tuple(inference), workspaces=workspaces)


__all__ = ["chain", "composed", "Chained"]
