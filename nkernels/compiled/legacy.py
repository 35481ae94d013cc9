"""String templates for the compiled step: the form plugin layers used before pass descriptions.

Deprecated: a layer describes its passes once with :meth:`nkernels.layers.Layer.passes` and gets
both paths from it. A plugin layer that still returns a :class:`CompiledOp` from
``compiled_op(input_shape, dtype)`` keeps its compiled path for this release, with a
DeprecationWarning.

Placeholders a template may use:

``{x}``, ``{y}``, ``{dx}``, ``{dy}`` and ``{x_flat}`` ... ``{dx_flat}``
    the layer's input, output and their gradients, and their 1-D views;
``{p[name]}``, ``{g[name]}``
    a parameter and its gradient;
``{w[name]}``
    a workspace declared in ``workspaces``;
``{s[name]}``
    an array of the layer's own that persists across steps (``state``);
``{need_dx}``
    ``True`` or ``False``: whether ``dx`` is wanted;
``{step}``
    the training step counter (an int, from 1).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..passes.ir import Workspace
from .render import Binding, literal

_warned: set[type] = set()


@dataclass(frozen=True)
class CompiledOp:
    """Deprecated templates for one layer's forward and backward passes inside the compiled step.

    ``ops`` lists the kernel op names the templates call. ``workspaces`` maps a name to
    ``(shape, dtype)``; a dtype of ``None`` means the model's dtype. ``state`` maps a name to an
    array the layer owns, passed as it is.
    """

    forward: str
    backward: str
    ops: tuple[str, ...]
    workspaces: Mapping[str, tuple[tuple[int, ...], object]] = field(default_factory=dict)
    state: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class LegacyPasses:
    """A CompiledOp seen as a layer's passes by the step generator."""

    op: CompiledOp

    @property
    def workspaces(self) -> dict[str, Workspace]:
        """The declared workspaces."""
        return {name: Workspace(tuple(shape), dtype) for name, (shape, dtype) in self.op.workspaces.items()}

    @property
    def state(self) -> Mapping[str, object]:
        """The layer's persistent arrays."""
        return self.op.state

    def ops(self) -> set[str]:
        """The kernel ops the templates call."""
        return set(self.op.ops)

    def render(self, l: int, namer, names: dict, need_dx: bool) -> tuple[list[str], list[str]]:
        """The forward and backward lines of layer ``l``, registering the variables they use."""
        def name(binding: Binding) -> str:
            variable = namer(binding)
            names.setdefault(variable, binding)
            return variable

        values: dict[str, Any] = {}
        for role, kind, index in (("x", "act", l), ("y", "act", l + 1), ("dx", "dact", l), ("dy", "dact", l + 1)):
            values[role] = _Lazy(lambda kind=kind, index=index: name(Binding(kind, index)))
            values[role + "_flat"] = _Lazy(lambda kind=kind, index=index: name(Binding(kind, index, view="flat")))
        values["p"] = _LazyMap(lambda key: name(Binding("param", l, key)))
        values["g"] = _LazyMap(lambda key: name(Binding("grad", l, key)))
        values["w"] = _LazyMap(lambda key: name(Binding("work", l, key)))
        values["s"] = _LazyMap(lambda key: name(Binding("buffer", l, key)))
        values["need_dx"] = literal(bool(need_dx), specialize=False)
        values["step"] = "step"
        return (self.op.forward.format(**values).strip("\n").splitlines(),
                self.op.backward.format(**values).strip("\n").splitlines())


class _Lazy:
    """A placeholder value that registers its variable only when a template uses it."""

    def __init__(self, make):
        self.make = make

    def __format__(self, spec: str) -> str:
        return self.make()


class _LazyMap:
    def __init__(self, make):
        self.make = make

    def __getitem__(self, key: str) -> str:
        return self.make(key)


def legacy_passes(layer, input_shape: tuple[int, ...]) -> LegacyPasses | None:
    """The deprecated template of ``layer`` at ``input_shape``, or None when it has none."""
    compiled_op = getattr(layer, "compiled_op", None)
    if compiled_op is None:
        return None
    op = compiled_op(tuple(input_shape), layer.dtype)
    if op is None:
        return None
    if type(layer) not in _warned:
        _warned.add(type(layer))
        warnings.warn(f"{type(layer).__name__}.compiled_op returns a CompiledOp string template, which is "
                      f"deprecated and will be removed in the next release: describe the passes once with "
                      f"Layer.passes() (see nkernels.passes) and both paths follow from it",
                      DeprecationWarning, stacklevel=3)
    return LegacyPasses(op)
