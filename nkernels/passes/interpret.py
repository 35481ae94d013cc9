"""Run a pass description one kernel call at a time: the layer-by-layer path.

:class:`Frame` holds what the operands of one run of passes stand for (arrays by role and name,
the owner's scalars, the step, the flags) and :func:`run` resolves each call's operands against
it and calls the kernel of the frame's device. The compiled path renders the same calls instead
(:mod:`nkernels.compiled.render`), so both compute the same thing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .ir import Call, Const, Local, Ref, Scalar, Special


def view(array: Any, how: str) -> Any:
    """``array`` as it is (``""``), 1-D (``"flat"``), 2-D by its first axis (``"rows"``) or 2-D by its
    last axis (``"vectors"``), without a copy."""
    if how == "flat":
        return array.reshape(array.size)
    if how == "rows":
        rows = array.shape[0] if array.ndim else 1
        return array.reshape(rows, array.size // rows if rows else 0)
    if how == "vectors":
        width = array.shape[array.ndim - 1] if array.ndim else 1  # (the simulator's shapes take no -1)
        return array.reshape(array.size // width if width else 0, width)
    return array


@dataclass
class Frame:
    """The values behind the operands of one run of passes.

    ``arrays`` maps a role (``"x"``, ``"y"``, ...) or ``(role, name)`` (``("param", "weight")``)
    to an array; ``scalars`` holds the owner's :class:`~nkernels.passes.Scalar` values;
    ``specials`` the values of ``STEP``, ``NEED_DX``, ``FRESH`` and ``INDEX``; ``locals`` the
    :class:`~nkernels.passes.Local` results so far.
    """

    arrays: dict = field(default_factory=dict)
    scalars: Mapping[str, float] = field(default_factory=dict)
    specials: dict = field(default_factory=dict)
    locals: dict = field(default_factory=dict)

    def value(self, operand: Any) -> Any:
        """What ``operand`` stands for in this frame."""
        if isinstance(operand, Ref):
            key = operand.role if not operand.name else (operand.role, operand.name)
            try:
                array = self.arrays[key]
            except KeyError:
                raise KeyError(f"no array for the operand {operand} in this pass") from None
            return view(array, operand.view)
        if isinstance(operand, Const):
            return operand.value
        if isinstance(operand, Scalar):
            try:
                return float(self.scalars[operand.name])
            except KeyError:
                raise KeyError(f"the owner has no scalar {operand.name!r} (scalars(): "
                               f"{sorted(self.scalars)})") from None
        if isinstance(operand, Local):
            return self.locals[operand.name]
        if isinstance(operand, Special):
            return self.specials[operand.name]
        raise TypeError(f"not an operand: {operand!r}")


def run(calls: tuple, frame: Frame, kernel_of: Callable[[str], Callable]) -> None:
    """Call each kernel of ``calls`` in order with its operands resolved in ``frame``."""
    for call in calls:
        result = kernel_of(call.op)(*[frame.value(arg) for arg in call.args])
        if call.result is not None:
            name = call.result.name
            frame.locals[name] = frame.locals[name] + result if call.accumulate else result


def refs(calls: tuple, role: str) -> set[str]:
    """The names of the refs of ``role`` that ``calls`` use."""
    return {arg.name for call in calls for arg in call.args if isinstance(arg, Ref) and arg.role == role}


__all__ = ["Frame", "run", "refs", "view", "Call"]
