"""Render pass descriptions as source: every operand becomes a named variable or a typed literal.

A :class:`Binding` says what array a variable of the generated function holds (an activation, a
parameter, a workspace, ...), so the runtime can build the arguments without reading the source.
A :class:`Scope` maps the refs of one owner (a layer, the loss, one parameter's optimizer
update) to bindings; :func:`render_call` writes one kernel call. Numbers reach the source only
as literals of a :class:`~nkernels.passes.Const` (rendered from their type, never by ``repr`` of
an arbitrary object) or as elements of the ``scalars`` argument.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..passes.ir import Call, Const, Local, Ref, Scalar, Special

_VIEW_SUFFIX = {"": "", "flat": "_f", "rows": "_r", "vectors": "_v"}


@dataclass(frozen=True)
class Binding:
    """What one argument of the generated function holds.

    ``kind`` is ``"act"`` / ``"dact"`` (activation ``index`` and its gradient: 0 is the batch,
    the last the model's output), ``"param"``, ``"grad"``, ``"other_grad"``, ``"joined"`` (the
    split mode's other half's gradient and both halves' joined one; of layer ``index``, parameter
    ``name``), ``"work"`` / ``"buffer"`` (of layer ``index``; ``index`` -1 is the loss),
    ``"state"`` (the optimizer state ``slot`` of layer ``index``'s parameter ``name``),
    ``"target"``, ``"raw"`` (the batch before augmentation) or ``"fixed"`` (one of the fixed
    arguments, by ``name``); ``view`` as in :class:`~nkernels.passes.Ref`.
    """

    kind: str
    index: int = -1
    name: str = ""
    view: str = ""
    slot: str = ""


class Scope:
    """Variable names for the refs of one owner, and the bindings behind them.

    ``table`` maps a ref's role to a function of the ref giving its Binding, and ``variable``
    names a binding; ``names`` collects every (variable, binding) rendered so far, in order.
    """

    def __init__(self, table: dict[str, Callable[[Ref], Binding]], variable: Callable[[Binding], str],
                 names: dict[str, Binding], specials: dict[str, str], scalar: Callable[[str], str]):
        self.table, self.variable, self.names = table, variable, names
        self.specials, self.scalar = specials, scalar

    def operand(self, arg) -> str:
        """The source text of one operand."""
        if isinstance(arg, Ref):
            if arg.role not in self.table:
                raise ValueError(f"the operand {arg} has no meaning here (allowed roles: {sorted(self.table)})")
            binding = self.table[arg.role](arg)
            name = self.variable(binding)
            self.names.setdefault(name, binding)
            return name
        if isinstance(arg, Const):
            return literal(arg.value, arg.specialize)
        if isinstance(arg, Scalar):
            return self.scalar(arg.name)
        if isinstance(arg, Local):
            return local_name(arg)
        if isinstance(arg, Special):
            return self.specials[arg.name]
        raise TypeError(f"not an operand: {arg!r}")


def literal(value, specialize: bool = True) -> str:
    """A bool, int or float as source (a Const has already checked and normalised it).

    With ``specialize`` False a bool or an int is wrapped (``bool_(True)``, ``int64(2)``, NumPy's,
    which the generated module imports) so that Numba types it as a plain ``bool`` or ``int64``: a
    bare ``2`` is typed ``Literal[int](2)`` and the kernel it reaches is compiled again for that
    value (each new stride and padding of a convolution cost 18-20 s of compiling)."""
    if isinstance(value, bool):
        text = "True" if value else "False"
        return text if specialize else f"bool_({text})"
    if isinstance(value, int):
        return str(value) if specialize else f"int64({value})"
    return repr(float(value))  # a finite float's repr always reads back as a float


def local_name(local: Local) -> str:
    """The variable of a Local (prefixed, so it never shadows an argument)."""
    if not local.name.isidentifier():
        raise ValueError(f"a Local's name must be an identifier, got {local.name!r}")
    return f"local_{local.name}"


def render_call(call: Call, scope: Scope) -> str:
    """One line of source calling ``call.op`` with its operands from ``scope``."""
    text = f"{call.op}({', '.join(scope.operand(arg) for arg in call.args)})"
    if call.result is None:
        return text
    return f"{local_name(call.result)} {'+=' if call.accumulate else '='} {text}"


def accumulated_locals(calls) -> list[str]:
    """The locals that ``calls`` accumulate into: they start at 0.0."""
    return sorted({local_name(c.result) for c in calls if c.result is not None and c.accumulate})


def variable_name(binding: Binding, param_index: Callable[[int, str], int],
                  work_index: Callable[[int, str, str], int]) -> str:
    """The generated function's name for ``binding``: short, unique and an identifier whatever
    the parameter or workspace is called (names are replaced by their position)."""
    suffix = _VIEW_SUFFIX[binding.view]
    kind, i = binding.kind, binding.index
    if kind in ("act", "dact"):
        return ("a" if kind == "act" else "d") + f"{i}{suffix}"
    if kind in ("param", "grad", "other_grad", "joined"):
        prefix = {"param": "p", "grad": "g", "other_grad": "G", "joined": "J"}[kind]
        return f"{prefix}{i}_{param_index(i, binding.name)}{suffix}"
    if kind in ("work", "buffer"):
        owner = "loss" if i < 0 else str(i)
        return f"{kind[0]}{owner}_{work_index(i, kind, binding.name)}{suffix}"
    if kind == "state":
        return f"o{i}_{param_index(i, binding.name)}_{binding.slot}"
    if kind == "target":
        return f"t{suffix}"
    if kind == "raw":
        return f"raw{suffix}"
    if kind == "fixed":
        return binding.name
    raise ValueError(f"unknown binding kind {kind!r}")
