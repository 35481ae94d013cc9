"""What a layer, a loss or an optimizer offers to the compiled training step.

A :class:`CompiledOp` is a pair of source templates that call kernels by op name. The step
builder (:mod:`nkernels.compiled.step`) strings the templates of every layer together into one
Numba function that runs whole epochs of forward, loss, backward and update steps.

Placeholders a layer template may use:

``{x}``, ``{y}``, ``{dy}``, ``{dx}``
    the layer's input, output and their gradients, shaped (batch first);
``{x_flat}``, ``{y_flat}``, ``{dy_flat}``, ``{dx_flat}``
    the same buffers as 1-D views;
``{p[name]}``, ``{g[name]}``
    a parameter and its gradient;
``{w[name]}``
    a workspace the op declared in ``workspaces``;
``{need_dx}``
    ``True`` or ``False``: whether ``dx`` is wanted (the first layer's is not);
``{s[name]}``
    an array of the layer's own that persists across steps (``state``), e.g. an RNG counter;
``{step}``
    the training step counter (an int, from 1).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class CompiledOp:
    """Templates for one layer's forward and backward passes inside the compiled step.

    ``ops`` lists the kernel op names the templates call (resolved through
    ``nk.registry.kernels`` on the CPU, so plugin kernels with a higher priority apply here too).
    ``workspaces`` maps a name to ``(shape, dtype)``, allocated once per batch size; a dtype of
    ``None`` means the model's dtype. ``state`` maps a name to an array the layer owns, passed
    as it is, so what the compiled step writes there the layer sees afterwards.
    """

    forward: str
    backward: str
    ops: tuple[str, ...]
    workspaces: Mapping[str, tuple[tuple[int, ...], object]] = field(default_factory=dict)
    state: Mapping[str, object] = field(default_factory=dict)
