"""Residual: a block of layers whose output is added to its input (or to a projection of it)."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..passes import DX, DY, NEED_DX, X, Y, Call, work
from ..passes.compose import chain, composed
from .base import Layer


class Residual(Layer):
    """``y = f(x) + x``, or ``y = f(x) + shortcut(x)`` when a ``shortcut`` list is given (a
    projection for a change of channels or stride), ``f`` being the chain ``layers``.

    The two paths must give one shape (a ValueError names both otherwise). Parameters, gradients
    and buffers are the children's, named ``body.<index>.<name>`` and ``shortcut.<index>.<name>``
    (PyTorch's names when the block is written as a module with ``body`` and ``shortcut``
    ``nn.Sequential`` attributes). The block's passes are composed from its children's
    descriptions, so it trains on the compiled path and the GPU like its children; every child
    must describe its passes.
    """

    supported_devices = ("cpu", "cuda")

    def __init__(self, layers: Any, shortcut: Any = None):
        self.body = _layers(layers, "layers")
        if not self.body:
            raise ValueError("Residual needs at least one layer in its body")
        self.shortcut = None if shortcut is None else _layers(shortcut, "shortcut")
        self._gather()

    def _children(self) -> list[tuple[str, Layer]]:
        named = [(f"body.{i}", layer) for i, layer in enumerate(self.body)]
        return named + [(f"shortcut.{i}", layer) for i, layer in enumerate(self.shortcut or [])]

    def _gather(self) -> None:
        """The children's parameters, gradients and buffers as this layer's (the same arrays)."""
        self.params = {f"{prefix}.{k}": v for prefix, layer in self._children() for k, v in layer.params.items()}
        self.grads = {f"{prefix}.{k}": layer.grads[k] for prefix, layer in self._children() for k in layer.params}
        self.buffers = {f"{prefix}.{k}": v for prefix, layer in self._children() for k, v in layer.buffers.items()}

    # -- parameters, dtype, device -------------------------------------------------------------
    def reset_parameters(self, rng: np.random.Generator) -> None:
        """Each child draws from a generator of its own, spawned from ``rng``."""
        children = self._children()
        for (_, layer), child_rng in zip(children, rng.spawn(len(children))):
            layer.reset_parameters(child_rng)

    def astype(self, dtype: Any) -> "Residual":
        for _, layer in self._children():
            layer.astype(dtype)
        self._gather()
        self._dtype = self.body[0].dtype
        return self

    def to(self, device: str) -> "Residual":
        for _, layer in self._children():
            layer.to(device)
        self.device = device
        self._saved = None
        self._gather()
        return self

    def zero_grads(self) -> None:
        for _, layer in self._children():
            layer.zero_grads()
        self._gather()

    @property
    def couples_batch(self) -> bool:  # type: ignore[override]
        """Whether a child couples the samples of a batch (a BatchNorm)."""
        return any(layer.couples_batch for _, layer in self._children())

    def check_training_shape(self, input_shape) -> None:
        for layers in (self.body, self.shortcut or []):
            shape = tuple(input_shape)
            for layer in layers:
                layer.check_training_shape(shape)
                shape = tuple(layer.output_shape(shape))

    def scalars(self) -> dict[str, float]:
        return {f"{prefix}.{k}": v for prefix, layer in self._children() for k, v in layer.scalars().items()}

    # -- config --------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The children by registry name with their configs, as :meth:`nkernels.Sequential.get_config`."""
        from .. import registry

        def configs(layers: list[Layer]) -> list[dict[str, Any]]:
            return [{"type": registry.layers.name_of(type(layer)), "config": layer.get_config()} for layer in layers]

        return {"layers": configs(self.body), "shortcut": None if self.shortcut is None else configs(self.shortcut)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Residual":
        """A block rebuilt from :meth:`get_config`'s output (fresh weights); layers resolve by registry name."""
        from ..model import Sequential

        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError(f"a Residual config must be a dict with a 'layers' list, got {config!r}")
        shortcut = config.get("shortcut")
        return cls(Sequential.from_config({"layers": config["layers"]}).layers,
                   None if shortcut is None else Sequential.from_config({"layers": shortcut}).layers)

    # -- shapes and passes -----------------------------------------------------------------------
    def output_shape(self, input_shape):
        shape = _chain_shape(self.body, input_shape)
        other = tuple(input_shape) if self.shortcut is None else _chain_shape(self.shortcut, input_shape)
        if shape != other:
            what = "the input" if self.shortcut is None else "the shortcut"
            raise ValueError(f"Residual: the body gives shape {shape} but {what} gives {other} for input "
                             f"{tuple(input_shape)}; the two paths must agree (give a shortcut that projects)")
        return shape

    def passes(self, input_shape):
        self.output_shape(input_shape)  # the two paths agree
        body = chain(self.body, "body", input_shape, X, work("body.dx"), NEED_DX, dy=DY)
        spaces = dict(body.workspaces, **{"body.dx": "input"})
        body_out = work(f"body.{len(self.body) - 1}.out")
        forward, inference, backward = list(body.forward), list(body.inference), list(body.backward)
        if self.shortcut is None:
            other_out, other_dx = X, DY
        else:
            short = chain(self.shortcut, "shortcut", input_shape, X, work("shortcut.dx"), NEED_DX, dy=DY)
            spaces.update(short.workspaces, **{"shortcut.dx": "input"})
            other_out, other_dx = work(f"shortcut.{len(self.shortcut) - 1}.out"), work("shortcut.dx")
            forward += short.forward
            inference += short.inference
            backward += short.backward
        join = Call("add_flat", body_out.flat, other_out.flat, Y.flat)
        return composed(forward + [join], backward + [Call("add_flat", work("body.dx").flat, other_dx.flat, DX.flat)],
                        inference + [join], spaces)

    def __repr__(self) -> str:
        short = "" if self.shortcut is None else f", shortcut={self.shortcut!r}"
        return f"Residual({self.body!r}{short})"


def _layers(value: Any, what: str) -> list[Layer]:
    layers = list(value.layers if hasattr(value, "layers") else value)
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"Residual {what} must be nkernels Layer objects; item {i} is {layer!r}")
    return layers


def _chain_shape(layers: list[Layer], shape: tuple) -> tuple:
    shape = tuple(shape)
    for layer in layers:
        shape = tuple(layer.output_shape(shape))
    return shape
